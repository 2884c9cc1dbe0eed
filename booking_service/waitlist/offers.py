"""The front desk working the waitlist: noting that a freed time was offered to someone, and
taking entries off the list. Operations: a session and plain values, no commit.

Offering is recorded by hand for now (staff phone the patient); sending a ``waitlist_offer``
message is for later.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.db import write_transaction
from booking_service.errors import InvalidTransition, NotFound
from booking_service.waitlist.models import WaitlistEntry


def _get(session: Session, entry_id: int) -> WaitlistEntry:
    write_transaction(session)
    entry = session.scalars(select(WaitlistEntry).where(WaitlistEntry.id == entry_id)).first()
    if entry is None:
        raise NotFound("There is no such waitlist entry.")
    return entry


def mark_offered(session: Session, entry_id: int, *, now: datetime) -> WaitlistEntry:
    """Record that a time was offered to this patient. Raises NotFound, or InvalidTransition
    when the entry is no longer waiting."""
    entry = _get(session, entry_id)
    if entry.status != "waiting":
        raise InvalidTransition(f"This waitlist entry is {entry.status}, not waiting.")
    entry.status = "offered"
    entry.offered_at = now
    session.flush()
    return entry


def remove_entry(session: Session, entry_id: int) -> WaitlistEntry:
    """Take the entry off the list (kept, with status ``removed``). Raises NotFound, or
    InvalidTransition when it was already booked or removed."""
    entry = _get(session, entry_id)
    if entry.status not in ("waiting", "offered"):
        raise InvalidTransition(f"This waitlist entry is already {entry.status}.")
    entry.status = "removed"
    session.flush()
    return entry
