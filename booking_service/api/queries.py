"""Read-only look-ups the staff API needs that the domain packages do not offer (yet).

They take a session and plain values like domain code, so the staff pages can use them too;
they belong in ``patients/`` and ``messaging/`` once their owners want them there.
"""

from __future__ import annotations

import phonenumbers
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from booking_service.errors import NotFound
from booking_service.messaging.models import OutboxMessage
from booking_service.patients.models import Patient, SmsOptOut
from booking_service.scheduling.models import Appointment


def get_appointment(session: Session, appointment_id: int) -> Appointment:
    """Raises NotFound for an unknown id."""
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound("There is no such appointment.")
    return appointment


def get_patient(session: Session, patient_id: int) -> Patient:
    """Raises NotFound for an unknown id."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("There is no such patient.")
    return patient


def _as_phone(text: str, country: str) -> str | None:
    if sum(c.isdigit() for c in text) < 7:
        return None
    try:
        number = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def search_patients(session: Session, text: str, *, country: str, limit: int = 20) -> list[Patient]:
    """Patients whose name, email or phone contains ``text`` (case-insensitive), by last name.

    A query that reads as a phone number in the clinic's country also matches its E.164 form,
    so "416 555 0142" finds +14165550142. "Maya Chen" matches first and last name together.
    """
    text = " ".join(text.split())
    if not text:
        return []
    full_name = Patient.first_name + " " + Patient.last_name
    conditions = [
        Patient.first_name.icontains(text, autoescape=True),
        Patient.last_name.icontains(text, autoescape=True),
        full_name.icontains(text, autoescape=True),
        Patient.email.icontains(text, autoescape=True),
        Patient.phone.contains(text, autoescape=True),
    ]
    phone = _as_phone(text, country)
    if phone is not None:
        conditions.append(Patient.phone == phone)
    query = (
        select(Patient)
        .where(or_(*conditions))
        .order_by(func.lower(Patient.last_name), func.lower(Patient.first_name), Patient.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def opted_out_phones(session: Session, phones: list[str | None]) -> set[str]:
    wanted = {p for p in phones if p}
    if not wanted:
        return set()
    return set(session.scalars(select(SmsOptOut.phone).where(SmsOptOut.phone.in_(wanted))))


def appointments_of(session: Session, patient_id: int) -> list[Appointment]:
    """Every appointment of the patient, newest first."""
    return list(
        session.scalars(
            select(Appointment)
            .where(Appointment.patient_id == patient_id)
            .order_by(Appointment.start_at.desc(), Appointment.id.desc())
        ).unique()
    )


def messages_of(session: Session, appointment_id: int) -> list[OutboxMessage]:
    """Every outbox message of the appointment (planned, sent, skipped, failed), by due time."""
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.appointment_id == appointment_id)
            .order_by(OutboxMessage.due_at, OutboxMessage.id)
        )
    )
