"""URL map of the webhooks blueprint (being written)."""

from flask import Blueprint, Flask

bp = Blueprint("webhooks", __name__)


def register_webhooks(app: Flask) -> None:
    app.register_blueprint(bp)
