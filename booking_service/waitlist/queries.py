"""Reading the waitlist for staff. Read-only; a session and plain values."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, select
from sqlalchemy.orm import Session, joinedload

from booking_service.clinic.models import Location, Practitioner, Service
from booking_service.waitlist.models import WaitlistEntry

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
