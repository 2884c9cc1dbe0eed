"""Reading the clinic's catalogue: the one place that knows what "bookable" means.

Every reader takes the catalogue from the process's cache (``clinic.cache``: one version
statement per transaction, no other SQL) and hands out instances attached to the caller's
session. A transaction that has changed the catalogue reads the database instead, so it sees its
own changes; the rules below are written once and applied to either source.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from booking_service import errors
from booking_service.clinic.cache import Catalogue, attach, attach_all, catalogue
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service, WorkingHours
from booking_service.errors import NotFound, ValidationFailed


def get_clinic(session: Session) -> ClinicSettings:
    """The clinic's settings row. Raises NotFound when the clinic has not been set up yet."""
    cached = catalogue(session)
    if cached is None:
        clinic = session.get(ClinicSettings, 1)
    else:
        clinic = attach(session, cached.clinic) if cached.clinic is not None else None
    if clinic is None:
        raise NotFound(errors.CLINIC_NOT_SET_UP)
    return clinic


def _service_offered(service: Service, *, online_only: bool) -> bool:
    return service.active and (service.online_bookable or not online_only)


def _practitioner_offered(
    cached: Catalogue, practitioner: Practitioner, location_id: int | None, service_id: int | None, online_only: bool
) -> bool:
    return (
        practitioner.active
        and (practitioner.online_bookable or not online_only)
        and (location_id is None or location_id in cached.practitioner_locations.get(practitioner.id, ()))
        and (service_id is None or service_id in cached.practitioner_services.get(practitioner.id, ()))
    )


def active_services(session: Session, *, online_only: bool = True) -> list[Service]:
    """Active services (``online_only``: only those patients may book online), in the clinic's order."""
    cached = catalogue(session)
    if cached is None:
        query = select(Service).where(Service.active.is_(True))
        if online_only:
            query = query.where(Service.online_bookable.is_(True))
        return list(session.scalars(query.order_by(Service.sort_order, Service.id)))
    return attach_all(session, (s for s in cached.services.values() if _service_offered(s, online_only=online_only)))


def active_locations(session: Session) -> list[Location]:
    cached = catalogue(session)
    if cached is None:
        return list(session.scalars(select(Location).where(Location.active.is_(True)).order_by(Location.id)))
    return attach_all(session, (loc for loc in cached.locations.values() if loc.active))


def practitioner_location_on(session: Session, practitioner_id: int, day: date) -> int | None:
    """Where the practitioner works on ``day``: the active location of their earliest hours that
    weekday, else the first active location they work at; None when they work nowhere."""
    cached = catalogue(session)
    if cached is None:
        return _practitioner_location_on_db(session, practitioner_id, day)
    rows = [
        row
        for row in cached.hours_of(practitioner_id)
        if row.weekday == day.weekday()
        and row.valid_within(day, day)
        and (location := cached.locations.get(row.location_id)) is not None
        and location.active
    ]
    if rows:
        return min(rows, key=lambda row: (row.start, row.id)).location_id
    works_at = cached.practitioner_locations.get(practitioner_id, frozenset())
    return next((loc.id for loc in cached.locations.values() if loc.active and loc.id in works_at), None)


def _practitioner_location_on_db(session: Session, practitioner_id: int, day: date) -> int | None:
    hours = select(WorkingHours.location_id).join(Location, Location.id == WorkingHours.location_id)
    found = session.scalars(
        hours.where(
            WorkingHours.practitioner_id == practitioner_id,
            WorkingHours.weekday == day.weekday(),
            or_(WorkingHours.valid_from.is_(None), WorkingHours.valid_from <= day),
            or_(WorkingHours.valid_until.is_(None), WorkingHours.valid_until >= day),
            Location.active.is_(True),
        )
        .order_by(WorkingHours.start_time, WorkingHours.id)
        .limit(1)
    ).first()
    if found is not None:
        return found
    return session.scalars(
        select(Location.id)
        .where(Location.active.is_(True), Location.practitioners.any(Practitioner.id == practitioner_id))
        .order_by(Location.id)
        .limit(1)
    ).first()


def practitioners_for(
    session: Session, *, location_id: int | None = None, service_id: int | None = None, online_only: bool = False
) -> list[Practitioner]:
    """Active practitioners (not those who left), optionally only those working at a location
    and offering a service; ``online_only``: only those patients may book online."""
    cached = catalogue(session)
    if cached is None:
        query = select(Practitioner).where(Practitioner.active.is_(True))
        if online_only:
            query = query.where(Practitioner.online_bookable.is_(True))
        if location_id is not None:
            query = query.where(Practitioner.locations.any(Location.id == location_id))
        if service_id is not None:
            query = query.where(Practitioner.services.any(Service.id == service_id))
        return list(session.scalars(query.order_by(Practitioner.id)))
    return attach_all(
        session,
        (
            p
            for p in cached.practitioners.values()
            if _practitioner_offered(cached, p, location_id, service_id, online_only)
        ),
    )


def bookable(
    session: Session,
    *,
    service_id: int,
    location_id: int,
    practitioner_id: int | None,
    staff: bool = False,
) -> tuple[Service, Location, list[Practitioner]]:
    """The service, location and candidate practitioners for a booking or a slot search.

    Patients (``staff`` False) see only services and practitioners bookable online; staff
    every active one. Raises NotFound for an unknown or inactive service or location (field
    named), and ValidationFailed when the chosen practitioner does not offer that service there.
    """
    cached = catalogue(session)
    if cached is None:
        service = session.get(Service, service_id)
        location = session.get(Location, location_id)
    else:
        service, location = cached.services.get(service_id), cached.locations.get(location_id)
    if service is None or not _service_offered(service, online_only=not staff):
        raise NotFound(errors.SERVICE_NOT_FOUND, fields={"service_id": errors.SERVICE_UNKNOWN})
    if location is None or not location.active:
        raise NotFound(errors.LOCATION_NOT_FOUND, fields={"location_id": errors.LOCATION_UNKNOWN})
    if cached is None:
        candidates = practitioners_for(session, location_id=location_id, service_id=service_id, online_only=not staff)
    else:
        service, location = attach(session, service), attach(session, location)
        candidates = [
            p
            for p in cached.practitioners.values()
            if (practitioner_id is None or p.id == practitioner_id)
            and _practitioner_offered(cached, p, location_id, service_id, not staff)
        ]
    if practitioner_id is not None:
        candidates = [p for p in candidates if p.id == practitioner_id]
        if not candidates:
            raise ValidationFailed(
                errors.PRACTITIONER_NOT_OFFERING, fields={"practitioner_id": errors.PRACTITIONER_UNKNOWN}
            )
    if cached is not None:
        candidates = attach_all(session, candidates)
    return service, location, candidates
