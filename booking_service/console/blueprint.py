"""URL map of the staff console (being written)."""

from flask import Blueprint, Flask

bp = Blueprint("console", __name__, url_prefix="/staff")


def register_console(app: Flask) -> None:
    app.register_blueprint(bp)
