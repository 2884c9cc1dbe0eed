"""One patient's data, as JSON: what a patient (or a regulator) asks the clinic to hand over.

Each section is a function of (session, patient) returning JSON-ready values; :data:`SECTIONS`
lists them in the order of the file. A feature that keeps more about a patient adds its own
section there (exercise programs and their logs: ``("exercise_programs", <its function>)``),
and its data is exported, and erased by :mod:`booking_service.usecases.erase`'s ``STEPS``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from booking_service import audit
from booking_service.errors import NotFound
from booking_service.messaging.models import InboundMessage
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import ConsentEvent, Patient, PatientNote
from booking_service.scheduling.models import Appointment, TreatmentPlan
from booking_service.waitlist.models import WaitlistEntry

FORMAT_VERSION = 1


def _value(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def _columns(row: Any, *, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    return {c.key: _value(getattr(row, c.key)) for c in row.__table__.columns if c.key not in leave_out}


def _patient(session: Session, patient: Patient) -> dict:
    return _columns(patient)


def _appointments(session: Session, patient: Patient) -> list[dict]:
    rows = session.scalars(
        select(Appointment).where(Appointment.patient_id == patient.id).order_by(Appointment.start_at)
    )
    # The manage link's secret parts are the clinic's, not data about the patient.
    return [
        {
            **_columns(a, leave_out=("manage_nonce", "manage_token_hash")),
            "service": a.service.name,
            "practitioner": a.practitioner.display_name,
            "location": a.location.name,
        }
        for a in rows
    ]


def _messages(session: Session, patient: Patient) -> list[dict]:
    appointment_ids = select(Appointment.id).where(Appointment.patient_id == patient.id)
    by_appointment = OutboxMessage.patient_id.is_(None) & OutboxMessage.appointment_id.in_(appointment_ids)
    rows = session.scalars(
        select(OutboxMessage)
        .where(or_(OutboxMessage.patient_id == patient.id, by_appointment))
        .order_by(OutboxMessage.due_at, OutboxMessage.id)
    )
    return [_columns(m, leave_out=("claimed_by", "claimed_at", "lease_expires_at", "dedupe_key")) for m in rows]


def _consents(session: Session, patient: Patient) -> list[dict]:
    rows = session.scalars(
        select(ConsentEvent).where(ConsentEvent.patient_id == patient.id).order_by(ConsentEvent.created_at)
    )
    return [_columns(e) for e in rows]


def _inbound(session: Session, patient: Patient) -> list[dict]:
    return [_columns(m) for m in session.scalars(inbound_of(patient).order_by(InboundMessage.received_at))]


def inbound_of(patient: Patient):
    """The texts a patient sent: linked to them, or from their number and linked to nobody."""
    unlinked = (InboundMessage.patient_id.is_(None)) & (InboundMessage.from_phone == patient.phone)
    condition = InboundMessage.patient_id == patient.id
    return select(InboundMessage).where(or_(condition, unlinked) if patient.phone else condition)


def _waitlist(session: Session, patient: Patient) -> list[dict]:
    rows = session.scalars(
        select(WaitlistEntry).where(WaitlistEntry.patient_id == patient.id).order_by(WaitlistEntry.created_at)
    )
    return [_columns(w) for w in rows]


def _plans(session: Session, patient: Patient) -> list[dict]:
    rows = session.scalars(
        select(TreatmentPlan).where(TreatmentPlan.patient_id == patient.id).order_by(TreatmentPlan.created_at)
    )
    return [{**_columns(p), "appointment_ids": [a.id for a in p.appointments]} for p in rows]


def _notes(session: Session, patient: Patient) -> list[dict]:
    rows = session.scalars(
        select(PatientNote).where(PatientNote.patient_id == patient.id).order_by(PatientNote.created_at)
    )
    return [_columns(n) for n in rows]


Section = Callable[[Session, Patient], Any]
SECTIONS: tuple[tuple[str, Section], ...] = (
    ("patient", _patient),
    ("appointments", _appointments),
    ("messages", _messages),
    ("consent_events", _consents),
    ("inbound_texts", _inbound),
    ("waitlist_entries", _waitlist),
    ("treatment_plans", _plans),
    ("patient_notes", _notes),
    # ("exercise_programs", exercises.export.of_patient): programs, their versions and logs.
)


def export_patient(session: Session, patient_id: int, *, now: datetime) -> dict:
    """Everything kept about one patient, JSON-ready (times ISO 8601 in UTC), and a
    ``patient.export`` audit event naming the sections. Raises NotFound for an unknown id."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("There is no such patient.")
    data: dict[str, Any] = {"format_version": FORMAT_VERSION, "exported_at": now.isoformat()}
    for name, section in SECTIONS:
        data[name] = section(session, patient)
    audit.record(session, "patient.export", "patient", patient.id, {"sections": [n for n, _ in SECTIONS]}, now=now)
    return data
