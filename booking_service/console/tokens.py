"""API tokens in the console: every staff user sees, creates and revokes their own; an admin sees
and revokes everyone's (the access policy's ``token`` rows). A new token is shown once, in the
answer to the POST that made it (never in a flash message: those ride in the session cookie)."""

from __future__ import annotations

from flask import render_template, url_for

from booking_service import access
from booking_service.console.auth import actor
from booking_service.console.common import clinic_or_none, run
from booking_service.context import db_session, utcnow
from booking_service.staff import operations
from booking_service.staff.models import User


def _render(new_token: str | None = None, status: int = 200):
    session = db_session()
    me = actor()
    everyone = access.grant(me.role, "token", "read") == access.ALL
    rows = operations.tokens_of(session, None if everyone else me.user_id)
    clinic = clinic_or_none()
    return render_template(
        "staff/tokens.html",
        nav="tokens",
        tokens=rows,
        everyone=everyone,
        me=me,
        now=utcnow(),
        new_token=new_token,
        lifetime_days=operations.TOKEN_LIFETIME.days,
        clinic_tz=clinic.timezone if clinic else "UTC",
    ), status


def index():
    return _render()


def create():
    """POST: a new token for the signed-in user, acting with their role; shown on this page once."""
    user = db_session().get(User, actor().user_id)
    token, _row = operations.issue_api_token(db_session(), user, now=utcnow())
    return _render(new_token=token)


def revoke(token_id: int):
    """POST: revoke one token (the policy let only its owner, or an admin, get here)."""

    def operation() -> str:
        operations.revoke_token(db_session(), token_id, now=utcnow())
        return "Token revoked: it no longer works."

    return run(operation, then=url_for("console.tokens"))
