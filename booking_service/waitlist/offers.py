"""The waitlist at work: offering a freed time to the patients waiting for it, and taking entries
off the list. Operations: a session and plain values, no commit.

An offer is a ``waitlist_offer`` message sent by the worker (text and/or e-mail, as the patient
agreed), with a link to the booking page already set to the entry's service and location. It
goes to whoever books first: offering does not hold the time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from booking_service import errors
from booking_service.clinic.models import ClinicSettings, Location
from booking_service.db import write_transaction
from booking_service.errors import InvalidTransition, NotFound
from booking_service.messaging import planning
from booking_service.scheduling.models import Appointment
from booking_service.waitlist.models import WaitlistEntry


def _get(session: Session, entry_id: int) -> WaitlistEntry:
    write_transaction(session)
    entry = session.scalars(select(WaitlistEntry).where(WaitlistEntry.id == entry_id)).first()
    if entry is None:
        raise NotFound(errors.WAITLIST_ENTRY_NOT_FOUND)
    return entry


def booking_link(entry: WaitlistEntry) -> str:
    """The booking page, set to the entry's service, location and (if any) practitioner."""
    query = {"service_id": entry.service_id, "location_id": entry.location_id}
    if entry.practitioner_id is not None:
        query["practitioner_id"] = entry.practitioner_id
    return "/?" + urlencode(query)


def _offer(session: Session, entry: WaitlistEntry, *, start: datetime | None, now: datetime) -> int:
    location = session.get(Location, entry.location_id)
    rows = planning.waitlist_offer(
        session,
        entry.patient,
        entry_id=entry.id,
        start=start,
        timezone=location.timezone,
        location_name=location.name,
        link=booking_link(entry),
        now=now,
    )
    entry.status = "offered"
    entry.offered_at = now
    session.flush()
    return len(rows)


def offer(
    session: Session, entry_id: int, *, now: datetime, start: datetime | None = None
) -> tuple[WaitlistEntry, int]:
    """Offer a time (``start``, or "a time has opened up" when None) to this entry's patient.

    Returns (entry, number of messages planned): 0 means the patient agreed to no channel, and
    staff should phone. Raises NotFound, or InvalidTransition when the entry was booked or removed.
    """
    entry = _get(session, entry_id)
    if entry.status not in ("waiting", "offered"):
        raise InvalidTransition(errors.WAITLIST_ENTRY_CLOSED, params={"status": entry.status})
    return entry, _offer(session, entry, start=start, now=now)


def offer_freed_time(
    session: Session, appointment: Appointment, *, clinic: ClinicSettings, now: datetime
) -> WaitlistEntry | None:
    """After ``appointment`` was cancelled: offer its time to the longest-waiting matching entry.

    Matching: same service and location, the same practitioner or none asked for, the freed
    visit's local date inside the entry's dates, and the time still bookable (minimum notice).
    The entry's patient is never the one who cancelled. Returns the entry offered, or None.
    """
    if appointment.start_at < now + timedelta(minutes=clinic.min_notice_minutes):
        return None
    day = appointment.start_at.astimezone(ZoneInfo(appointment.location.timezone)).date()
    entry = session.scalars(
        select(WaitlistEntry)
        .where(
            WaitlistEntry.status == "waiting",
            WaitlistEntry.service_id == appointment.service_id,
            WaitlistEntry.location_id == appointment.location_id,
            or_(WaitlistEntry.practitioner_id.is_(None), WaitlistEntry.practitioner_id == appointment.practitioner_id),
            WaitlistEntry.earliest_date <= day,
            WaitlistEntry.latest_date >= day,
            WaitlistEntry.patient_id != appointment.patient_id,
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .limit(1)
    ).first()
    if entry is None:
        return None
    _offer(session, entry, start=appointment.start_at, now=now)
    return entry


def mark_offered(session: Session, entry_id: int, *, now: datetime) -> WaitlistEntry:
    """Record that a time was offered by phone (no message sent). Raises NotFound, or
    InvalidTransition when the entry is no longer waiting."""
    entry = _get(session, entry_id)
    if entry.status != "waiting":
        raise InvalidTransition(errors.WAITLIST_ENTRY_CLOSED, params={"status": entry.status})
    entry.status = "offered"
    entry.offered_at = now
    session.flush()
    return entry


def remove_entry(session: Session, entry_id: int) -> WaitlistEntry:
    """Take the entry off the list (kept, with status ``removed``). Raises NotFound, or
    InvalidTransition when it was already booked or removed."""
    entry = _get(session, entry_id)
    if entry.status not in ("waiting", "offered"):
        raise InvalidTransition(errors.WAITLIST_ENTRY_CLOSED, params={"status": entry.status})
    entry.status = "removed"
    session.flush()
    return entry
