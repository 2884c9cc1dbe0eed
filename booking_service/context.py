"""The request's view of the application: its settings and one database session per request.

Only the web layer imports this; domain code receives the session and values as arguments.
"""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session

from booking_service.config import Settings
from booking_service.db import Database, utcnow  # noqa: F401  (utcnow re-exported for views)


def settings() -> Settings:
    return current_app.extensions["settings"]


def database() -> Database:
    return current_app.extensions["database"]


def db_session() -> Session:
    """The request's session, created on first use and closed at the end of the request."""
    if "db_session" not in g:
        g.db_session = database().session()
    return g.db_session


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
