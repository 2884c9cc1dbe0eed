"""Staff accounts, for admins: create, deactivate and reactivate, change role, reset the password,
link a practitioner login to its practitioner. Deactivation, a role change and a password reset
end the user's sessions and revoke their tokens (``staff.operations.lock_out``); the last active
admin can be neither deactivated nor demoted. A generated password is shown once, in the answer
to the POST that made it."""

from __future__ import annotations

from flask import abort, render_template, request, url_for
from sqlalchemy import select

from booking_service.clinic.models import Practitioner
from booking_service.console.auth import ROLE_LABELS
from booking_service.console.common import run, staff_message
from booking_service.context import db_session, discard_changes, utcnow
from booking_service.errors import DomainError
from booking_service.form_values import parse_int
from booking_service.staff import operations
from booking_service.staff.models import ROLES, User

MAX_FIELD = 254


def _practitioners():
    return list(db_session().scalars(select(Practitioner).order_by(Practitioner.id)))


def _render_list(*, values=None, error=None, created=None, password=None, status=200):
    session = db_session()
    users = list(session.scalars(select(User).order_by(User.active.desc(), User.email)))
    linked = {p.user_id: p for p in _practitioners() if p.user_id is not None}
    return render_template(
        "staff/users.html",
        nav="users",
        users=users,
        linked=linked,
        roles=ROLES,
        role_labels=ROLE_LABELS,
        practitioners=_practitioners(),
        values=values or {},
        error=error,
        created=created,
        password=password,
        min_password=operations.MIN_PASSWORD_LENGTH,
    ), status


def index():
    return _render_list()


def create():
    """POST: a new staff user; a blank password is generated and shown once."""
    form = request.form
    values = {name: form.get(name, "").strip()[:MAX_FIELD] for name in ("email", "name", "role", "practitioner")}
    password = form.get("password", "")[:1024] or None
    try:
        user, generated = operations.create_user(
            db_session(),
            values["email"],
            role=values["role"],
            password=password,
            name=values["name"],
            practitioner_id=parse_int(values["practitioner"]) if values["role"] == "practitioner" else None,
            now=utcnow(),
        )
    except DomainError as exc:
        discard_changes()
        return _render_list(values=values, error=staff_message(exc), status=exc.status)
    return _render_list(created=user, password=generated)


def _user(user_id: int) -> User:
    user = db_session().get(User, user_id)
    if user is None:
        abort(404)
    return user


def _render_user(user: User, *, status: int = 200, **extra):
    return render_template(
        "staff/user.html",
        nav="users",
        user=user,
        linked=next((p for p in _practitioners() if p.user_id == user.id), None),
        roles=ROLES,
        role_labels=ROLE_LABELS,
        practitioners=_practitioners(),
        min_password=operations.MIN_PASSWORD_LENGTH,
        **extra,
    ), status


def show(user_id: int):
    return _render_user(_user(user_id))


def update(user_id: int):
    """POST ``action`` = ``deactivate``, ``reactivate``, ``role`` (with ``role``), ``totp_off``
    or ``link`` (with ``practitioner``, blank to unlink)."""
    _user(user_id)
    form = request.form
    action = form.get("action", "")
    now = utcnow()

    def operation() -> str:
        session = db_session()
        if action == "deactivate":
            user = operations.set_active(session, user_id, False, now=now)
            return f"Deactivated {user.email}: signed out everywhere, API tokens revoked."
        if action == "reactivate":
            user = operations.set_active(session, user_id, True, now=now)
            return f"Reactivated {user.email}."
        if action == "role":
            user = operations.change_role(session, user_id, form.get("role", ""), now=now)
            return f"{user.email} is now {ROLE_LABELS[user.role]}: signed out everywhere, API tokens revoked."
        if action == "totp_off":  # an admin who lost both phone and recovery codes
            user = _user(user_id)
            operations.disable_totp(session, user)
            return f"Two-step sign-in is off for {user.email}."
        if action == "link":
            user = operations.link_practitioner(session, user_id, parse_int(form.get("practitioner")))
            return f"Saved the practitioner link of {user.email}."
        abort(400)

    return run(operation, then=url_for("console.user", user_id=user_id))


def password(user_id: int):
    """POST: a new password (typed, or generated and shown once); the user's sessions end and
    their tokens are revoked."""
    user = _user(user_id)
    typed = request.form.get("password", "")[:1024] or None
    try:
        user, generated = operations.reset_password(db_session(), user_id, typed, now=utcnow())
    except DomainError as exc:
        discard_changes()
        return _render_user(user, status=exc.status, password_error=staff_message(exc))
    return _render_user(user, password=generated, password_saved=True)
