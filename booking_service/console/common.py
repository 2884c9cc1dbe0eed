"""Helpers shared by the console's controllers: parsing, formatting times in a location's zone,
the chosen location, and running one operation with its outcome flashed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from itertools import groupby
from zoneinfo import ZoneInfo

import phonenumbers
from flask import Response, flash, g, redirect, request, session

from booking_service import errors
from booking_service.clinic.models import ClinicSettings, Location
from booking_service.clinic.queries import active_locations, get_clinic
from booking_service.context import db_session, discard_changes, utcnow
from booking_service.errors import DomainError, NotFound
from booking_service.form_values import (  # noqa: F401  (re-exported for the console's views)
    asset_url,
    parse_date,
    parse_int,
    parse_slot_value,
    slot_value,
)
from booking_service.patients.operations import MAX_NAME_LENGTH
from booking_service.scheduling.availability import Slot

LOCATION_KEY = "staff_location"

STATUS_LABELS = {
    "booked": "Booked",
    "confirmed": "Confirmed",
    "checked_in": "Checked in",
    "completed": "Completed",
    "no_show": "No-show",
    "cancelled": "Cancelled",
}

# Staff-facing wording of the red-flag questions (keys: scheduling.models.RED_FLAGS).
RED_FLAG_LABELS = {
    "bladder_bowel": "New loss of bladder or bowel control, or trouble passing urine",
    "saddle_numbness": "Numbness in the groin, buttocks or inner thighs",
    "leg_weakness": "Leg weakness that is getting worse, or both legs affected",
    "systemic": "Severe pain with fever, weight loss, a history of cancer or recent major trauma",
}


# --- parsing ---------------------------------------------------------------------------------------


# --- the clinic and the chosen location ----------------------------------------------------------


def clinic_or_none() -> ClinicSettings | None:
    if "staff_clinic" not in g:
        try:
            g.staff_clinic = get_clinic(db_session())
        except NotFound:
            g.staff_clinic = None
    return g.staff_clinic


def choose_location() -> tuple[Location | None, list[Location]]:
    """(the location to show, all active ones): ``?location=`` if valid (remembered for the next
    pages), else the one remembered, else the first."""
    locations = active_locations(db_session())
    by_id = {location.id: location for location in locations}
    wanted = parse_int(request.args.get("location"))
    if wanted in by_id:
        session[LOCATION_KEY] = wanted
        return by_id[wanted], locations
    remembered = session.get(LOCATION_KEY)
    if remembered in by_id:
        return by_id[remembered], locations
    return (locations[0] if locations else None), locations


def local_today(location: Location | None) -> date:
    zone = location.timezone if location is not None else (clinic_or_none() or ClinicSettings()).timezone
    return utcnow().astimezone(ZoneInfo(zone or "UTC")).date()


# --- formatting (staff read English; times always in the location's own zone) --------------------


def _zone(tz_name: str) -> ZoneInfo:
    return ZoneInfo(tz_name)


def fmt_time(instant: datetime | None, tz_name: str) -> str:
    return instant.astimezone(_zone(tz_name)).strftime("%H:%M") if instant else ""


def local_iso(instant: datetime, tz_name: str) -> str:
    """ISO 8601 with the location's offset, for ``<time datetime=...>``."""
    return instant.astimezone(_zone(tz_name)).isoformat(timespec="minutes")


def fmt_when(instant: datetime | None, tz_name: str) -> str:
    """``Tue 24 Nov 2026, 10:00``."""
    if instant is None:
        return ""
    local = instant.astimezone(_zone(tz_name))
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M}"


def fmt_day(day: date, *, short: bool = False) -> str:
    """``Tuesday 24 November 2026``, or ``Tue 24 Nov`` when short."""
    return f"{day:%a} {day.day} {day:%b}" if short else f"{day:%A} {day.day} {day:%B %Y}"


def zone_label(tz_name: str, on: date) -> str:
    """``America/Toronto (EST)``: the zone and its abbreviation at noon that day."""
    noon = datetime(on.year, on.month, on.day, 12, tzinfo=_zone(tz_name))
    return f"{tz_name} ({noon.tzname()})"


