"""URL map of the web blueprint (being written)."""

from flask import Blueprint, Flask

bp = Blueprint("web", __name__)


def register_web(app: Flask) -> None:
    app.register_blueprint(bp)
