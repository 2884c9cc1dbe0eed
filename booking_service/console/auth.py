"""Signing staff in and out of the console (Flask-Login over ``booking_service.staff``), and
the console's side of the access policy (``booking_service.access``): every console request is
checked against the policy table before its view runs (:func:`check_access`).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from sqlalchemy import select

from booking_service import access
from booking_service.clinic.models import Practitioner
from booking_service.context import db_session, utcnow
from booking_service.errors import NotFound
from booking_service.staff import sessions as staff_sessions
from booking_service.staff.models import User
from booking_service.staff.operations import authenticate, check_second_factor

log = logging.getLogger(__name__)

ROLE_LABELS = {"admin": "Admin", "frontdesk": "Front desk", "practitioner": "Practitioner"}
# Sign-in limits live in the limiter's storage (Redis in production: shared by every process).
# Per address: every POST counts. Per account: only failed attempts count, so a colleague who
# mistypes twice is not locked out, while guessing one account's password from many addresses
# is stopped after a handful.
LOGIN_LIMIT = "10 per minute"
LOGIN_LIMIT_MESSAGE = "Too many sign-in attempts from this computer. Please wait a minute and try again."
ACCOUNT_LOGIN_LIMIT = "5 per 15 minutes"
ACCOUNT_LOGIN_LIMIT_MESSAGE = (
    "Too many failed sign-ins for this account. Wait 15 minutes, or ask an admin to reset the password."
)
# Requests a page makes by itself (the day view's polling): they do not count as activity, so a
# day view left open still signs out after the idle timeout.
PASSIVE_ENDPOINTS = frozenset({"console.day_fragment"})
LOGIN_FAILED = "Email or password is wrong."
CODE_FAILED = "That code is not right. Type the 6 digits your app shows now, or one of your recovery codes."
# Between a right password and the code of a two-step sign-in, the session cookie holds only the
# user's id and email and when the password was given: no access to anything until the code.
PENDING = "pending_login"
PENDING_SECONDS = 300
MAX_CODE = 64
MAX_EMAIL = 254
MAX_PASSWORD = 1024  # hashing a megabyte-long "password" is work an attacker should not get for free


class StaffIdentity(UserMixin):
    """The signed-in staff member: plain values read once per request, so a view's operation
    may roll the session back (``write_transaction``) without expiring ``current_user``."""

    def __init__(
        self, *, user_id: int, email: str, name: str, role: str, practitioner_id: int | None, session_key: str
    ):
        self.user_id = user_id
        self.email = email
        self.name = name
        self.role = role
        self.practitioner_id = practitioner_id
        self.session_key = session_key

    def get_id(self) -> str:
        # Only the random key of the server-side session rides in the cookie (staff.sessions):
        # signing out, a password change or a deactivation ends it for every copy of the cookie.
        return self.session_key

    @property
    def actor(self) -> access.Actor:
        return access.Actor(user_id=self.user_id, role=self.role, practitioner_id=self.practitioner_id)

    def may(self, resource: str, action: str) -> bool:
        """Whether the policy lets this user do ``action`` on some ``resource`` at all."""
        return access.allows(self.actor, resource, action)

    @property
    def label(self) -> str:
        return self.name or self.email

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)


def _identity(user: User, practitioner_id: int | None, session_key: str) -> StaffIdentity:
    return StaffIdentity(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        practitioner_id=practitioner_id,
        session_key=session_key,
    )


def _practitioner_id(db, user_id: int) -> int | None:
    return db.scalar(select(Practitioner.id).where(Practitioner.user_id == user_id).order_by(Practitioner.id).limit(1))


def _auth_unit_of_work():
    """Sign-in state is read and written in its own short transaction, committed at once, apart
    from the request's unit of work (which a failing view rolls back)."""
    return current_app.extensions["database"].unit_of_work()


def load_user(session_key: str) -> StaffIdentity | None:
    """Flask-Login's user loader: the signed-in staff member of a live server-side session, or
    None (unknown, signed out, idle for 30 minutes, older than 12 hours, user deactivated).
    A passive request (:data:`PASSIVE_ENDPOINTS`) does not mark the session seen."""
    with _auth_unit_of_work() as db:
        live = staff_sessions.resolve(db, session_key, now=utcnow(), touch=request.endpoint not in PASSIVE_ENDPOINTS)
        if live is None:
            return None
        return _identity(live.user, _practitioner_id(db, live.user_id), session_key)


def init_login(app) -> LoginManager:
    manager = LoginManager()
    manager.init_app(app)
    manager.login_view = "console.login"
    manager.user_loader(load_user)
    manager.unauthorized_handler(_unauthorized)
    return manager


def _unauthorized():
    flash("Please log in.", "info")
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("console.login", next=target))


def require_login():
    """``before_request`` of the console: every page but the login page needs a signed-in user."""
    if request.endpoint in ("console.login", "console.login_code", "console.static") or current_user.is_authenticated:
        return None
    return current_app.login_manager.unauthorized()