def display_phone(number: str | None) -> str:
    """National format for a number of the clinic's country (``(416) 555-0142``), else international."""
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    clinic = clinic_or_none()
    same = clinic is not None and phonenumbers.region_code_for_number(parsed) == clinic.country
    style = phonenumbers.PhoneNumberFormat.NATIONAL if same else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(parsed, style)


def slots_by_day(slots: Iterable[Slot], tz_name: str) -> list[tuple[date, list[Slot]]]:
    zone = _zone(tz_name)
    return [(day, list(group)) for day, group in groupby(slots, key=lambda s: s.start.astimezone(zone).date())]


# --- running one operation -------------------------------------------------------------------------

# The console's words for the domain's codes: staff act on the patient's behalf, so the words
# speak of "the patient". Codes without words here show the domain's English message.
_STAFF_WORDING = {"patient_overlap": "The patient already has another appointment at that time."}
_STAFF_FIELD_WORDING = {
    errors.FIRST_NAME_MISSING: "Enter the patient's first name.",
    errors.LAST_NAME_MISSING: "Enter the patient's last name.",
    errors.NAME_TOO_LONG: f"Use at most {MAX_NAME_LENGTH} characters.",
    errors.NAME_INVALID: "Use letters, spaces, hyphens or apostrophes only.",
    errors.EMAIL_INVALID: "This email address does not look right (name@example.com).",
    errors.PHONE_INVALID: "This is not a valid phone number: check the digits (416 555 0123 or +1 416 555 0123).",
    errors.CONTACT_MISSING: "Enter the patient's email or mobile number, so they get a confirmation and reminders.",
    errors.LANGUAGE_INVALID: "Choose English or French.",
    errors.EXERCISES_MISSING: "Choose at least one exercise.",
    errors.EXERCISES_TOO_MANY: "Choose at most 20 exercises.",
    errors.EXERCISE_UNKNOWN: "This exercise is not in the library (or no longer offered).",
    errors.EXERCISE_REPEATED: "This exercise is in the program twice.",
    errors.REPS_INVALID: "Repetitions: 1 to 200, or empty for none.",
    errors.SETS_INVALID: "Sets: 1 to 20, or empty for none.",
    errors.HOLD_INVALID: "Hold: 1 to 600 seconds, or empty for none.",
    errors.TIMES_PER_DAY_INVALID: "Times a day: 1 to 10.",
    errors.DAYS_MISSING: "Tick at least one day of the week.",
    errors.DAY_INVALID: "Tick days of the week from the list.",
    errors.TIME_MISSING: "Enter the time of day for the reminder, such as 18:30.",
    errors.START_MISSING: "Enter the first day of the program.",
    errors.END_BEFORE_START: "The end date is before the start: change it, or leave it empty (until discharge).",
    errors.PRACTITIONER_UNKNOWN: "Choose a practitioner from the list.",
    errors.PRACTITIONER_NOT_YOURS: "You can assign programs only as yourself.",
    errors.EXERCISE_KEY_INVALID: "Key: 2 to 64 lower-case letters, digits or underscores (e.g. side_plank).",
    errors.EXERCISE_KEY_TAKEN: "Another exercise already has this key.",
    errors.EXERCISE_NAME_MISSING: "Enter the name.",
    errors.EXERCISE_INSTRUCTIONS_MISSING: "Enter the instructions.",
    errors.TEXT_TOO_LONG: "This text is too long: shorten it.",
    errors.MEDIA_URL_INVALID: "The image or video link must be a web address starting with https://.",
}


def staff_message(exc: DomainError) -> str:
    return _STAFF_WORDING.get(exc.code, exc.message)


def staff_field_errors(exc: DomainError) -> dict[str, str]:
    """Field name -> the console's words for the field's code (text that is not a code as it is)."""
    return {field: _STAFF_FIELD_WORDING.get(code, code) for field, code in exc.fields.items()}


def run(operation: Callable[[], str], *, then: str, on_error: str | None = None) -> Response:
    """Run ``operation`` (which returns the success message), flash the message, then redirect
    to ``then`` (post/redirect/get: reloading never repeats the action); the request's edge
    commits. A DomainError's message is flashed as an error, the request's work is discarded,
    then redirect to ``on_error`` (default ``then``)."""
    try:
        message = operation()
    except DomainError as exc:
        discard_changes()
        flash(staff_message(exc), "error")
        return redirect(on_error or then)
    flash(message, "success")
    return redirect(then)
