# Production image: the web app (gunicorn) and the worker share it.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY booking_service booking_service
COPY scheduler scheduler
COPY templates templates
COPY translations translations
COPY migrations migrations
RUN useradd --create-home clinic && mkdir -p /app/instance && chown clinic /app/instance
USER clinic
EXPOSE 8000
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "3", "booking_service:create_app()"]
