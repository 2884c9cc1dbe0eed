"""Time off and closures, with the appointments they leave in the way.

The clinic's rules (``clinic.operations``) record the absence or the closed day; which booked
appointments it overlaps is a scheduling question (``scheduling.queries``). Neither touches the
appointments: staff move or cancel them.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from booking_service.clinic import operations
from booking_service.clinic.models import Closure, TimeOff
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.queries import closure_conflicts, time_off_conflicts


def add_time_off(
    session: Session, practitioner_id: int, start_at: datetime, end_at: datetime, reason: str = ""
) -> tuple[TimeOff, list[Appointment]]:
    """:func:`~booking_service.clinic.operations.add_time_off` (same errors), then (the new row;
    the practitioner's active appointments overlapping it, in time order)."""
    time_off = operations.add_time_off(session, practitioner_id, start_at, end_at, reason)
    return time_off, time_off_conflicts(session, time_off)


def add_closure(
    session: Session, day: date | None, name: str, location_id: int | None = None
) -> tuple[Closure, list[Appointment]]:
    """:func:`~booking_service.clinic.operations.add_closure` (same errors), then (the new row;
    active appointments on that local day there, in time order)."""
    closure = operations.add_closure(session, day, name, location_id)
    return closure, closure_conflicts(session, closure)
