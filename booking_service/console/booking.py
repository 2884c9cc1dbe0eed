"""Booking for a caller: service, place, practitioner (or anyone) and a first day give free
times; a time and the caller's details book it (``source="staff"``).

Before a booking would make a new patient record, the desk is shown the records that may be the
same person (``patients.duplicates``: same phone, same e-mail, or a similar name with the same
date of birth) and chooses: **use this patient** (the booking is theirs, with their details on
file) or **a new patient** (a record is made first, then booked)."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for

from booking_service.clinic.queries import active_services, practitioners_for
from booking_service.console.auth import practitioner_scope
from booking_service.console.common import (
    RED_FLAG_LABELS,
    STAFF_FIELD_MESSAGES,
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
from booking_service.messaging.queries import messages_of
from booking_service.patients import desk
from booking_service.patients.duplicates import exact_match, find_duplicates
from booking_service.patients.models import Patient
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import RED_FLAGS
from booking_service.scheduling.operations import MAX_OUTSIDE_HOURS_REASON
from booking_service.scheduling.queries import is_patient_of, staff_slots
from booking_service.usecases.booking import BookingRequest, book

SEARCH_DAYS = 7
PATIENT_FIELDS = ("first_name", "last_name", "phone", "email", "language", "birth_date")
DUPLICATE_REASONS = {
    "same_phone": "same mobile number",
    "same_email": "same email",
    "name_and_birth_date": "similar name, same date of birth",
}
MAX_FIELD = 254
MAX_REASON = 2000
CHANNEL_WORDS = {"email": "email", "sms": "text"}
# Fields the booking form shows its errors beside; any other field's error joins the message.
SHOWN_FIELDS = frozenset({*PATIENT_FIELDS, "start", "outside_hours_reason"})


def visit_choice(form, *, prefer_kind: str | None = None) -> dict:
    """The service, location and practitioner (None: anyone) asked for on a staff form, each
    checked against what may be chosen, with the choices offered: ``services``, ``locations``,
    ``practitioners``, ``service_id``, ``location_id``, ``location``, ``practitioner_id``. With
    no valid service asked for, the first of ``prefer_kind`` (else the first service). A
    practitioner signed in books with themselves only. Shared by booking for a caller and
    booking a series."""
    location, locations = choose_location()
    services = active_services(db_session(), online_only=False)
    service_id = parse_int(form.get("service"))
    if service_id not in {s.id for s in services}:
        preferred = [s for s in services if s.kind == prefer_kind]
        service_id = (preferred or services)[0].id if services else None
    location_id = parse_int(form.get("location"))
    if location_id not in {loc.id for loc in locations}:
        location_id = location.id if location is not None else None
    practitioners = practitioners_for(db_session(), location_id=location_id, service_id=service_id)
    scope = practitioner_scope("appointment", "book")
    if scope is not None:  # a practitioner books with themselves only
        practitioners = [p for p in practitioners if p.id == scope]
        practitioner_id = scope
    else:
        practitioner_id = parse_int(form.get("practitioner"))
        if practitioner_id not in {p.id for p in practitioners}:
            practitioner_id = None
    return {
        "services": services,
        "locations": locations,
        "practitioners": practitioners,
        "service_id": service_id,
        "location_id": location_id,
        "location": next((loc for loc in locations if loc.id == location_id), None),
        "practitioner_id": practitioner_id,
    }


def _choice(form) -> dict:
    """The service, location, practitioner (None: anyone) and first day asked for."""
    choice = visit_choice(form)
    chosen_location = choice["location"]
    today = local_today(chosen_location)
    first_day = max(parse_date(form.get("date")) or today, today)
    return {**choice, "first_day": first_day, "today": today}


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
        "birth_date": patient.birth_date.isoformat() if patient.birth_date else "",
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


def _render(
    choice: dict, *, values: dict, errors: dict, error: str | None, status: int = 200, duplicates: list | None = None
):
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
            duplicates=duplicates or [],
            duplicate_reasons=DUPLICATE_REASONS,
            custom=_typed(choice, values, days),
            tz=choice["location"].timezone if choice["location"] else "UTC",
            max_reason=MAX_OUTSIDE_HOURS_REASON,
        ),
        status,
    )


def _confirmation_note(session, appointment_id: int, *, asked: bool) -> str:
    """What the patient is sent, for the desk to tell the caller."""
    if not asked:
        return "No confirmation sent, as asked; reminders as usual."
    channels = {m.channel for m in messages_of(session, appointment_id) if m.kind == "confirmation"}
    if not channels:
        return "No confirmation could be sent: no email address, and no texts agreed to."
    words = " and ".join(CHANNEL_WORDS[c] for c in ("email", "sms") if c in channels)
    return f"A confirmation with the manage link goes by {words}."


class _MaybeOnFile(Exception):
    """The caller may already be on file: the desk chooses before anything is booked."""

    def __init__(self, candidates: list) -> None:
        super().__init__("possible duplicates")
        self.candidates = candidates


def _patient_of_choice(values: dict, details: PatientDetails, birth_date, *, now) -> PatientDetails:
    """The details to book with, after the duplicate check.

    ``patient_choice`` empty: raises _MaybeOnFile when records may be this caller and none is
    plainly them. A patient's id: their details on file (the consents ticked now are added).
    ``new``: a new record is made now with the typed details (ValidationFailed as it says).
    """
    session = db_session()
    clinic = clinic_or_none()
    country = clinic.country if clinic else "CA"
    picked = values["patient_choice"]
    scope = practitioner_scope()
    if picked == "new":
        patient = desk.create_patient(
            session,
            details,
            birth_date=birth_date,
            country=country,
            default_language=clinic.default_language if clinic else "en",
            now=now,
        )
        return _details_on_file(patient, details)
    if picked.isdigit():
        patient = session.get(Patient, int(picked))
        if patient is None or patient.erased_at is not None:
            abort(404)
        if scope is not None and not is_patient_of(session, patient.id, scope):
            abort(404)
        return _details_on_file(patient, details)
    candidates = find_duplicates(
        session,
        first_name=details.first_name,
        last_name=details.last_name,
        email=details.email,
        phone=details.phone,
        birth_date=birth_date if isinstance(birth_date, date) else None,
        country=country,
    )
    if scope is not None:  # a practitioner sees only their own patients, here too
        candidates = [c for c in candidates if is_patient_of(session, c.patient.id, scope)]
    if candidates and exact_match(candidates, first_name=details.first_name, last_name=details.last_name) is None:
        raise _MaybeOnFile(candidates)
    return details


def _details_on_file(patient: Patient, typed: PatientDetails) -> PatientDetails:
    """Book for ``patient`` as recorded: the booking finds exactly this record."""
    return PatientDetails(
        first_name=patient.first_name,
        last_name=patient.last_name,
        email=patient.email,
        phone=patient.phone,
        language=patient.language,
        sms_consent=typed.sms_consent,
        email_consent=typed.email_consent,
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
        no_confirmation=form.get("no_confirmation") == "yes",
        custom_date=form.get("custom_date", "").strip()[:10],
        custom_time=form.get("custom_time", "").strip()[:5],
        outside_hours_reason=form.get("outside_hours_reason", "").strip()[: MAX_OUTSIDE_HOURS_REASON * 2],
    )
    values["patient_choice"] = form.get("patient_choice", "").strip()[:12]
    start_at = parse_slot_value(values["start"])
    if values["custom_time"] and choice["location"] is not None:
        start_at = parse_local_start(values["custom_date"], values["custom_time"], choice["location"].timezone)
    if start_at is None:
        return _render(choice, values=values, errors={"start": "Choose a time."}, error="Choose a time.", status=422)
    if choice["service_id"] is None or choice["location_id"] is None:
        abort(400)
    session = db_session()
    now = utcnow()
    birth_date = desk.read_birth_date(values["birth_date"])
    problem = desk.birth_date_problem(birth_date, now.date())
    if problem:
        return _render(
            choice,
            values=values,
            errors={"birth_date": STAFF_FIELD_MESSAGES[problem]},
            error="Some answers need fixing: see the marked fields.",
            status=422,
        )
    details = PatientDetails(
        first_name=values["first_name"],
        last_name=values["last_name"],
        phone=values["phone"] or None,
        email=values["email"] or None,
        language=values["language"] or None,
        sms_consent=values["sms_consent"],
        email_consent=values["email_consent"],
    )
    try:
        details = _patient_of_choice(values, details, birth_date, now=now)
    except _MaybeOnFile as shown:
        return _render(choice, values=values, errors={}, error=None, duplicates=shown.candidates)
    except DomainError as exc:
        return _render(
            choice, values=values, errors=staff_field_errors(exc), error=staff_message(exc), status=exc.status
        )
    request_ = BookingRequest(
        service_id=choice["service_id"],
        location_id=choice["location_id"],
        practitioner_id=choice["practitioner_id"],
        start=start_at,
        patient=details,
        source="staff",
        intake_reason=values["reason"] or None,
        # The caller was asked every question: an unticked box is "not reported" (recorded as no).
        red_flags=values["red_flags"],
        outside_hours_reason=values["outside_hours_reason"] or None,
    )
    try:
        booked = book(
            session, request_, secret_key=settings().SECRET_KEY, now=now, confirm=not values["no_confirmation"]
        )
    except DomainError as exc:
        return _render(
            choice, values=values, errors=staff_field_errors(exc), error=staff_message(exc), status=exc.status
        )
    appointment = booked.appointment
    if isinstance(birth_date, date):
        desk.set_birth_date_if_missing(session, appointment.patient, birth_date, now=now)
    note = _confirmation_note(session, appointment.id, asked=not values["no_confirmation"])
    flash(
        f"Booked {appointment.patient.display_name} on {fmt_when(appointment.start_at, appointment.location.timezone)} "
        f"with {appointment.practitioner.display_name}. {note}",
        "success",
    )
    return redirect(url_for("console.appointment", appointment_id=appointment.id))
