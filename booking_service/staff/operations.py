"""Staff accounts: creation, administration (role, activation, password, practitioner link),
API tokens, and the optional two-step sign-in (TOTP with recovery codes)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from booking_service import audit, errors
from booking_service.clinic.models import Practitioner
from booking_service.db import utcnow
from booking_service.errors import Conflict, NotFound, ValidationFailed
from booking_service.patients.operations import normalise_email
from booking_service.staff import sessions
from booking_service.staff.models import ROLES, ApiToken, RecoveryCode, User

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
    return issue_api_token(session, user, now=now, lifetime=lifetime)[0]


def issue_api_token(
    session: Session, user: User, *, now: datetime, lifetime: timedelta = TOKEN_LIFETIME
) -> tuple[str, ApiToken]:
    """A new Bearer token for ``user``: (the token, shown once; its row, which keeps the hash only).

    Raises ValidationFailed when the user is deactivated.
    """
    if not user.active:
        raise ValidationFailed(errors.USER_DEACTIVATED, params={"email": user.email})
    token = "pbs_" + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=_hash(token), created_at=now, expires_at=now + lifetime)
    session.add(row)
    session.flush()
    audit.record(session, "token.create", "api_token", row.id, {"user_id": user.id}, now=now)
    return token, row


def tokens_of(session: Session, user_id: int | None = None) -> list[ApiToken]:
    """API tokens, newest first: one user's, or everyone's (``user_id`` None)."""
    query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: int, *, now: datetime) -> ApiToken:
    """Revoke one token (revoking a revoked one changes nothing). Raises NotFound."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound("There is no such API token.")
    if token.revoked_at is None:
        token.revoked_at = now
        audit.record(session, "token.revoke", "api_token", token.id, {"user_id": token.user_id}, now=now)
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


# --- user administration (admins, in the console) ---------------------------------------------------


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("There is no such staff user.")
    return user


def _keep_an_admin(session: Session, user: User) -> None:
    """Raises Conflict when ``user`` is the last active admin: a clinic with no admin could no
    longer manage its staff or settings from the console."""
    others = session.scalar(
        select(func.count()).select_from(User).where(User.role == "admin", User.active.is_(True), User.id != user.id)
    )
    if not others:
        raise Conflict("This is the last active admin account. Make another admin first.")


def set_active(session: Session, user_id: int, active: bool, *, now: datetime) -> User:
    """Deactivate (ending every session and revoking every token) or reactivate a staff user.

    Raises NotFound, or Conflict when it would deactivate the last active admin.
    """
    user = _user(session, user_id)
    if user.active and not active:
        if user.role == "admin":
            _keep_an_admin(session, user)
        lock_out(session, user, now=now, reason="deactivated")
    user.active = active
    session.flush()
    return user


def change_role(session: Session, user_id: int, role: str, *, now: datetime) -> User:
    """Give a staff user another role; their sessions end and their tokens are revoked (both were
    granted under the old role). A user who is no longer a practitioner is unlinked.

    Raises NotFound, ValidationFailed for an unknown role, Conflict when it would demote the last
    active admin.
    """
    user = _user(session, user_id)
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role {role!r}.", fields={"role": f"Use one of {', '.join(ROLES)}."})
    if role == user.role:
        return user
    if user.role == "admin" and user.active:
        _keep_an_admin(session, user)
    lock_out(session, user, now=now, reason="role_changed")
    user.role = role
    if role != "practitioner":
        for practitioner in session.scalars(select(Practitioner).where(Practitioner.user_id == user.id)):
            practitioner.user_id = None
    session.flush()
    return user


def reset_password(session: Session, user_id: int, password: str | None, *, now: datetime) -> tuple[User, str | None]:
    """Set a new password (typed, or generated when None: returned to be shown once); every
    session of the user ends and every token is revoked.

    Raises NotFound, ValidationFailed for a password shorter than 10 characters.
    """
    user = _user(session, user_id)
    generated = None
    if password is None:
        generated = password = secrets.token_urlsafe(12)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            "Password too short.", fields={"password": f"Use at least {MIN_PASSWORD_LENGTH} characters."}
        )
    lock_out(session, user, now=now, reason="password_changed")
    user.password_hash = generate_password_hash(password)
    session.flush()
    return user, generated


