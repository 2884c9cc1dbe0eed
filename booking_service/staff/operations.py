"""Staff accounts: creation, passwords and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from booking_service.errors import Conflict, NotFound, ValidationFailed
from booking_service.patients.operations import normalise_email
from booking_service.staff.models import ROLES, ApiToken, User

MIN_PASSWORD_LENGTH = 10
LAST_USED_RESOLUTION = timedelta(minutes=5)
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def create_user(
    session: Session,
    email: str,
    *,
    role: str,
    password: str | None = None,
    name: str = "",
    update: bool = False,
) -> tuple[User, str | None]:
    """Create (or with ``update`` change) a staff user. Returns (user, generated password or None).

    Raises Conflict when the email exists and ``update`` is False; ValidationFailed for an unknown
    role, a bad email or a password shorter than 10 characters.
    """
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role {role!r}.", fields={"role": f"Use one of {', '.join(ROLES)}."})
    email = normalise_email(email)
    generated = None
    if password is None:
        generated = password = secrets.token_urlsafe(12)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            "Password too short.", fields={"password": f"Use at least {MIN_PASSWORD_LENGTH} characters."}
        )
    user = session.scalars(select(User).where(User.email == email)).first()
    if user is not None and not update:
        raise Conflict(f"A user with email {email} already exists (use --update to change it).")
    if user is None:
        user = User(email=email)
        session.add(user)
    user.role = role
    user.name = name or user.name or ""
    user.password_hash = generate_password_hash(password)
    user.active = True
    session.flush()
    return user, generated


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with these credentials, or None (same answer for unknown email)."""
    user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        # Hash anyway, so the time taken does not tell whether the email exists.
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not user.active or not check_password_hash(user.password_hash, password):
        return None
    return user


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(session: Session, email: str, *, now: datetime) -> str:
    """A new Bearer token for the staff user ``email`` (shown once; only its hash is kept).

    Raises NotFound when there is no such user.
    """
    user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        raise NotFound(f"There is no staff user with email {email}.")
    token = "pbs_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=_hash(token), created_at=now))
    session.flush()
    return token


def user_for_token(session: Session, token: str, *, now: datetime) -> User | None:
    """The active user owning this unrevoked token, or None."""
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == _hash(token))).first()
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    # Recorded at most every five minutes, so staff reads do not each take a write lock.
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row.user
