"""Console sign-ins held server side, so they can end.

The browser's signed cookie carries only a random key; :class:`~booking_service.staff.models.StaffSession`
keeps its SHA-256 with the times that bound it. A session ends on sign-out, after
:data:`IDLE_TIMEOUT` without a request, :data:`ABSOLUTE_TIMEOUT` after sign-in, and for every
session of a user whose password changes or who is deactivated (:func:`end_all`). A copied
cookie is then worth nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from booking_service.staff.models import StaffSession

IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
# last_seen_at is written at most this often: a page view is not a write each time.
SEEN_RESOLUTION = timedelta(minutes=1)
MAX_KEY_LENGTH = 64


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def start(
    session: Session, user_id: int, *, now: datetime, ip: str | None = None, user_agent: str | None = None
) -> str:
    """Open a session for user ``user_id``; returns the key for the cookie (shown once, stored hashed)."""
    key = secrets.token_urlsafe(32)
    session.add(
        StaffSession(
            user_id=user_id,
            key_hash=_hash(key),
            created_at=now,
            last_seen_at=now,
            ip=(ip or "")[:45] or None,
            user_agent=(user_agent or "")[:200] or None,
        )
    )
    session.flush()
    return key


def resolve(session: Session, key: str, *, now: datetime, touch: bool = True) -> StaffSession | None:
    """The live session for ``key`` (its user active), marking it seen unless ``touch`` is
    False (a page's own background polling is not activity); None when unknown, ended, idle
    longer than :data:`IDLE_TIMEOUT` or older than :data:`ABSOLUTE_TIMEOUT` (an expired
    session is ended on the way, with the reason)."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    row = session.scalars(
        select(StaffSession).options(joinedload(StaffSession.user)).where(StaffSession.key_hash == _hash(key))
    ).first()
    if row is None or row.ended_at is not None:
        return None
    expired = (
        "absolute_timeout"
        if now - row.created_at >= ABSOLUTE_TIMEOUT
        else "idle_timeout"
        if now - row.last_seen_at >= IDLE_TIMEOUT
        else None
    )
    if expired or not row.user.active:
        row.ended_at, row.ended_reason = now, expired or "deactivated"
        return None
    if touch and now - row.last_seen_at >= SEEN_RESOLUTION:
        row.last_seen_at = now
    return row


def end(session: Session, key: str, *, now: datetime, reason: str = "logout") -> bool:
    """End the session for ``key`` (sign-out). Returns whether a live one was ended."""
    result = session.execute(
        update(StaffSession)
        .where(StaffSession.key_hash == _hash(key), StaffSession.ended_at.is_(None))
        .values(ended_at=now, ended_reason=reason)
    )
    return result.rowcount == 1


def end_all(session: Session, user_id: int, *, now: datetime, reason: str) -> int:
    """End every live session of a user (password changed, deactivated, role changed)."""
    result = session.execute(
        update(StaffSession)
        .where(StaffSession.user_id == user_id, StaffSession.ended_at.is_(None))
        .values(ended_at=now, ended_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount
