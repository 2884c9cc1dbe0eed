"""Booking for a caller: service, place, practitioner (or anyone) and a first day give free
times; a time and the caller's details book it (``source="staff"``)."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for

from booking_service.clinic.queries import active_services, practitioners_for
from booking_service.console.auth import practitioner_scope
from booking_service.console.common import (
    RED_FLAG_LABELS,
    choose_location,
    clinic_or_none,
    display_phone,
    fmt_when,
    local_today,
    parse_date,
    parse_int,
    parse_local_start,
    parse_slot_value,
    slot_value,
    slots_by_day,
    staff_field_errors,
    staff_message,
)
from booking_service.context import db_session, settings, utcnow
from booking_service.errors import DomainError
from booking_service.patients.models import Patient
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import RED_FLAGS
from booking_service.scheduling.operations import MAX_OUTSIDE_HOURS_REASON
from booking_service.scheduling.queries import is_patient_of, staff_slots
from booking_service.usecases.booking import BookingRequest, book

SEARCH_DAYS = 7
PATIENT_FIELDS = ("first_name", "last_name", "phone", "email", "language")
MAX_FIELD = 254
MAX_REASON = 2000
# Fields the booking form shows its errors beside; any other field's error joins the message.
SHOWN_FIELDS = frozenset({*PATIENT_FIELDS, "start", "outside_hours_reason"})


def _choice(form) -> dict:
    """The service, location, practitioner (None: anyone) and first day asked for."""
    location, locations = choose_location()
    services = active_services(db_session(), online_only=False)
    service_id = parse_int(form.get("service"))
    if service_id not in {s.id for s in services}:
        service_id = services[0].id if services else None
    location_id = parse_int(form.get("location"))
    if location_id not in {loc.id for loc in locations}:
        location_id = location.id if location is not None else None
    practitioners = practitioners_for(db_session(), location_id=location_id, service_id=service_id)
    scope = practitioner_scope()
    if scope is not None:  # a practitioner books with themselves only
        practitioners = [p for p in practitioners if p.id == scope]
        practitioner_id = scope
    else:
        practitioner_id = parse_int(form.get("practitioner"))
        if practitioner_id not in {p.id for p in practitioners}:
            practitioner_id = None
    chosen_location = next((loc for loc in locations if loc.id == location_id), None)
    today = local_today(chosen_location)
    first_day = max(parse_date(form.get("date")) or today, today)
    return {
        "services": services,
        "locations": locations,
        "practitioners": practitioners,
        "service_id": service_id,
        "location_id": location_id,
        "location": chosen_location,
        "practitioner_id": practitioner_id,
        "first_day": first_day,
        "today": today,
    }


def _free_times(choice: dict) -> tuple[list, str | None]:
    if choice["service_id"] is None or choice["location"] is None:
        return [], "Set up at least one active service and location first."
    if practitioner_scope() is not None and not choice["practitioners"]:
        return [], "You do not offer this service at this location."
    try:
        found = staff_slots(
            db_session(),
            service_id=choice["service_id"],
            location_id=choice["location_id"],
            practitioner_id=choice["practitioner_id"],
            first_day=choice["first_day"],
            days=SEARCH_DAYS,
            now=utcnow(),
        )
    except DomainError as exc:
        return [], staff_message(exc)
    return slots_by_day(found, choice["location"].timezone), None


def _prefill() -> dict:
    """The details of ``?patient=`` (booking again for a known patient), else empty."""
    patient_id = parse_int(request.args.get("patient"))
    patient = db_session().get(Patient, patient_id) if patient_id else None
    if patient is None:
        return {}
    scope = practitioner_scope()
    if scope is not None and not is_patient_of(db_session(), patient.id, scope):
        abort(404)
    return {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "phone": display_phone(patient.phone),
        "email": patient.email or "",
        "language": patient.language,
        "sms_consent": patient.sms_consent,
        "email_consent": patient.email_consent,
    }


def _typed(choice: dict, values: dict, days: list) -> dict:
    """The "or type a time" fields: as typed, else the asked-for start (a free cell of the day
    board) when it is not one of the free times shown."""
    if values.get("custom_time") or values.get("outside_hours_reason"):
        return values
    start = parse_slot_value(values.get("start"))
    shown = {slot_value(slot.start) for _day, found in days for slot in found}
    if start is None or choice["location"] is None or slot_value(start) in shown:
        return {}
    local = start.astimezone(ZoneInfo(choice["location"].timezone))
    return {"custom_date": local.date().isoformat(), "custom_time": local.strftime("%H:%M")}


def _render(choice: dict, *, values: dict, errors: dict, error: str | None, status: int = 200):
    days, slots_error = _free_times(choice)
    clinic = clinic_or_none()
    others = [words for field, words in errors.items() if field not in SHOWN_FIELDS]
    if others:
        error = " ".join([error or "", *others]).strip()
    return (
        render_template(
            "staff/book.html",
            nav="book",
            **choice,
            days=days,
            slots_error=slots_error,
            values=values,
            errors=errors,
            error=error,
            red_flag_labels=RED_FLAG_LABELS,
            later=choice["first_day"] + timedelta(days=SEARCH_DAYS),
            default_language=clinic.default_language if clinic else "en",
            search_days=SEARCH_DAYS,
            is_practitioner=practitioner_scope("appointment", "book") is not None,
            custom=_typed(choice, values, days),
            tz=choice["location"].timezone if choice["location"] else "UTC",
            max_reason=MAX_OUTSIDE_HOURS_REASON,
        ),
        status,
    )


def start():
    """GET: the choice form, the free times and the caller's details form. ``?start=`` (a free
    cell of the day board) is chosen when it is one of the free times, else typed in."""
    values = _prefill()
    if request.args.get("start"):
        values["start"] = request.args.get("start", "")[:40]
    return _render(_choice(request.args), values=values, errors={}, error=None)


def submit():
    """POST: book the chosen time for the caller; the form again with every problem named."""
    form = request.form
    choice = _choice(form)
    values = {name: form.get(name, "").strip()[:MAX_FIELD] for name in PATIENT_FIELDS}
    values.update(
        sms_consent=form.get("sms_consent") == "yes",
        email_consent=form.get("email_consent") == "yes",
        reason=form.get("reason", "").strip()[:MAX_REASON],
        red_flags={key: form.get(f"rf_{key}") == "yes" for key in RED_FLAGS},
        start=form.get("start", ""),
        custom_date=form.get("custom_date", "").strip()[:10],
        custom_time=form.get("custom_time", "").strip()[:5],
        outside_hours_reason=form.get("outside_hours_reason", "").strip()[: MAX_OUTSIDE_HOURS_REASON * 2],
    )
    start_at = parse_slot_value(values["start"])
    if values["custom_time"] and choice["location"] is not None:
        start_at = parse_local_start(values["custom_date"], values["custom_time"], choice["location"].timezone)
    if start_at is None:
        return _render(choice, values=values, errors={"start": "Choose a time."}, error="Choose a time.", status=422)
    if choice["service_id"] is None or choice["location_id"] is None:
        abort(400)
    request_ = BookingRequest(
        service_id=choice["service_id"],
        location_id=choice["location_id"],
        practitioner_id=choice["practitioner_id"],
        start=start_at,
        patient=PatientDetails(
            first_name=values["first_name"],
            last_name=values["last_name"],
            phone=values["phone"] or None,
            email=values["email"] or None,
            language=values["language"] or None,
            sms_consent=values["sms_consent"],
            email_consent=values["email_consent"],
        ),
        source="staff",
        intake_reason=values["reason"] or None,
        red_flags={key: True for key, said_yes in values["red_flags"].items() if said_yes},
        outside_hours_reason=values["outside_hours_reason"] or None,
    )
    session = db_session()
    try:
        booked = book(session, request_, secret_key=settings().SECRET_KEY, now=utcnow())
    except DomainError as exc:
        return _render(
            choice, values=values, errors=staff_field_errors(exc), error=staff_message(exc), status=exc.status
        )
    appointment = booked.appointment
    flash(
        f"Booked {appointment.patient.display_name} on {fmt_when(appointment.start_at, appointment.location.timezone)} "
        f"with {appointment.practitioner.display_name}.",
        "success",
    )
    return redirect(url_for("console.appointment", appointment_id=appointment.id))
