"""The request's view of the application: its settings and one database session per request.

Only the web layer imports this; domain code receives the session and values as arguments.

The request is the unit of work (Indico's ``RH.process``): views never commit or roll back.
:func:`finish_request` (an ``after_request`` hook) commits the request's session when the
response is not an error (status below 400) and rolls it back otherwise; an exception that
escapes the view is answered by an error response, so it is rolled back too, and
:func:`close_session` (teardown) closes whatever is left, which rolls back. A failed commit
raises, so the client gets a 500, never a success that was not stored.
"""

from __future__ import annotations

import logging

from flask import Response, current_app, g
from sqlalchemy.orm import Session

from booking_service.config import Settings
from booking_service.db import Database, utcnow  # noqa: F401  (utcnow re-exported for views)

log = logging.getLogger(__name__)


def settings() -> Settings:
    return current_app.extensions["settings"]


def database() -> Database:
    return current_app.extensions["database"]


def db_session() -> Session:
    """The request's session, created on first use, committed or rolled back by
    :func:`finish_request` and closed at the end of the request."""
    if "db_session" not in g:
        g.db_session = database().session()
    return g.db_session


def discard_changes() -> None:
    """Have :func:`finish_request` roll the request's work back although its answer is not an
    error status: a redirect that reports a failure (post/redirect/get with a flashed error)."""
    g.discard_changes = True


def finish_request(response: Response) -> Response:
    """``after_request``: commit the request's work when the answer is a success or a redirect,
    roll it back when it is an error (4xx, 5xx) or :func:`discard_changes` was called."""
    session = g.get("db_session")
    if session is None or not session.in_transaction():
        return response
    if response.status_code >= 400 or g.pop("discard_changes", False):
        session.rollback()
    else:
        session.commit()  # raises on failure: the error handlers answer 500 and nothing is kept
    return response


def close_session(_exc: BaseException | None = None) -> None:
    """Teardown: close the session; anything not committed by :func:`finish_request` (an
    exception escaped, or committing failed) is rolled back by closing."""
    session = g.pop("db_session", None)
    if session is not None:
        try:
            session.close()
        except Exception:  # a dead connection must not hide the request's own error
            log.exception("closing the request's session failed")
