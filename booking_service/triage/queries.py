"""The triage queue: what a clinician must look at, oldest first, until one marks it handled.

Two kinds of item, each until it has a :class:`~booking_service.triage.models.TriageReview`:

- an **urgent booking**: an appointment whose red-flag screen was answered yes at intake
  (``triage = 'urgent'``), whatever its status since (a cancelled urgent booking still needs a
  clinician's call);
- a **clinical alert** (red flag or pain jump by text, urgent booking): open, or acknowledged by
  the front desk only (the desk may acknowledge an alert to resume exercise texts; only a
  clinician takes it off this queue).

An urgent booking and the ``urgent_booking`` alert it raised are one item (shown once, handled
together). Read-only; two queries however long the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from booking_service.exercises.alerts import visible
from booking_service.exercises.models import Alert
from booking_service.patients.models import Patient
from booking_service.scheduling.models import Appointment
from booking_service.triage.models import TriageReview

LIMIT = 200


@dataclass(frozen=True)
class TriageItem:
    raised_at: datetime
    patient: Patient
    appointment: Appointment | None  # an urgent booking (with its alert, if it raised one)
    alert: Alert | None  # a clinical alert (or the urgent booking's own)

    @property
    def kind(self) -> str:
        """``urgent_booking``, ``red_flag`` or ``pain``."""
        return "urgent_booking" if self.appointment is not None else self.alert.kind


def _unreviewed(item_id, review_column):
    return ~select(TriageReview.id).where(review_column == item_id).exists()


def queue(session: Session, *, practitioner_id: int | None = None, limit: int = LIMIT) -> list[TriageItem]:
    """Items not yet handled, oldest first. ``practitioner_id``: only that practitioner's
    (their appointments; alerts of their patients, as ``exercises.alerts.visible`` says)."""
    appointments_query = (
        select(Appointment)
        .options(
            joinedload(Appointment.patient),
            joinedload(Appointment.practitioner),
            joinedload(Appointment.service),
            joinedload(Appointment.location),
        )
        .where(Appointment.triage == "urgent", _unreviewed(Appointment.id, TriageReview.appointment_id))
        .order_by(Appointment.created_at, Appointment.id)
        .limit(limit)
    )
    if practitioner_id is not None:
        appointments_query = appointments_query.where(Appointment.practitioner_id == practitioner_id)
    urgent = list(session.scalars(appointments_query).unique())
    alerts_query = (
        select(Alert, Patient)
        .join(Patient, Patient.id == Alert.patient_id)
        .where(_unreviewed(Alert.id, TriageReview.alert_id), visible(practitioner_id))
        .order_by(Alert.created_at, Alert.id)
        .limit(limit)
    )
    alerts = list(session.execute(alerts_query))
    by_appointment = {alert.appointment_id: alert for alert, _ in alerts if alert.kind == "urgent_booking"}
    urgent_ids = {a.id for a in urgent}
    items = [
        TriageItem(raised_at=a.created_at, patient=a.patient, appointment=a, alert=by_appointment.get(a.id))
        for a in urgent
    ]
    items += [
        TriageItem(raised_at=alert.created_at, patient=patient, appointment=None, alert=alert)
        for alert, patient in alerts
        if not (alert.kind == "urgent_booking" and alert.appointment_id in urgent_ids)
    ]
    items.sort(key=lambda item: (item.raised_at, item.appointment is None))
    return items[:limit]


def review_of(session: Session, *, appointment_id: int | None = None, alert_id: int | None = None):
    """The review of an item, or None while it waits."""
    column = TriageReview.appointment_id if appointment_id is not None else TriageReview.alert_id
    return session.scalars(select(TriageReview).where(column == (appointment_id or alert_id))).first()
