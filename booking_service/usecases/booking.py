"""Booking, moving, cancelling and changing the status of an appointment, with its messages.

Each function makes the scheduling change (``scheduling.operations``) and plans the outbox
rows it calls for (``messaging.planning``) in the same session and transaction, so a booking
and its confirmation and reminders are committed together or not at all; nothing here commits.
These are the functions the API, the pages, the console, the CLI, SMS replies, the benchmarks
and the tests call. Errors are those of the scheduling operations (see there).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from booking_service import audit
from booking_service.clinic.queries import get_clinic
from booking_service.exercises import alerts
from booking_service.messaging import planning
from booking_service.observability.metrics import BOOKINGS, count_on_commit
from booking_service.scheduling import operations
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.operations import Booked, BookingRequest, next_appointment_for_phone
from booking_service.waitlist import offers

__all__ = [
    "Booked",
    "BookingRequest",
    "book",
    "cancel",
    "next_appointment_for_phone",  # for SMS replies, beside set_status
    "reschedule",
    "set_status",
]


def book(session: Session, request: BookingRequest, *, secret_key: str, now: datetime, confirm: bool = True) -> Booked:
    """Book ``request.start`` and plan its confirmation and reminders, whoever booked; staff
    pass ``confirm=False`` for a patient standing at the desk (reminders are still planned).
    A red-flag screen answered yes also raises an ``urgent_booking`` alert (``exercises.alerts``).

    Raises ValidationFailed, NotFound, SlotUnavailable, SlotTaken or PatientBusy; then nothing
    of the booking is written (the caller's earlier writes stay).
    """
    booked = operations.book_slot(session, request, secret_key=secret_key, now=now)
    planning.booked(session, booked.appointment, clinic=get_clinic(session), now=now, confirm=confirm)
    appointment = booked.appointment
    audit.record(
        session,
        "appointment.book",
        "appointment",
        appointment.id,
        {
            "source": request.source,
            "start": appointment.start_at.isoformat(),
            "practitioner_id": appointment.practitioner_id,
            "service_id": appointment.service_id,
            "triage": appointment.triage,
            "confirmation": confirm,
            "outside_hours": appointment.outside_hours_reason is not None,  # the reason is free text: not here
        },
        patient_id=appointment.patient_id,
        now=now,
    )
    if appointment.triage == "urgent":  # a red-flag screen answered yes: the clinic hears now
        alerts.urgent_booking(session, appointment, now=now)
    count_on_commit(session, BOOKINGS, source=request.source)  # clinic_bookings_total
    offers.time_taken(session, appointment, now=now)  # a freed time taken: by someone waiting for it?
    return booked


def reschedule(
    session: Session,
    appointment_id: int,
    new_start: datetime,
    *,
    now: datetime,
    by_patient: bool,
    practitioner_id: int | None = None,
    location_id: int | None = None,
    outside_hours_reason: str | None = None,
) -> Appointment:
    """Move the appointment (staff: also to another practitioner or location, or outside the
    free times with a reason; see ``scheduling.operations.move``); its pending reminders are
    superseded and re-planned, and the patient is told of the new time and place by the
    normal reschedule message. The time it left is offered down the waitlist
    (``waitlist.offers.time_freed``)."""
    moved = operations.move(
        session,
        appointment_id,
        new_start,
        now=now,
        by_patient=by_patient,
        practitioner_id=practitioner_id,
        location_id=location_id,
        outside_hours_reason=outside_hours_reason,
    )
    clinic = get_clinic(session)
    planning.rescheduled(
        session,
        moved.appointment,
        clinic=clinic,
        now=now,
        by_patient=by_patient,
        old_start=moved.old_start,
    )
    appointment = moved.appointment
    offers.time_taken(session, appointment, now=now)
    offers.time_freed(
        session,
        appointment,
        start=moved.old_start,
        end=moved.old_start + (appointment.end_at - appointment.start_at),
        reason="rescheduled",
        clinic=clinic,
        now=now,
        practitioner_id=moved.old_practitioner_id,  # the time freed is the one it left: whose, and where
        location_id=moved.old_location_id,
    )
    detail = {"from": moved.old_start.isoformat(), "to": appointment.start_at.isoformat(), "by_patient": by_patient}
    if moved.old_practitioner_id != appointment.practitioner_id:
        detail.update(from_practitioner_id=moved.old_practitioner_id, to_practitioner_id=appointment.practitioner_id)
    if moved.old_location_id != appointment.location_id:
        detail.update(from_location_id=moved.old_location_id, to_location_id=appointment.location_id)
    if appointment.outside_hours_reason is not None:
        detail["outside_hours"] = True  # the reason is free text: kept on the appointment, not here
    audit.record(
        session,
        "appointment.reschedule",
        "appointment",
        appointment_id,
        detail,
        patient_id=appointment.patient_id,
        now=now,
    )
    return moved.appointment


def cancel(
    session: Session, appointment_id: int, *, now: datetime, by_patient: bool, reason: str | None = None
) -> Appointment:
    """Cancel: stops every pending message, plans the cancellation notice, and offers the freed
    time down the waitlist (``waitlist.offers.time_freed``: the longest-waiting match first)."""
    appointment = operations.cancel_appointment(session, appointment_id, now=now, by_patient=by_patient, reason=reason)
    clinic = get_clinic(session)
    planning.cancelled(session, appointment, clinic=clinic, now=now, by_patient=by_patient)
    after_cancel(session, appointment, clinic=clinic, now=now, by_patient=by_patient)
    return appointment


def after_cancel(
    session: Session, appointment: Appointment, *, clinic, now: datetime, by_patient: bool, plan_id: int | None = None
) -> None:
    """What every cancellation does once its messages are planned (here, and for the rest of a
    treatment plan): the freed time is offered down the waitlist, and the audit trail records
    it (not the reason: free text)."""
    offers.time_freed(
        session,
        appointment,
        start=appointment.start_at,
        end=appointment.end_at,
        reason="cancelled",
        clinic=clinic,
        now=now,
    )
    detail = {"by_patient": by_patient, "late": appointment.late_cancellation}
    if plan_id is not None:
        detail["plan_id"] = plan_id
    audit.record(
        session, "appointment.cancel", "appointment", appointment.id, detail, patient_id=appointment.patient_id, now=now
    )


def set_status(session: Session, appointment_id: int, status: str, *, now: datetime) -> Appointment:
    """Staff (or a patient's C reply) move an appointment along its lifecycle; ``cancelled`` is
    :func:`cancel` by staff. Raises ValidationFailed (unknown status) or InvalidTransition."""
    if status == "cancelled":
        return cancel(session, appointment_id, now=now, by_patient=False)
    changed = operations.change_status(session, appointment_id, status, now=now)
    if changed.appointment.status != changed.old_status:
        planning.status_changed(
            session, changed.appointment, clinic=get_clinic(session), now=now, old_status=changed.old_status
        )
        audit.record(
            session,
            "appointment.status",
            "appointment",
            appointment_id,
            {"from": changed.old_status, "to": changed.appointment.status},
            patient_id=changed.appointment.patient_id,
            now=now,
        )
    return changed.appointment
