"""URL map of the api blueprint (being written)."""

from flask import Blueprint, Flask

bp = Blueprint("api", __name__)


def register_api(app: Flask) -> None:
    app.register_blueprint(bp)
