# The production image: the web app (gunicorn, the default command), the worker
# (python -m scheduler) and the one-shot migration (flask --app booking_service db upgrade)
# all run from it; docker-compose.yml chooses the command. See docs/operations.md.
#
# Two stages: the wheels are installed into a virtual environment (without pip itself) in the
# first, and only that environment is copied into the second, so no pip cache, build tool or
# apt list ends up in the image. Size, estimated (Docker does not run where this was written):
# the environment measures 236 MB on disk with its compiled bytecode (150 MB without it: kept,
# so processes start without compiling), on top of python:3.11-slim. docs/operations.md, "The
# image", says how it was measured.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-cache-dir -r /tmp/requirements.txt

FROM python:3.11-slim
# tzdata: the operating system's zone files (Python's zoneinfo also has the tzdata package).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 clinic
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TZ=UTC
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY booking_service booking_service
COPY scheduler scheduler
COPY templates templates
COPY translations translations
COPY migrations migrations
COPY gunicorn.conf.py gunicorn.conf.py
RUN mkdir -p /app/instance && chown clinic:clinic /app/instance
USER clinic
EXPOSE 8000
# The web app's liveness; docker-compose.yml turns it off for the worker and the migration.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "booking_service:create_app()"]