def link_practitioner(session: Session, user_id: int, practitioner_id: int | None) -> User:
    """Link a practitioner login to its practitioner (None: unlink), which decides whose
    appointments and patients it sees. A practitioner has at most one login.

    Raises NotFound, ValidationFailed when the user is not a practitioner.
    """
    user = _user(session, user_id)
    if practitioner_id is not None and user.role != "practitioner":
        raise ValidationFailed(
            "Only a practitioner login is linked to a practitioner.",
            fields={"practitioner_id": "Give the user the practitioner role first."},
        )
    target = None
    if practitioner_id is not None:
        target = session.get(Practitioner, practitioner_id)
        if target is None:
            raise NotFound(f"There is no practitioner with id {practitioner_id}.")
    for practitioner in session.scalars(select(Practitioner).where(Practitioner.user_id == user.id)):
        practitioner.user_id = None
    if target is not None:
        target.user_id = user.id
    session.flush()
    return user


# --- two-step sign-in (TOTP), optional, for admins --------------------------------------------------

TOTP_ISSUER = "Clinic staff"
RECOVERY_CODES = 10
_STEP_SECONDS = 30


def start_totp(session: Session, user: User) -> str:
    """Begin turning two-step sign-in on: a new secret (base32), not yet in force until
    :func:`confirm_totp`. Raises ValidationFailed for a non-admin or when it is already on."""
    if user.role != "admin":
        raise ValidationFailed("Two-step sign-in is offered to admins.")
    if user.totp_enabled:
        raise ValidationFailed("Two-step sign-in is already on.")
    user.totp_secret = pyotp.random_base32()
    session.flush()
    return user.totp_secret


def totp_uri(user: User) -> str:
    """The ``otpauth://`` URI of the user's secret (for authenticator apps that take a link)."""
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The 30-second time step whose code is ``code`` (now, or one step either side, for clock
    drift), or None."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    step = int(now.timestamp()) // _STEP_SECONDS
    for candidate in (step, step - 1, step + 1):
        if secrets.compare_digest(totp.at(candidate * _STEP_SECONDS), code):
            return candidate
    return None


def confirm_totp(session: Session, user: User, code: str, *, now: datetime) -> list[str]:
    """Put two-step sign-in in force once a code from the new secret is right; returns 10 new
    single-use recovery codes (shown once; only their hashes are kept).

    Raises ValidationFailed when nothing was started or the code is wrong.
    """
    if user.totp_secret is None or user.totp_enabled:
        raise ValidationFailed("Start turning two-step sign-in on first.")
    step = _matching_step(user.totp_secret, code, now)
    if step is None:
        raise ValidationFailed("That code is not right.", fields={"code": "Type the 6 digits your app shows now."})
    user.totp_enabled_at = now
    user.totp_last_step = step
    return new_recovery_codes(session, user, now=now)


def new_recovery_codes(session: Session, user: User, *, now: datetime) -> list[str]:
    """Replace the user's recovery codes with 10 new ones (returned once)."""
    for old in session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        session.delete(old)
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(6)  # 48 bits, typed as xxxx-xxxx-xxxx
        code = f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"
        codes.append(code)
        session.add(RecoveryCode(user_id=user.id, code_hash=_recovery_hash(code), created_at=now))
    session.flush()
    return codes


def _recovery_hash(code: str) -> str:
    return _hash("".join(code.lower().split()).replace("-", ""))


def check_second_factor(session: Session, user: User, code: str, *, now: datetime) -> bool:
    """Whether ``code`` is the user's current TOTP code (not one already used) or one of their
    unused recovery codes, which it then uses up."""
    if not user.totp_enabled:
        return False
    step = _matching_step(user.totp_secret, code, now)
    if step is not None:
        if user.totp_last_step is not None and step <= user.totp_last_step:
            return False  # a code seen once (or an older one) is not taken again
        user.totp_last_step = step
        return True
    row = session.scalars(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _recovery_hash(code[:64]),
            RecoveryCode.used_at.is_(None),
        )
    ).first()
    if row is None:
        return False
    row.used_at = now
    return True


def recovery_codes_left(session: Session, user_id: int) -> int:
    return session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )


def disable_totp(session: Session, user: User) -> None:
    """Turn two-step sign-in off (the secret and the recovery codes are deleted)."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    for old in session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        session.delete(old)
    session.flush()
