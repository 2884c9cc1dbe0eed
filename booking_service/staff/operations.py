"""Staff accounts: creation, passwords and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from booking_service import audit, errors
from booking_service.clinic.models import Practitioner
from booking_service.db import utcnow
from booking_service.errors import Conflict, NotFound, ValidationFailed
from booking_service.patients.operations import normalise_email
from booking_service.staff import sessions
from booking_service.staff.models import ROLES, ApiToken, User

MIN_PASSWORD_LENGTH = 10
LAST_USED_RESOLUTION = timedelta(minutes=5)
TOKEN_LIFETIME = timedelta(days=90)
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def create_user(
    session: Session,
    email: str,
    *,
    role: str,
    password: str | None = None,
    name: str = "",
    update: bool = False,
    practitioner_id: int | None = None,
    now: datetime | None = None,
) -> tuple[User, str | None]:
    """Create (or with ``update`` change) a staff user. Returns (user, generated password or None).

    Updating a user sets a new password, so it ends every console session of theirs and revokes
    their API tokens (:func:`lock_out`): whoever held the old password holds nothing now.
    ``practitioner_id`` links a practitioner login to its practitioner (what it may see).

    Raises Conflict when the email exists and ``update`` is False; ValidationFailed for an unknown
    role, a bad email or a password shorter than 10 characters.
    """
    if role not in ROLES:
        raise ValidationFailed(
            errors.ROLE_UNKNOWN,
            fields={"role": errors.ROLE_INVALID},
            params={"role": role},
            field_params={"role": {"roles": ", ".join(ROLES)}},
        )
    practitioner = None
    if practitioner_id is not None:
        if role != "practitioner":
            raise ValidationFailed(
                errors.PRACTITIONER_LINK_NEEDS_ROLE, fields={"practitioner_id": errors.PRACTITIONER_LINK_INVALID}
            )
        practitioner = session.get(Practitioner, practitioner_id)
        if practitioner is None:
            raise NotFound(
                errors.PRACTITIONER_NOT_FOUND,
                fields={"practitioner_id": errors.PRACTITIONER_UNKNOWN},
                params={"id": practitioner_id},
            )
    email = normalise_email(email)
    generated = None
    if password is None:
        generated = password = secrets.token_urlsafe(12)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            errors.PASSWORD_TOO_SHORT,
            fields={"password": errors.PASSWORD_LENGTH},
            field_params={"password": {"minimum": MIN_PASSWORD_LENGTH}},
        )
    user = session.scalars(select(User).where(User.email == email)).first()
    if user is not None and not update:
        raise Conflict(errors.USER_EXISTS, params={"email": email})
    user_is_new = user is None
    if user is None:
        user = User(email=email)
        session.add(user)
    else:
        lock_out(session, user, now=now or utcnow(), reason="password_changed")
    user.role = role
    user.name = name or user.name or ""
    user.password_hash = generate_password_hash(password)
    user.active = True
    session.flush()
    if practitioner is not None:
        practitioner.user_id = user.id
        session.flush()
    audit.record(
        session,
        "user.create" if user_is_new else "user.update",
        "user",
        user.id,
        {"role": role, "practitioner_id": practitioner_id},
        now=now,
    )
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


def lock_out(session: Session, user: User, *, now: datetime, reason: str) -> None:
    """End every console session of ``user`` and revoke every API token of theirs (a password
    change, a deactivation, a role change)."""
    sessions.end_all(session, user.id, now=now, reason=reason)
    revoke_tokens(session, user.id, now=now)


def revoke_tokens(session: Session, user_id: int, *, now: datetime) -> int:
    """Revoke every live API token of a user; returns how many."""
    tokens = session.scalars(select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)))
    count = 0
    for token in tokens:
        token.revoked_at = now
        count += 1
        audit.record(session, "token.revoke", "api_token", token.id, {"user_id": user_id}, now=now)
    return count


def revoke_api_tokens(session: Session, email: str, *, now: datetime) -> int:
    """``revoke-api-token EMAIL``: revoke every token of that staff user; returns how many.

    Raises NotFound when there is no such user.
    """
    user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        raise NotFound(errors.USER_NOT_FOUND, params={"email": email})
    return revoke_tokens(session, user.id, now=now)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(session: Session, email: str, *, now: datetime, lifetime: timedelta = TOKEN_LIFETIME) -> str:
    """A new Bearer token for the staff user ``email`` (shown once; only its hash is kept),
    valid for ``lifetime`` (90 days by default).

    Raises NotFound when there is no such user, ValidationFailed when they are deactivated.
    """
    user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        raise NotFound(errors.USER_NOT_FOUND, params={"email": email})
    if not user.active:
        raise ValidationFailed(errors.USER_DEACTIVATED, params={"email": user.email})
    token = "pbs_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=_hash(token), created_at=now, expires_at=now + lifetime))
    session.flush()
    token_id = session.scalar(select(ApiToken.id).where(ApiToken.token_hash == _hash(token)))
    audit.record(session, "token.create", "api_token", token_id, {"user_id": user.id}, now=now)
    return token


def user_for_token(session: Session, token: str, *, now: datetime) -> User | None:
    """The active user owning this unrevoked, unexpired token, or None."""
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == _hash(token))).first()
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    # Recorded at most every five minutes, so staff reads do not each take a write lock.
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row.user
