"""Erasing a patient: the right to be forgotten, without rewriting the clinic's history.

The patient row stays (appointments point at it) but holds nothing personal: names become
"Erased", contacts and consents are cleared. Their future visits are cancelled through the
booking use case, so pending reminders stop and the freed times reach the waitlist; then
every message still pending to them is cancelled (no "your visit is cancelled" text goes to a
number that must be forgotten). Every free text is cleared: intake reasons and red-flag
answers, staff notes and cancellation reasons, message bodies, recipients and payloads, the
texts they sent, waitlist notes. Rows, statuses and times stay, so the clinic's counts (visits,
no-shows, late cancellations) are unchanged.

Kept on purpose: the phone-level SMS opt-out (``sms_opt_outs``): it is the clinic's promise
never to text that number again, and dropping it would let a later booking text it. The audit
trail holds ids only, so it needs no erasing.

:data:`STEPS` is the extension point beside ``usecases.export.SECTIONS``: a feature that keeps
more about a patient (exercise programs, their logs) adds its own eraser there.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from booking_service import audit
from booking_service.db import write_transaction
from booking_service.errors import Conflict, NotFound, ValidationFailed
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import ConsentEvent, Patient, PatientNote
from booking_service.scheduling.models import Appointment
from booking_service.usecases import booking
from booking_service.usecases.export import inbound_of
from booking_service.waitlist.models import WaitlistEntry

ERASED_NAME = "Erased"
ERASED_REASON = "patient data erased"


def _confirmed(patient: Patient, confirmation: str) -> bool:
    typed = " ".join(confirmation.split()).casefold()
    return bool(typed) and typed == " ".join(patient.last_name.split()).casefold()


def _cancel_future_visits(session: Session, patient: Patient, now: datetime) -> int:
    future = session.scalars(
        select(Appointment.id).where(
            Appointment.patient_id == patient.id,
            Appointment.status.in_(("booked", "confirmed")),
            Appointment.start_at > now,
        )
    ).all()
    for appointment_id in future:
        booking.cancel(session, appointment_id, now=now, by_patient=False)
    return len(future)


def _appointments(session: Session, patient: Patient, now: datetime) -> int:
    count = 0
    for appointment in session.scalars(select(Appointment).where(Appointment.patient_id == patient.id)):
        appointment.intake_reason = None
        appointment.red_flags = None
        appointment.staff_notes = None
        appointment.cancel_reason = None
        # A new, unknown secret: links already sent (in texts, emails, browser history) stop working.
        appointment.manage_nonce = secrets.token_hex(16)
        appointment.manage_token_hash = secrets.token_hex(32)
        appointment.updated_at = now
        count += 1
    return count


def _messages(session: Session, patient: Patient, now: datetime) -> int:
    # Rows name their patient; an older row may name only the appointment (never another patient's).
    mine = or_(
        OutboxMessage.patient_id == patient.id,
        OutboxMessage.patient_id.is_(None)
        & OutboxMessage.appointment_id.in_(select(Appointment.id).where(Appointment.patient_id == patient.id)),
    )
    session.execute(
        update(OutboxMessage)
        .where(mine, OutboxMessage.status == "pending")
        .values(status="cancelled", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    result = session.execute(
        update(OutboxMessage)
        .where(mine)
        .values(to=None, body=None, payload={}, error=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def _inbound(session: Session, patient: Patient, now: datetime) -> int:
    count = 0
    for message in session.scalars(inbound_of(patient)):
        message.body = ""
        message.from_phone = ""
        message.patient_id = patient.id
        count += 1
    return count


def _consents(session: Session, patient: Patient, now: datetime) -> int:
    result = session.execute(
        update(ConsentEvent)
        .where(ConsentEvent.patient_id == patient.id)
        .values(phone=None, detail="")
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def _waitlist(session: Session, patient: Patient, now: datetime) -> int:
    count = 0
    for entry in session.scalars(select(WaitlistEntry).where(WaitlistEntry.patient_id == patient.id)):
        entry.notes = ""
        if entry.status in ("waiting", "offered"):
            entry.status = "removed"
        count += 1
    return count


def _notes(session: Session, patient: Patient, now: datetime) -> int:
    result = session.execute(
        update(PatientNote)
        .where(PatientNote.patient_id == patient.id)
        .values(body="")
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def _patient(session: Session, patient: Patient, now: datetime) -> int:
    patient.first_name = ERASED_NAME
    patient.last_name = ERASED_NAME
    patient.email = None
    patient.phone = None
    patient.phone_invalid_at = None
    patient.birth_date = None
    patient.sms_consent = patient.email_consent = patient.exercise_sms_consent = False
    patient.erased_at = now
    patient.updated_at = now
    return 1


Step = Callable[[Session, Patient, datetime], int]
# In order: the inbound texts are found by the patient's phone, so before the patient is cleared.
STEPS: tuple[tuple[str, Step], ...] = (
    ("appointments", _appointments),
    ("messages", _messages),
    ("inbound_texts", _inbound),
    ("consent_events", _consents),
    ("waitlist_entries", _waitlist),
    ("patient_notes", _notes),
    # ("exercise_programs", exercises.erase.of_patient): clear pain notes and free-text logs.
    ("patient", _patient),
)


def erase_patient(session: Session, patient_id: int, *, confirmation: str, now: datetime) -> dict[str, int]:
    """Erase one patient (see the module's docstring); returns how many rows each step changed,
    with ``cancelled_visits``. ``confirmation`` must be the patient's last name (any case).

    Raises NotFound for an unknown id, ValidationFailed when the confirmation does not match,
    Conflict when the patient was already erased. Writes a ``patient.erase`` audit event with
    the counts only.
    """
    write_transaction(session)  # cancelling takes the write lock first; nothing may come before it
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("There is no such patient.")
    if patient.erased_at is not None:
        raise Conflict("This patient's data was already erased.")
    if not _confirmed(patient, confirmation):
        raise ValidationFailed(
            "Type the patient's last name to confirm.", fields={"confirmation": "Type the last name exactly."}
        )
    counts = {"cancelled_visits": _cancel_future_visits(session, patient, now)}
    for name, step in STEPS:
        counts[name] = step(session, patient, now)
    session.flush()
    audit.record(session, "patient.erase", "patient", patient.id, counts, now=now)
    return counts
