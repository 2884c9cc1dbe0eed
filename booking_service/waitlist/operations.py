"""Joining the waitlist: a patient asks to be told when a time opens for a service and place.

Like every operation, it takes plain values and a session and does not commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service import errors
from booking_service.clinic.queries import bookable, get_clinic
from booking_service.errors import ValidationFailed
from booking_service.patients.operations import PatientDetails, clean_details, find_or_create_patient
from booking_service.scheduling import slots
from booking_service.waitlist.models import WaitlistEntry

NOTES_MAX = 500


@dataclass(frozen=True)
class WaitlistRequest:
    service_id: int
    location_id: int
    earliest_date: date
    latest_date: date
    patient: PatientDetails
    practitioner_id: int | None = None  # None: any practitioner
    notes: str = ""
    source: str = "waitlist_form"  # recorded on the consents the request grants


def join_waitlist(session: Session, request: WaitlistRequest, *, now: datetime) -> WaitlistEntry:
    """Put the patient on the waitlist for ``request``'s service, location, practitioner and dates.

    Dates are local dates at the location, both inclusive: the earliest may not be in the past
    and the latest may not be beyond the booking horizon. A patient already waiting for the same
    service, location and practitioner has that entry's dates and notes replaced instead of a
    second entry being made. Raises ValidationFailed (bad details or dates, fields named) and
    NotFound (unknown service or location); on any error nothing is written.
    """
    clinic = get_clinic(session)
    details = clean_details(request.patient, country=clinic.country, default_language=clinic.default_language)
    service, location, _candidates = bookable(
        session,
        service_id=request.service_id,
        location_id=request.location_id,
        practitioner_id=request.practitioner_id,
    )
    today = slots.local_date(now, location)
    last_day = today + timedelta(days=clinic.horizon_days)
    fields: dict[str, str] = {}
    if request.earliest_date < today:
        fields["earliest_date"] = errors.EARLIEST_DATE_PAST
    if request.latest_date < request.earliest_date:
        fields["latest_date"] = errors.LATEST_BEFORE_EARLIEST
    elif request.latest_date > last_day:
        fields["latest_date"] = errors.LATEST_BEYOND_HORIZON
    if fields:
        raise ValidationFailed(
            errors.WAITLIST_DATES_INVALID,
            fields=fields,
            field_params={"latest_date": {"last_day": last_day, "horizon_days": clinic.horizon_days}},
        )

    patient = find_or_create_patient(session, details, source=request.source, now=now)
    entry = session.scalars(
        select(WaitlistEntry)
        .where(
            WaitlistEntry.patient_id == patient.id,
            WaitlistEntry.service_id == service.id,
            WaitlistEntry.location_id == location.id,
            WaitlistEntry.practitioner_id.is_(None)
            if request.practitioner_id is None
            else WaitlistEntry.practitioner_id == request.practitioner_id,
            WaitlistEntry.status == "waiting",
        )
        .order_by(WaitlistEntry.id)
        .limit(1)
    ).first()
    if entry is None:
        entry = WaitlistEntry(
            patient_id=patient.id,
            service_id=service.id,
            location_id=location.id,
            practitioner_id=request.practitioner_id,
            status="waiting",
            created_at=now,
        )
        session.add(entry)
    entry.earliest_date = request.earliest_date
    entry.latest_date = request.latest_date
    entry.notes = (request.notes or "").strip()[:NOTES_MAX]
    session.flush()
    return entry
