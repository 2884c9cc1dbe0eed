"""One appointment: details, messages, status actions, cancel and reschedule."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from booking_service import access, audit
from booking_service.clinic.models import Location
from booking_service.clinic.queries import active_locations, practitioners_for
from booking_service.console import programs
from booking_service.console.auth import actor, practitioner_scope, safe_next
from booking_service.console.common import (
    RED_FLAG_LABELS,
    fmt_when,
    local_today,
    parse_date,
    parse_int,
    parse_local_start,
    parse_slot_value,
    run,
    slots_by_day,
)
from booking_service.console.progress import summary_for_patient
from booking_service.context import db_session, utcnow
from booking_service.messaging.queries import messages_of
from booking_service.patients.queries import opt_out_of
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.operations import MAX_OUTSIDE_HOURS_REASON, statuses_allowed_now
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
    """POST a status button; ``next`` (a console address: the day board's "Check in") is where
    to go back to, else the appointment."""
    _visible(appointment_id)
    status = request.form.get("status", "")
    then = safe_next(request.form.get("next")) if request.form.get("next") else _here(appointment_id)
    if status not in ACTIONS:
        flash("Choose one of the status buttons.", "error")
        return redirect(then)

    def operation() -> str:
        booking.set_status(db_session(), appointment_id, status, now=utcnow())
        return ACTIONS[status][1]

    return run(operation, then=then)


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


def _move_choice(appointment: Appointment, values) -> dict:
    """Where to move to: the location and practitioner asked for (a practitioner: themselves
    only), defaulting to the appointment's own; the practitioners offering its service there."""
    locations = active_locations(db_session())
    location = next((loc for loc in locations if loc.id == parse_int(values.get("location"))), None)
    if location is None:
        location = appointment.location
    people = practitioners_for(db_session(), location_id=location.id, service_id=appointment.service_id)
    scope = practitioner_scope("appointment", "change")
    if scope is not None:
        people = [p for p in people if p.id == scope]
    wanted = parse_int(values.get("practitioner")) or appointment.practitioner_id
    practitioner = next((p for p in people if p.id == wanted), None) or (people[0] if people else None)
    today = local_today(location)
    return {
        "locations": locations,
        "location": location,
        "practitioners": people,
        "practitioner": practitioner,
        "first_day": max(parse_date(values.get("date")) or today, today),
        "today": today,
    }


def reschedule(appointment_id: int):
    """GET: free times of the next two weeks with the practitioner and at the location chosen
    (default: the appointment's own), and a field to type any time (outside the free times: with
    a reason). POST: move the appointment there; the patient gets the reschedule message. A
    move dropped on the day board (``next``: the board) goes back to it, moved or refused."""
    appointment = _visible(appointment_id)
    if request.method == "POST":
        return _move(appointment)
    choice = _move_choice(appointment, request.args)
    now = utcnow()
    changeable = appointment.status in ("booked", "confirmed") and appointment.start_at > now
    options = []
    if changeable and choice["practitioner"] is not None:
        options = reschedule_options(
            db_session(),
            appointment,
            now=now,
            days=RESCHEDULE_DAYS,
            practitioner=choice["practitioner"],
            location=choice["location"],
            first_day=choice["first_day"],
        )
    return render_template(
        "staff/reschedule.html",
        nav="day",
        appointment=appointment,
        tz=choice["location"].timezone,
        changeable=changeable,
        days=slots_by_day(options, choice["location"].timezone),
        horizon=RESCHEDULE_DAYS,
        max_reason=MAX_OUTSIDE_HOURS_REASON,
        **choice,
    )


def _move(appointment: Appointment):
    form = request.form
    location = db_session().get(Location, parse_int(form.get("location")) or appointment.location_id)
    if location is None:
        abort(404)
    practitioner_id = parse_int(form.get("practitioner")) or appointment.practitioner_id
    scope = practitioner_scope("appointment", "change")
    if scope is not None and practitioner_id != scope:
        abort(404)  # a practitioner moves their own appointments among their own times only
    back = url_for(  # the same choice again (only what differs from the appointment's own)
        "console.reschedule",
        appointment_id=appointment.id,
        location=location.id if location.id != appointment.location_id else None,
        practitioner=practitioner_id if practitioner_id != appointment.practitioner_id else None,
        date=parse_date(form.get("date")) or None,
    )
    typed = (form.get("custom_time") or "").strip()
    start = (
        parse_local_start(form.get("custom_date"), typed, location.timezone)
        if typed
        else parse_slot_value(form.get("start"))
    )
    if start is None:
        flash("Choose one of the free times, or type a date and a time.", "error")
        return redirect(back)
    reason = form.get("outside_hours_reason", "")[: MAX_OUTSIDE_HOURS_REASON * 2]
    appointment_id = appointment.id

    before = (appointment.practitioner_id, appointment.location_id)

    def operation() -> str:
        moved = booking.reschedule(
            db_session(),
            appointment_id,
            start,
            now=utcnow(),
            by_patient=False,
            practitioner_id=practitioner_id,
            location_id=location.id,
            outside_hours_reason=reason,
        )
        message = f"Moved to {fmt_when(moved.start_at, moved.location.timezone)}."
        if (moved.practitioner_id, moved.location_id) != before:
            message += f" Now with {moved.practitioner.display_name} at {moved.location.name}."
        return message

    if form.get("next"):  # dropped on the day board: back to the board, whichever way it went
        board = safe_next(form.get("next"))
        return run(operation, then=board, on_error=board)
    return run(operation, then=_here(appointment_id), on_error=back)
