"""Reading the outbox and the inbox for staff: every message of an appointment, failures, and
patients' replies that need a person.

Read-only; each function takes a session and plain values. The staff API and the staff console
call the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from booking_service.messaging.models import InboundMessage
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient
from booking_service.scheduling.models import Appointment


def messages_of(session: Session, appointment_id: int) -> list[OutboxMessage]:
    """Every outbox message of the appointment (planned, sent, skipped, failed), by due time."""
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.appointment_id == appointment_id)
            .order_by(OutboxMessage.due_at, OutboxMessage.id)
        )
    )


def appointments_with_failures(session: Session, appointment_ids: Iterable[int]) -> set[int]:
    """Those of ``appointment_ids`` with at least one failed message (one query for a whole day)."""
    ids = set(appointment_ids)
    if not ids:
        return set()
    return set(
        session.scalars(
            select(OutboxMessage.appointment_id)
            .where(OutboxMessage.appointment_id.in_(ids), OutboxMessage.status == "failed")
            .distinct()
        )
    )


def failed_messages(session: Session, *, since: datetime, limit: int = 200) -> list[OutboxMessage]:
    """Messages that failed for good since ``since``, newest failure first, with their patient
    and appointment loaded."""
    return list(
        session.scalars(
            select(OutboxMessage)
            .options(joinedload(OutboxMessage.patient), joinedload(OutboxMessage.appointment))
            .where(OutboxMessage.status == "failed", OutboxMessage.updated_at >= since)
            .order_by(OutboxMessage.updated_at.desc(), OutboxMessage.id.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class InboxItem:
    message: InboundMessage
    patient: Patient | None
    appointment: Appointment | None


def _needing_staff():
    return (InboundMessage.needs_staff.is_(True), InboundMessage.handled_at.is_(None))


def replies_needing_staff(session: Session, *, limit: int = 200) -> list[InboxItem]:
    """Patients' texts waiting for a person: likely opt-outs first, then newest first, each with
    the patient and appointment it was matched to (when any)."""
    rows = session.execute(
        select(InboundMessage, Patient, Appointment)
        .outerjoin(Patient, InboundMessage.patient_id == Patient.id)
        .outerjoin(Appointment, InboundMessage.appointment_id == Appointment.id)
        .where(*_needing_staff())
        .order_by(InboundMessage.likely_opt_out.desc(), InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(limit)
    ).unique()
    return [InboxItem(message, patient, appointment) for message, patient, appointment in rows]


def count_replies_needing_staff(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(InboundMessage).where(*_needing_staff())) or 0
