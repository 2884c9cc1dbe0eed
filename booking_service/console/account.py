"""The signed-in user's own account: who they are, their API tokens (linked), and for admins the
optional two-step sign-in (TOTP). Turning it on shows the secret and its ``otpauth://`` URI (no
QR code: nothing to load), asks for a code to confirm, then shows 10 single-use recovery codes
once. From then on signing in asks for a code after the password."""

from __future__ import annotations

from flask import render_template, request, url_for

from booking_service.console.auth import MAX_CODE, actor
from booking_service.console.common import run, staff_message
from booking_service.context import db_session, discard_changes, utcnow
from booking_service.errors import DomainError, ValidationFailed
from booking_service.staff import operations
from booking_service.staff.models import User


def _me() -> User:
    return db_session().get(User, actor().user_id)


def _render(status: int = 200, **extra):
    me = _me()
    return render_template(
        "staff/account.html",
        nav="account",
        user=me,
        recovery_left=operations.recovery_codes_left(db_session(), me.id) if me.totp_enabled else 0,
        **extra,
    ), status


def show():
    return _render()


def totp_start():
    """POST: a new secret to enter in an authenticator app; not in force until confirmed."""
    me = _me()
    try:
        operations.start_totp(db_session(), me)
    except DomainError as exc:
        discard_changes()
        return _render(status=exc.status, error=staff_message(exc))
    return _render(setup=True, uri=operations.totp_uri(me))


def totp_confirm():
    """POST: the first code from the app; on success the recovery codes, shown once."""
    me = _me()
    try:
        codes = operations.confirm_totp(db_session(), me, request.form.get("code", "")[:MAX_CODE], now=utcnow())
    except DomainError as exc:
        # The pending secret stays, so the user can try the next code without re-entering it.
        discard_changes()
        pending = me.totp_secret is not None and not me.totp_enabled
        return _render(
            status=exc.status, error=staff_message(exc), setup=pending, uri=operations.totp_uri(me) if pending else None
        )
    return _render(recovery_codes=codes)


def totp_disable():
    """POST: turn two-step sign-in off; needs a current code (or a recovery code)."""

    def operation() -> str:
        me = _me()
        if me.totp_enabled and not operations.check_second_factor(
            db_session(), me, request.form.get("code", "")[:MAX_CODE], now=utcnow()
        ):
            raise ValidationFailed("That code is not right: two-step sign-in stays on.")
        operations.disable_totp(db_session(), me)
        return "Two-step sign-in is off."

    return run(operation, then=url_for("console.account"))