def actor() -> access.Actor:
    """The policy's view of whoever is asking (anonymous when nobody is signed in)."""
    return current_user.actor if current_user.is_authenticated else access.ANONYMOUS_ACTOR


_FORBIDDEN_MESSAGES = {
    "settings": (
        "For admins only",
        "The clinic's settings are changed by an admin. Ask one if something needs to change.",
    ),
    "user": ("For admins only", "Staff accounts are managed by an admin. Ask one if something needs to change."),
}


def check_access():
    """``before_request`` of the console, after :func:`require_login`: the access policy's answer
    for this endpoint and its URL's objects. 403 when the role may not, 404 when the object is
    another practitioner's (as for an id that does not exist)."""
    try:
        access.authorize(db_session(), actor(), request.endpoint, request.view_args)
    except access.Forbidden:
        rule = access.rule_of(request.endpoint)
        title, message = _FORBIDDEN_MESSAGES.get(rule[0] if rule else "", (None, None))
        if title is None:
            abort(403)
        return render_template("staff/error.html", status=403, title=title, message=message), 403
    except NotFound:
        abort(404)
    return None


def practitioner_scope(resource: str = "appointment", action: str = "read") -> int | None:
    """None when the user sees everyone's ``resource``; else the one practitioner whose they see."""
    return access.practitioner_scope(actor(), resource, action)


def login_account_key() -> str:
    """The per-account limit's key: the email typed, normalised (an unknown email counts too,
    so the limit tells nothing about which accounts exist); on the code step, the email whose
    password was right, so wrong codes count against the same account."""
    email = request.form.get("email") or session.get(PENDING, {}).get("email", "")
    return "login-account:" + email.strip().lower()[:MAX_EMAIL]


def login_failed(_response) -> bool:
    """Whether this sign-in attempt failed (the per-account limit counts only those)."""
    return bool(g.get("login_failed"))


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path of this site only (no open redirect)."""
    default = url_for("console.day")
    if not target or len(target) > 500 or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/staff/"):
        return default
    return parts.path + (f"?{parts.query}" if parts.query else "")


# --- views ---------------------------------------------------------------------------------------


def login():
    """GET: the form. POST: check the credentials; one answer for an unknown email and a wrong
    password. Rate limited per address (see the URL map)."""
    next_url = request.values.get("next", "")
    if current_user.is_authenticated:
        return redirect(safe_next(next_url))
    email, error = "", None
    if request.method == "POST":
        email = request.form.get("email", "").strip()[:MAX_EMAIL]
        password = request.form.get("password", "")[:MAX_PASSWORD]
        user = authenticate(db_session(), email, password) if email and password else None
        if user is not None and user.totp_enabled:
            session.clear()
            session[PENDING] = {"user_id": user.id, "email": user.email, "at": int(utcnow().timestamp())}
            return redirect(url_for("console.login_code", next=next_url or None))
        if user is not None:
            return sign_in(user, next_url)
        log.info("staff login failed")
        g.login_failed = True
        error = LOGIN_FAILED
    return render_template("staff/login.html", email=email, error=error, next_url=next_url)


def sign_in(user: User, next_url: str):
    """Start a console session for ``user`` (in its own unit of work) and go to ``next_url`` (a
    console path; the day page otherwise): after a right password, a right code, or the first
    admin's account made by the guided setup."""
    with _auth_unit_of_work() as db:
        key = staff_sessions.start(
            db, user.id, now=utcnow(), ip=request.remote_addr, user_agent=request.user_agent.string
        )
        identity = _identity(user, _practitioner_id(db, user.id), key)
    session.clear()  # nothing from before signing in carries over
    login_user(identity)
    log.info("staff login: user %s", identity.user_id)
    return redirect(safe_next(next_url))


def login_code():
    """The second step of a two-step sign-in: a 6-digit code from the authenticator app, or a
    recovery code. A wrong code counts against the account's sign-in limit, like a wrong
    password; the step expires 5 minutes after the password was given."""
    next_url = request.values.get("next", "")
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or utcnow().timestamp() - pending.get("at", 0) > PENDING_SECONDS:
        session.pop(PENDING, None)
        flash("Please log in.", "info")
        return redirect(url_for("console.login", next=next_url or None))
    error = None
    if request.method == "POST":
        code = request.form.get("code", "")[:MAX_CODE]
        with _auth_unit_of_work() as db:
            user = db.get(User, pending["user_id"])
            ok = user is not None and user.active and check_second_factor(db, user, code, now=utcnow())
        if ok:
            return sign_in(user, next_url)
        log.info("staff login code failed")
        g.login_failed = True
        error = CODE_FAILED
    return render_template("staff/login_code.html", error=error, next_url=next_url)


def logout():
    if current_user.is_authenticated:
        with _auth_unit_of_work() as db:
            staff_sessions.end(db, current_user.session_key, now=utcnow())
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("console.login"))
