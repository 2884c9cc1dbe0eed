"""Reading patients for staff: search, SMS opt-outs and the consent ledger.

Read-only; each function takes a session and plain values. The staff API and the staff console
call the same functions.
"""

from __future__ import annotations

import phonenumbers
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from booking_service.patients.models import ConsentEvent, Patient, SmsOptOut


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


def search_patients(
    session: Session, text: str, *, country: str, limit: int = 20, among: Select | None = None
) -> list[Patient]:
    """Patients whose name, email or phone contains ``text`` (case-insensitive), by last name.

    A query that reads as a phone number in the clinic's country also matches its E.164 form,
    so "416 555 0142" finds +14165550142. "Maya Chen" matches first and last name together.
    With ``among`` (a select of patient ids, e.g. ``scheduling.queries.patients_of``), only
    those patients.
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
    query = select(Patient).where(or_(*conditions))
    if among is not None:
        query = query.where(Patient.id.in_(among))
    query = query.order_by(func.lower(Patient.last_name), func.lower(Patient.first_name), Patient.id).limit(limit)
    return list(session.scalars(query))


def opted_out_phones(session: Session, phones: list[str | None]) -> set[str]:
    """Those of ``phones`` that replied STOP (and not START since)."""
    wanted = {p for p in phones if p}
    if not wanted:
        return set()
    return set(session.scalars(select(SmsOptOut.phone).where(SmsOptOut.phone.in_(wanted))))


def opt_out_of(session: Session, phone: str | None) -> SmsOptOut | None:
    """The opt-out record of this number (when and how it opted out), or None."""
    return session.get(SmsOptOut, phone) if phone else None


def consent_history(session: Session, patient: Patient) -> list[ConsentEvent]:
    """The patient's consent ledger, newest first: their own events, and phone-level events of
    their current number recorded before any patient had it (a STOP from an unknown number)."""
    mine = ConsentEvent.patient_id == patient.id
    if patient.phone:
        mine = or_(mine, and_(ConsentEvent.patient_id.is_(None), ConsentEvent.phone == patient.phone))
    query = select(ConsentEvent).where(mine).order_by(ConsentEvent.created_at.desc(), ConsentEvent.id.desc())
    return list(session.scalars(query))
