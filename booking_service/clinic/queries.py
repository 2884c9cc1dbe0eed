"""Reading the clinic's catalogue: the one place that knows what "bookable" means."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service import errors
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service
from booking_service.errors import NotFound, ValidationFailed


def get_clinic(session: Session) -> ClinicSettings:
    """The clinic's settings row. Raises NotFound when the clinic has not been set up yet."""
    clinic = session.get(ClinicSettings, 1)
    if clinic is None:
        raise NotFound(errors.CLINIC_NOT_SET_UP)
    return clinic


def active_services(session: Session, *, online_only: bool = True) -> list[Service]:
    query = select(Service).where(Service.active.is_(True))
    if online_only:
        query = query.where(Service.online_bookable.is_(True))
    return list(session.scalars(query.order_by(Service.sort_order, Service.id)))


def active_locations(session: Session) -> list[Location]:
    return list(session.scalars(select(Location).where(Location.active.is_(True)).order_by(Location.id)))


def practitioners_for(
    session: Session, *, location_id: int | None = None, service_id: int | None = None, online_only: bool = False
) -> list[Practitioner]:
    """Active practitioners (not those who left), optionally only those working at a location
    and offering a service; ``online_only``: only those patients may book online."""
    query = select(Practitioner).where(Practitioner.active.is_(True))
    if online_only:
        query = query.where(Practitioner.online_bookable.is_(True))
    if location_id is not None:
        query = query.where(Practitioner.locations.any(Location.id == location_id))
    if service_id is not None:
        query = query.where(Practitioner.services.any(Service.id == service_id))
    return list(session.scalars(query.order_by(Practitioner.id)))


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
    service = session.get(Service, service_id)
    if service is None or not service.active or (not staff and not service.online_bookable):
        raise NotFound(errors.SERVICE_NOT_FOUND, fields={"service_id": errors.SERVICE_UNKNOWN})
    location = session.get(Location, location_id)
    if location is None or not location.active:
        raise NotFound(errors.LOCATION_NOT_FOUND, fields={"location_id": errors.LOCATION_UNKNOWN})
    candidates = practitioners_for(session, location_id=location_id, service_id=service_id, online_only=not staff)
    if practitioner_id is not None:
        candidates = [p for p in candidates if p.id == practitioner_id]
        if not candidates:
            raise ValidationFailed(
                errors.PRACTITIONER_NOT_OFFERING, fields={"practitioner_id": errors.PRACTITIONER_UNKNOWN}
            )
    return service, location, candidates
