"""Reading the waitlist for staff. Read-only; a session and plain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from booking_service.clinic.models import Location, Practitioner, Service
from booking_service.scheduling.models import Appointment
from booking_service.waitlist.models import WaitlistEntry, WaitlistOffer, WaitlistOpening

OPEN_STATUSES = ("waiting", "offered")


@dataclass(frozen=True)
class WaitlistRow:
    entry: WaitlistEntry
    service: Service
    location: Location
    practitioner: Practitioner | None  # None: any practitioner


def open_entries(session: Session, *, location_id: int | None = None, limit: int = 500) -> list[WaitlistRow]:
    """Entries still waiting or offered a time, waiting ones first, then oldest first (first come,
    first served), with patient, service, location and practitioner in one query."""
    query = (
        select(WaitlistEntry, Service, Location, Practitioner)
        .options(joinedload(WaitlistEntry.patient))
        .join(Service, WaitlistEntry.service_id == Service.id)
        .join(Location, WaitlistEntry.location_id == Location.id)
        .outerjoin(Practitioner, WaitlistEntry.practitioner_id == Practitioner.id)
        .where(WaitlistEntry.status.in_(OPEN_STATUSES))
    )
    if location_id is not None:
        query = query.where(WaitlistEntry.location_id == location_id)
    query = query.order_by(
        case((WaitlistEntry.status == "waiting", 0), else_=1), WaitlistEntry.created_at, WaitlistEntry.id
    ).limit(limit)
    return [WaitlistRow(*row) for row in session.execute(query).unique()]


@dataclass(frozen=True)
class OpeningRow:
    opening: WaitlistOpening
    service: Service
    location: Location
    practitioner: Practitioner
    booked: Appointment | None  # the booking that filled it


def openings(session: Session, *, since: datetime, limit: int = 50) -> list[OpeningRow]:
    """Freed times still being offered, then those closed since ``since``, newest first, each
    with its chain of offers (entry and patient loaded): the waitlist page's history."""
    query = (
        select(WaitlistOpening, Service, Location, Practitioner, Appointment)
        .options(selectinload(WaitlistOpening.offers).joinedload(WaitlistOffer.entry).joinedload(WaitlistEntry.patient))
        .join(Service, WaitlistOpening.service_id == Service.id)
        .join(Location, WaitlistOpening.location_id == Location.id)
        .join(Practitioner, WaitlistOpening.practitioner_id == Practitioner.id)
        .outerjoin(Appointment, WaitlistOpening.booked_appointment_id == Appointment.id)
        .where(or_(WaitlistOpening.status == "open", WaitlistOpening.closed_at >= since))
        .order_by(case((WaitlistOpening.status == "open", 0), else_=1), WaitlistOpening.created_at.desc())
        .limit(limit)
    )
    return [OpeningRow(*row) for row in session.execute(query)]
