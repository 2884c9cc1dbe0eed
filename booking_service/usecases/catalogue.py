"""Changing the catalogue without breaking bookings: the future appointments a change leaves to
move, listed before saving.

``clinic.catalogue`` checks and writes locations, practitioners and services and knows nothing of
appointments; which booked ones a change leaves in the wrong place is a scheduling question,
asked here. Saving never cancels or moves an appointment: when a change leaves some to move, it
is refused (:class:`ImpactNotConfirmed`, listing them) until the caller confirms, and the saved
change returns them so staff can move them.

The impact of a change, for active appointments (booked, confirmed, checked in) starting after
``now``:

- a location: closing it, or changing its time zone (its wall times would shift), leaves all of
  its appointments;
- a practitioner: leaving (inactive) leaves all of theirs; otherwise those at a location or of a
  service they no longer offer;
- a service: those with a practitioner no longer offering it, and, when the duration plus
  buffer grows, those the longer visit would run into the practitioner's next appointment.
  (A shorter service leaves booked visits at their booked length: nothing to move. Retiring a
  service leaves its booked visits as they are.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service import errors
from booking_service.clinic import catalogue
from booking_service.clinic.catalogue import LocationFields, PractitionerFields, ServiceFields
from booking_service.clinic.models import Location, Practitioner, Service
from booking_service.errors import Conflict
from booking_service.scheduling.models import ACTIVE_STATUSES, Appointment


class ImpactNotConfirmed(Conflict):
    """The change leaves future appointments to move and was not confirmed; ``appointments``
    lists them in time order (``params["count"]``: how many)."""

    def __init__(self, appointments: list[Appointment]) -> None:
        super().__init__(errors.IMPACT_NOT_CONFIRMED, params={"count": len(appointments)})
        self.appointments = appointments


def _future(now: datetime):
    return (
        select(Appointment)
        .where(Appointment.status.in_(ACTIVE_STATUSES), Appointment.start_at > now)
        .order_by(Appointment.start_at, Appointment.id)
    )


def _ids(values: object) -> list[int]:
    return sorted({value for value in values or () if isinstance(value, int)})  # type: ignore[attr-defined]


def impact_of_location(
    session: Session, location_id: int | None, fields: LocationFields, now: datetime
) -> list[Appointment]:
    """Future appointments at the location that closing it or changing its zone leaves to move."""
    location = session.get(Location, location_id) if location_id is not None else None
    if location is None or (fields.active and (fields.timezone or "").strip() == location.timezone):
        return []
    return list(session.scalars(_future(now).where(Appointment.location_id == location.id)))


def impact_of_practitioner(
    session: Session, practitioner_id: int | None, fields: PractitionerFields, now: datetime
) -> list[Appointment]:
    """Future appointments of the practitioner: all of them when they leave, else those at a
    location or of a service no longer theirs."""
    practitioner = session.get(Practitioner, practitioner_id) if practitioner_id is not None else None
    if practitioner is None:
        return []
    query = _future(now).where(Appointment.practitioner_id == practitioner.id)
    if fields.active:
        query = query.where(
            Appointment.location_id.not_in(_ids(fields.location_ids))
            | Appointment.service_id.not_in(_ids(fields.service_ids))
        )
    return list(session.scalars(query))


def impact_of_service(
    session: Session, service_id: int | None, fields: ServiceFields, now: datetime
) -> list[Appointment]:
    """Future appointments of the service with a practitioner who no longer offers it, and
    those that a longer duration plus buffer would run into the practitioner's next one."""
    service = session.get(Service, service_id) if service_id is not None else None
    if service is None:
        return []
    offered = _ids(fields.practitioner_ids)
    of_service = list(session.scalars(_future(now).where(Appointment.service_id == service.id)))
    affected = {a.id for a in of_service if a.practitioner_id not in offered}

    duration, buffer = fields.duration_minutes, fields.buffer_minutes
    if isinstance(duration, int) and isinstance(buffer, int):
        block = timedelta(minutes=duration + buffer)
        longer = [a for a in of_service if a.id not in affected and a.start_at + block > a.busy_until]
        if longer:
            following = _next_appointment(session, longer, now)
            for appointment in longer:
                after = following(appointment)
                if after is not None and appointment.start_at + block > after.start_at:
                    affected.add(appointment.id)
    return [a for a in of_service if a.id in affected]


def _next_appointment(
    session: Session, appointments: list[Appointment], now: datetime
) -> Callable[[Appointment], Appointment | None]:
    """For each of ``appointments``, its practitioner's next active appointment (one query)."""
    practitioners = {a.practitioner_id for a in appointments}
    by_practitioner: dict[int, list[Appointment]] = defaultdict(list)
    for other in session.scalars(_future(now).where(Appointment.practitioner_id.in_(practitioners))):
        by_practitioner[other.practitioner_id].append(other)

    def following(appointment: Appointment) -> Appointment | None:
        return next(
            (
                other
                for other in by_practitioner[appointment.practitioner_id]
                if other.id != appointment.id and other.start_at >= appointment.start_at
            ),
            None,
        )

    return following


def save_location(
    session: Session, location_id: int | None, fields: LocationFields, *, now: datetime, confirm_impact: bool = False
) -> tuple[Location, list[Appointment]]:
    """:func:`~booking_service.clinic.catalogue.save_location` (same errors) once the change is
    valid and, when it leaves future appointments to move, confirmed (else
    :class:`ImpactNotConfirmed`, nothing changed). Returns (the location, the appointments to move)."""
    catalogue.check_location(session, location_id, fields)
    impact = _gate(impact_of_location(session, location_id, fields, now), confirm_impact)
    return catalogue.save_location(session, location_id, fields), impact


def save_practitioner(
    session: Session,
    practitioner_id: int | None,
    fields: PractitionerFields,
    *,
    now: datetime,
    confirm_impact: bool = False,
) -> tuple[Practitioner, list[Appointment]]:
    """:func:`~booking_service.clinic.catalogue.save_practitioner`, confirmed like :func:`save_location`."""
    catalogue.check_practitioner(session, practitioner_id, fields)
    impact = _gate(impact_of_practitioner(session, practitioner_id, fields, now), confirm_impact)
    return catalogue.save_practitioner(session, practitioner_id, fields, now=now), impact


def save_service(
    session: Session, service_id: int | None, fields: ServiceFields, *, now: datetime, confirm_impact: bool = False
) -> tuple[Service, list[Appointment]]:
    """:func:`~booking_service.clinic.catalogue.save_service`, confirmed like :func:`save_location`."""
    catalogue.check_service(session, service_id, fields)
    impact = _gate(impact_of_service(session, service_id, fields, now), confirm_impact)
    return catalogue.save_service(session, service_id, fields), impact


def _gate(impact: list[Appointment], confirmed: bool) -> list[Appointment]:
    if impact and not confirmed:
        raise ImpactNotConfirmed(impact)
    return impact
