"""One appointment: details, messages, status actions, cancel and reschedule."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from booking_service import access, audit
from booking_service.console import programs
from booking_service.console.auth import actor
from booking_service.console.common import RED_FLAG_LABELS, fmt_when, parse_slot_value, run, slots_by_day
from booking_service.console.progress import summary_for_patient
from booking_service.context import db_session, utcnow
from booking_service.messaging.queries import messages_of
from booking_service.patients.queries import opt_out_of
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.operations import statuses_allowed_now
from booking_service.scheduling.queries import reschedule_options
from booking_service.scheduling.slots import local_date
from booking_service.usecases import booking

# The status buttons, in the order they are offered, and what they say once done.
ACTIONS = {
    "confirmed": ("Confirm", "Confirmed."),
    "checked_in": ("Check in", "Checked in."),
    "completed": ("Completed", "Marked as completed."),
    "no_show": ("No-show", "Marked as a no-show."),
}
RESCHEDULE_DAYS = 14
MAX_REASON = 500


def _visible(appointment_id: int) -> Appointment:
    """The appointment, or 404 when there is none or it is another practitioner's (the two are
    not told apart)."""
    appointment = db_session().get(Appointment, appointment_id)
    if appointment is None or not access.can_see_appointment(actor(), appointment):
        abort(404)
    return appointment


def _here(appointment_id: int) -> str:
    return url_for("console.appointment", appointment_id=appointment_id)


def show(appointment_id: int):
    session = db_session()
    appointment = _visible(appointment_id)
    audit.record(
        session,
        "appointment.view",
        "appointment",
        appointment.id,
        {"surface": "console"},
        patient_id=appointment.patient_id,
    )
    allowed = statuses_allowed_now(appointment, utcnow())
    return render_template(
        "staff/appointment.html",
        nav="day",
        appointment=appointment,
        tz=appointment.location.timezone,
        local_day=local_date(appointment.start_at, appointment.location),
        messages=messages_of(session, appointment.id),
        opt_out=opt_out_of(session, appointment.patient.phone),
        actions=[(status, label) for status, (label, _done) in ACTIONS.items() if status in allowed],
        changeable=appointment.status in ("booked", "confirmed") and appointment.start_at > utcnow(),
        red_flag_labels=RED_FLAG_LABELS,
        programs=programs.of_patient(appointment.patient_id),
        program_summary=summary_for_patient(appointment.patient_id),
    )


def change_status(appointment_id: int):
    _visible(appointment_id)
    status = request.form.get("status", "")
    if status not in ACTIONS:
        flash("Choose one of the status buttons.", "error")
        return redirect(_here(appointment_id))

    def operation() -> str:
        booking.set_status(db_session(), appointment_id, status, now=utcnow())
        return ACTIONS[status][1]

    return run(operation, then=_here(appointment_id))


def cancel(appointment_id: int):
    _visible(appointment_id)
    reason = " ".join(request.form.get("reason", "").split())[:MAX_REASON]
    if not reason:
        flash("Give a reason for the cancellation (for example: the patient phoned, unwell).", "error")
        return redirect(_here(appointment_id))

    def operation() -> str:
        booking.cancel(db_session(), appointment_id, now=utcnow(), by_patient=False, reason=reason)
        return "Cancelled. The time is free again."

    return run(operation, then=_here(appointment_id))


def reschedule(appointment_id: int):
    """GET: the free times of the next two weeks (same service, place and practitioner).
    POST: move the appointment to the chosen one."""
    appointment = _visible(appointment_id)
    if request.method == "POST":
        start = parse_slot_value(request.form.get("start"))
        if start is None:
            flash("Choose a new time.", "error")
            return redirect(url_for("console.reschedule", appointment_id=appointment_id))
        tz = appointment.location.timezone

        def operation() -> str:
            moved = booking.reschedule(db_session(), appointment_id, start, now=utcnow(), by_patient=False)
            return f"Moved to {fmt_when(moved.start_at, tz)}."

        return run(
            operation,
            then=_here(appointment_id),
            on_error=url_for("console.reschedule", appointment_id=appointment_id),
        )
    now = utcnow()
    changeable = appointment.status in ("booked", "confirmed") and appointment.start_at > now
    options = reschedule_options(db_session(), appointment, now=now, days=RESCHEDULE_DAYS) if changeable else []
    return render_template(
        "staff/reschedule.html",
        nav="day",
        appointment=appointment,
        tz=appointment.location.timezone,
        changeable=changeable,
        days=slots_by_day(options, appointment.location.timezone),
        horizon=RESCHEDULE_DAYS,
    )
