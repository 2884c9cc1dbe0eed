"""Marking a triage item handled: a clinician's act, recorded with who and when.

Only clinicians (admins and practitioners: the access policy's ``("triage", "handle")``) reach
these functions; the front desk sees the queue but cannot take an item off it. Handling an
urgent booking also handles the ``urgent_booking`` alert it raised, and the other way round;
an alert still open is acknowledged on the way (``exercises.alerts.acknowledge``: its patient's
paused exercise texts resume once no alert is open).

Operations take a session and plain values and do not commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from booking_service import audit, errors
from booking_service.db import write_transaction
from booking_service.errors import Conflict, NotFound
from booking_service.exercises import alerts as clinical_alerts
from booking_service.exercises.models import Alert
from booking_service.scheduling.models import Appointment
from booking_service.triage.models import TriageReview
from booking_service.triage.queries import review_of


def _urgent_appointment(session: Session, appointment_id: int, practitioner_id: int | None) -> Appointment:
    appointment = session.get(Appointment, appointment_id)
    if (
        appointment is None
        or appointment.triage != "urgent"
        or (practitioner_id is not None and appointment.practitioner_id != practitioner_id)
    ):
        raise NotFound(errors.NOT_FOUND)
    return appointment


def _items(
    session: Session, *, appointment_id: int | None, alert_id: int | None, practitioner_id: int | None
) -> tuple[Appointment | None, list[Alert], int]:
    """(the urgent booking, the alerts, the patient) that one press handles together."""
    if appointment_id is not None:
        appointment = _urgent_appointment(session, appointment_id, practitioner_id)
        raised = session.scalars(
            select(Alert).where(Alert.appointment_id == appointment.id, Alert.kind == "urgent_booking")
        ).all()
        return appointment, list(raised), appointment.patient_id
    alert = clinical_alerts.get_alert(session, alert_id, practitioner_id=practitioner_id)
    appointment = None
    if alert.kind == "urgent_booking" and alert.appointment_id is not None:
        linked = session.get(Appointment, alert.appointment_id)
        appointment = linked if linked is not None and linked.triage == "urgent" else None
    return appointment, [alert], alert.patient_id


def mark_handled(
    session: Session,
    *,
    appointment_id: int | None = None,
    alert_id: int | None = None,
    user_id: int | None,
    now: datetime,
    practitioner_id: int | None = None,
) -> TriageReview:
    """Record that a clinician (``user_id``) handled the urgent booking ``appointment_id`` or the
    alert ``alert_id`` (exactly one), with its pair (see the module's docstring).

    ``practitioner_id``: a practitioner may handle only their own items (another's is a 404,
    like an unknown one). Raises NotFound (unknown, not urgent, not theirs) and Conflict when
    the item was already handled (two clinicians at once: the database keeps one review).
    """
    if (appointment_id is None) == (alert_id is None):
        raise ValueError("mark_handled takes an appointment_id or an alert_id")
    write_transaction(session)
    appointment, alerts, patient_id = _items(
        session, appointment_id=appointment_id, alert_id=alert_id, practitioner_id=practitioner_id
    )
    primary = review_of(session, appointment_id=appointment_id, alert_id=alert_id)
    if primary is not None:
        raise Conflict(errors.CONFLICT)
    reviews = _review(session, appointment, alerts, user_id=user_id, now=now)
    for alert in alerts:
        if alert.status == "open":
            clinical_alerts.acknowledge(session, alert.id, user_id=user_id, now=now)
    resource, resource_id = ("appointment", appointment_id) if appointment_id is not None else ("alert", alert_id)
    audit.record(
        session,
        "triage.handle",
        resource,
        resource_id,
        {"appointment_id": appointment.id if appointment else None, "alert_ids": [a.id for a in alerts]},
        patient_id=patient_id,
        now=now,
    )
    return next(r for r in reviews if (r.appointment_id, r.alert_id) == (appointment_id, alert_id))


def _review(
    session: Session, appointment: Appointment | None, alerts: list[Alert], *, user_id: int | None, now: datetime
) -> list[TriageReview]:
    """A review for each item of the pair not yet reviewed; Conflict when another clinician's
    review of the same item lands first (the unique constraint)."""
    wanted = [("appointment_id", appointment.id)] if appointment is not None else []
    wanted += [("alert_id", alert.id) for alert in alerts]
    reviews = []
    try:
        with session.begin_nested():
            for column, item_id in wanted:
                existing = review_of(session, **{column: item_id})
                if existing is not None:
                    reviews.append(existing)
                    continue
                review = TriageReview(**{column: item_id}, handled_by_user_id=user_id, handled_at=now)
                session.add(review)
                reviews.append(review)
            session.flush()
    except IntegrityError:
        raise Conflict(errors.CONFLICT) from None
    return reviews


def acknowledge_alert(
    session: Session,
    alert_id: int,
    *,
    user_id: int | None,
    clinician: bool,
    now: datetime,
    practitioner_id: int | None = None,
) -> Alert:
    """Acknowledge an alert (``exercises.alerts.acknowledge``); when a clinician does it, the
    alert (and its urgent booking) also leave the triage queue. The console's alerts page and
    ``POST /api/v1/alerts/<id>/acknowledge`` call this. Raises NotFound as acknowledging does."""
    write_transaction(session)
    alert = clinical_alerts.acknowledge(session, alert_id, user_id=user_id, now=now, practitioner_id=practitioner_id)
    if clinician and review_of(session, alert_id=alert.id) is None:
        appointment, alerts, patient_id = _items(
            session, appointment_id=None, alert_id=alert.id, practitioner_id=practitioner_id
        )
        _review(session, appointment, alerts, user_id=user_id, now=now)
        audit.record(
            session,
            "triage.handle",
            "alert",
            alert.id,
            {"appointment_id": appointment.id if appointment else None, "alert_ids": [alert.id]},
            patient_id=patient_id,
            now=now,
        )
    return alert
