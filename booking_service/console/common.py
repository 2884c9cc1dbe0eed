"""Helpers shared by the console's controllers: parsing, formatting times in a location's zone,
the chosen location, and running one operation with its outcome flashed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time
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


def parse_local_start(day_raw: str | None, time_raw: str | None, tz_name: str) -> datetime | None:
    """A start typed as a local date (``YYYY-MM-DD``) and time (``HH:MM``) in the location's
    zone, as an aware UTC instant; None when either does not read."""
    day = parse_date(day_raw)
    try:
        at = time.fromisoformat((time_raw or "").strip()[:5])
    except ValueError:
        return None
    if day is None:
        return None
    return datetime.combine(day, at, tzinfo=ZoneInfo(tz_name)).astimezone(UTC)


# --- the clinic and the chosen location ----------------------------------------------------------


def clinic_or_none() -> ClinicSettings | None:
    if "staff_clinic" not in g:
        try:
            g.staff_clinic = get_clinic(db_session())
        except NotFound:
            g.staff_clinic = None
    return g.staff_clinic


def choose_location(prefer: Callable[[], int | None] | None = None) -> tuple[Location | None, list[Location]]:
    """(the location to show, all active ones): ``?location=`` if valid (remembered for the next
    pages), else the one ``prefer()`` names (a practitioner's: where they work that day), else
    the one remembered, else the first."""
    locations = active_locations(db_session())
    by_id = {location.id: location for location in locations}
    wanted = parse_int(request.args.get("location"))
    if wanted in by_id:
        session[LOCATION_KEY] = wanted
        return by_id[wanted], locations
    preferred = prefer() if prefer is not None else None
    if preferred in by_id:
        return by_id[preferred], locations
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


def fmt_soon(instant: datetime | None, tz_name: str) -> str:
    """``10:05`` when ``instant`` falls today in the zone (a retry, a wait), else as :func:`fmt_when`."""
    if instant is None:
        return ""
    zone = _zone(tz_name)
    if instant.astimezone(zone).date() == utcnow().astimezone(zone).date():
        return fmt_time(instant, tz_name)
    return fmt_when(instant, tz_name)


def fmt_day(day: date, *, short: bool = False) -> str:
    """``Tuesday 24 November 2026``, or ``Tue 24 Nov`` when short."""
    return f"{day:%a} {day.day} {day:%b}" if short else f"{day:%A} {day.day} {day:%B %Y}"


def zone_label(tz_name: str, on: date) -> str:
    """``America/Toronto (EST)``: the zone and its abbreviation at noon that day."""
    noon = datetime(on.year, on.month, on.day, 12, tzinfo=_zone(tz_name))
    return f"{tz_name} ({noon.tzname()})"


def service_label(service) -> str:
    """``Initial assessment (60 min)``; a name that already says its length
    (``Follow-up (30 min)``) is not told it twice."""
    minutes = f"{service.duration_minutes} min"
    return service.name if minutes in service.name else f"{service.name} ({minutes})"


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
# speak of "the patient"; ``%(name)s`` is a value the error carries. The CLI uses them too.
STAFF_MESSAGES = {
    errors.NOT_FOUND: "That could not be found: it may have been removed. Reload the page.",
    errors.INVALID: "Some answers need fixing: see the marked fields.",
    errors.CONFLICT: "That conflicts with a change made meanwhile. Reload the page and try again.",
    errors.SLOT_TAKEN: "That time was just taken. Choose another time.",
    errors.SLOT_UNAVAILABLE: "That time is not available for booking. Choose one of the free times.",
    errors.PATIENT_OVERLAP: "The patient already has another appointment at that time.",
    errors.INVALID_TRANSITION: "This appointment can no longer be changed.",
    errors.LATE_CANCELLATION: "Inside the %(hours)s-hour window the clinic's policy asks patients to phone.",
    errors.CLINIC_NOT_SET_UP: (
        "The clinic is not set up yet: open /setup in a browser to set it up (a new database), "
        "or run `flask --app booking_service seed-demo` for the demo clinic."
    ),
    errors.SERVICE_NOT_FOUND: "That service is not offered any more. Choose another.",
    errors.LOCATION_NOT_FOUND: "That location is not open any more. Choose another.",
    errors.PRACTITIONER_NOT_FOUND: "That practitioner could not be found. Choose another.",
    errors.PRACTITIONER_NOT_OFFERING: "That practitioner does not offer this service at this location.",
    errors.APPOINTMENT_NOT_FOUND: "There is no such appointment.",
    errors.PATIENT_NOT_FOUND: "There is no such patient.",
    errors.MESSAGE_NOT_FOUND: "There is no such message.",
    errors.LINK_INVALID: "That manage link is not valid any more.",
    errors.START_NEEDS_OFFSET: "The start time needs its time zone.",
    errors.RED_FLAG_UNKNOWN: "One of the red-flag answers is not a known question.",
    errors.STATUS_UNKNOWN: "That is not a status an appointment can be given.",
    errors.LATE_CHANGE: "Inside the %(hours)s-hour window the clinic's policy asks patients to phone.",
    errors.APPOINTMENT_CLOSED: "This appointment is %(status)s and can no longer be changed.",
    errors.APPOINTMENT_STARTED: "This appointment has already started and can no longer be moved or cancelled.",
    errors.STATUS_CHANGE_NOT_ALLOWED: "An appointment that is %(old)s cannot become %(new)s.",
    errors.CHECK_IN_TOO_EARLY: "Check-in opens %(hours)s hours before the appointment.",
    errors.NOT_STARTED_YET: "An appointment can be marked %(status)s once it has started.",
    errors.HOURS_INVALID: "Some hours need fixing: see the marked rows.",
    errors.TIME_OFF_INVALID: "The time off needs fixing.",
    errors.TIME_OFF_GONE: "That time off was already removed.",
    errors.CLOSURE_INVALID: "The closure needs fixing.",
    errors.CLOSURE_GONE: "That closure was already removed.",
    errors.POLICY_INVALID: "Some settings need fixing: see the marked fields.",
    errors.WAITLIST_DATES_INVALID: "Some dates need fixing.",
    errors.WAITLIST_ENTRY_NOT_FOUND: "There is no such waitlist entry.",
    errors.WAITLIST_ENTRY_CLOSED: "This waitlist entry is %(status)s, not waiting.",
    errors.ROLE_UNKNOWN: "Unknown role %(role)s.",
    errors.PRACTITIONER_LINK_NEEDS_ROLE: "Only a practitioner login is linked to a practitioner.",
    errors.PASSWORD_TOO_SHORT: "Password too short.",
    errors.USER_EXISTS: "A user with email %(email)s already exists.",
    errors.USER_NOT_FOUND: "There is no staff user with email %(email)s.",
    errors.USER_DEACTIVATED: "The staff user %(email)s is deactivated.",
    # Setting up the clinic.
    errors.CLINIC_INVALID: "Some of the clinic's details need fixing.",
    errors.LOCATION_INVALID: "Some of the location's details need fixing.",
    errors.PRACTITIONER_INVALID: "Some of the practitioner's details need fixing.",
    errors.SERVICE_INVALID: "Some of the service's details need fixing.",
    errors.IMPACT_NOT_CONFIRMED: (
        "This change leaves %(count)s future appointments to move (listed below). Nothing was saved: "
        "tick the box to confirm, then move them."
    ),
    # Treatment-plan series.
    errors.PLAN_CONFLICTS: "Some visits cannot be booked as asked, so nothing was booked: pick another time for each.",
    errors.PLAN_NOT_FOUND: "There is no such treatment plan.",
    errors.PLAN_INVALID: "The plan needs fixing: see the marked fields.",
    errors.PLAN_NOTHING_LEFT: "This plan has no upcoming visit left to cancel.",
}
STAFF_FIELD_MESSAGES = {
    errors.FIRST_NAME_MISSING: "Enter the patient's first name.",
    errors.LAST_NAME_MISSING: "Enter the patient's last name.",
    errors.NAME_TOO_LONG: f"Use at most {MAX_NAME_LENGTH} characters.",
    errors.NAME_INVALID: "Use letters, spaces, hyphens or apostrophes only.",
    errors.EMAIL_INVALID: "This email address does not look right (name@example.com).",
    errors.PHONE_INVALID: "This is not a valid phone number: check the digits (416 555 0123 or +1 416 555 0123).",
    errors.CONTACT_MISSING: "Enter the patient's email or mobile number, so they get a confirmation and reminders.",
    errors.LANGUAGE_INVALID: "Choose English or French.",
    errors.SERVICE_UNKNOWN: "Choose a service.",
    errors.LOCATION_UNKNOWN: "Choose a location.",
    errors.PRACTITIONER_UNKNOWN: "Choose a practitioner who offers this service here, or anyone.",
    errors.TIME_NEEDS_ZONE: "Give a time with its time zone.",
    errors.START_NOT_A_SLOT: "Choose one of the free times.",
    errors.END_NOT_AFTER_START: "The end must be after the start.",
    errors.DAY_INVALID: "Give the day as a date (YYYY-MM-DD).",
    errors.RED_FLAG_KEYS_UNKNOWN: "Unknown questions: %(keys)s.",
    errors.STATUS_INVALID: "Choose one of %(choices)s.",
    errors.WEEKDAY_INVALID: "Choose a day of the week.",
    errors.BREAK_INCOMPLETE: "Give both ends of the break, or neither.",
    errors.BREAK_END_NOT_AFTER_START: "The break must end after it starts.",
    errors.BREAK_OUTSIDE_HOURS: "The break must be inside the working hours.",
    errors.UNTIL_BEFORE_FROM: "'Until' must be on or after 'from'.",
    errors.HOURS_OVERLAP: "Overlaps the hours %(start)s-%(end)s of the same day.",
    errors.HOURS_OVERLAP_ELSEWHERE: (
        "Overlaps their hours at %(location)s (%(start)s-%(end)s): a person can be in one place at a time."
    ),
    errors.REASON_TOO_LONG: "Keep the reason under %(limit)s characters.",
    errors.CLOSURE_NAME_MISSING: "Say why it is closed (for example: Boxing Day).",
    errors.CLOSURE_NAME_TOO_LONG: "Keep the name under %(limit)s characters.",
    errors.DAY_ALREADY_CLOSED: "That day is already closed there.",
    errors.NUMBER_OUT_OF_RANGE: "Give a whole number of %(unit)s from %(low)s to %(high)s.",
    errors.SLOT_STEP_INVALID: "Choose one of %(choices)s minutes.",
    errors.LATE_POLICY_INVALID: "Choose 'block' or 'record'.",
    errors.YES_NO_INVALID: "Say yes or no.",
    errors.TIME_INVALID: "Give a time as HH:MM.",
    errors.QUIET_HOURS_ORDER: "Messages must stop sending after they start (for example 08:00 to 20:00).",
    errors.COLOUR_INVALID: "Give a colour as #rrggbb, for example #0f6e6e.",
    errors.COLOUR_CONTRAST_LOW: (
        "White button text on %(colour)s has a contrast of %(ratio)s:1; it needs at least %(minimum)s:1 "
        "to be readable. Choose a darker colour."
    ),
    errors.RULES_NOT_LIST: "A reminder rule is not right: give a list of rules.",
    errors.RULE_NOT_OBJECT: "A reminder rule is not right: each rule needs a channel and a time.",
    errors.RULE_CHANNEL_INVALID: "A reminder rule is not right: send it by text or email, not %(value)s.",
    errors.RULE_NEEDS_ONE_OFFSET: "A reminder rule is not right: give hours before, or days before at a time.",
    errors.RULE_HOURS_INVALID: (
        "A reminder rule is not right: hours_before must be a number of hours between 0 and 744, not %(value)s."
    ),
    errors.RULE_AT_WITH_HOURS: "A reminder rule is not right: a time of day goes only with days before.",
    errors.RULE_DAYS_INVALID: "A reminder rule is not right: give 0 to 31 days before, not %(value)s.",
    errors.RULE_AT_INVALID: "A reminder rule is not right: the time of day must be a local time HH:MM, not %(value)s.",
    errors.EARLIEST_DATE_PAST: "Choose today or a later date.",
    errors.LATEST_BEFORE_EARLIEST: "Choose a date on or after the first date.",
    errors.LATEST_BEYOND_HORIZON: "Choose a date up to %(last_day)s: bookings open %(horizon_days)s days ahead.",
    errors.ROLE_INVALID: "Use one of %(roles)s.",
    errors.PRACTITIONER_LINK_INVALID: "Only a practitioner login can be linked to a practitioner.",
    errors.PASSWORD_LENGTH: "Use at least %(minimum)s characters.",
    errors.EXERCISES_MISSING: "Choose at least one exercise.",
    errors.EXERCISES_TOO_MANY: "Choose at most 20 exercises.",
    errors.EXERCISE_UNKNOWN: "This exercise is not in the library (or no longer offered).",
    errors.EXERCISE_REPEATED: "This exercise is in the program twice.",
    errors.REPS_INVALID: "Repetitions: 1 to 200, or empty for none.",
    errors.SETS_INVALID: "Sets: 1 to 20, or empty for none.",
    errors.HOLD_INVALID: "Hold: 1 to 600 seconds, or empty for none.",
    errors.TIMES_PER_DAY_INVALID: "Times a day: 1 to 10.",
    errors.DAYS_MISSING: "Tick at least one day of the week.",
    errors.TIME_MISSING: "Enter the time of day for the reminder, such as 18:30.",
    errors.START_MISSING: "Enter the first day of the program.",
    errors.END_BEFORE_START: "The end date is before the start: change it, or leave it empty (until discharge).",
    errors.PRACTITIONER_NOT_YOURS: "You can assign programs only as yourself.",
    errors.EXERCISE_KEY_INVALID: "Key: 2 to 64 lower-case letters, digits or underscores (e.g. side_plank).",
    errors.EXERCISE_KEY_TAKEN: "Another exercise already has this key.",
    errors.EXERCISE_NAME_MISSING: "Enter the name.",
    errors.EXERCISE_INSTRUCTIONS_MISSING: "Enter the instructions.",
    errors.TEXT_TOO_LONG: "This text is too long: shorten it.",
    errors.MEDIA_URL_INVALID: "The image or video link must be a web address starting with https://.",
    # Setting up the clinic.
    errors.VALUE_MISSING: "This is needed.",
    errors.KEY_INVALID: "Use lower-case letters, digits and single hyphens, such as downtown-east.",
    errors.KEY_TAKEN: "Another one already has this key: choose another.",
    errors.TIMEZONE_INVALID: "Choose a time zone from the list, such as America/Toronto.",
    errors.COUNTRY_INVALID: "Give the country as its two-letter code, such as CA.",
    errors.LANGUAGES_INVALID: "Tick at least one language.",
    errors.KIND_INVALID: "Choose initial, follow-up or other.",
    errors.DURATION_INVALID: "Give a number of minutes in steps of %(step)s (the booking grid), up to %(high)s.",
    errors.PRICE_INVALID: "Give a price such as 95 or 95.50, or leave it empty.",
    errors.PHOTO_URL_INVALID: "The photo must be a web address starting with https://, or leave it empty.",
    errors.STAFF_LOGIN_INVALID: "Choose an active staff login with the practitioner role.",
    errors.STAFF_LOGIN_TAKEN: "This login is already used by %(practitioner)s.",
    errors.TOO_LONG: "Keep this under %(limit)s characters.",
    # Treatment-plan series.
    errors.PLAN_COUNT_INVALID: "Give a number of visits from %(low)s to %(high)s.",
    errors.PLAN_EVERY_DAYS_INVALID: "Give a number of days between visits from %(low)s to %(high)s.",
    errors.PLAN_WEEKDAYS_MISSING: "Tick at least one day of the week.",
    errors.PLAN_FIRST_START_MISSING: "Enter the date and time of the first visit.",
    errors.PLAN_STARTS_MISMATCH: "The plan has %(count)s visits but %(given)s times were given.",
    errors.PLAN_STARTS_OVERLAP: "Two of the visits overlap: choose another time for one of them.",
    errors.PLAN_PATIENT_ERASED: "This patient's data was erased: book under a new patient record.",
    # The desk: patients' details and notes.
    errors.BIRTH_DATE_INVALID: "Give a date of birth in the past (YYYY-MM-DD), or leave it empty.",
    errors.SMS_OPTED_OUT: (
        "This number replied STOP, so it gets no texts: only a START text from the patient's phone allows them again."
    ),
    errors.NOTE_MISSING: "Write the note first.",
    errors.NOTE_TOO_LONG: "Keep the note under %(limit)s characters.",
    errors.SAME_PATIENT: "Choose two different patients.",
    # Staff placing an appointment outside the free times, and moves (the live day view).
    errors.OUTSIDE_HOURS_REASON_MISSING: (
        "This time is not one of %(name)s's free times. To book it anyway, say why (for example: "
        "the patient can only come before work)."
    ),
    errors.START_IN_PAST: "That time has passed: choose a time from now on.",
    errors.PRACTITIONER_BUSY_THEN: (
        "%(name)s already has an appointment or time off then. Choose a free time, or another practitioner."
    ),
    errors.LOCATION_CLOSED_THAT_DAY: "%(location)s is closed on %(day)s. Choose another day.",
    errors.PRACTITIONER_NEEDED: "Choose a practitioner: a time outside the free times is booked with one person.",
}


def _staff_render(value: object) -> str:
    """Statuses read as words (``no_show`` -> ``no show``), dates in full."""
    if isinstance(value, str) and value in STATUS_LABELS:
        return value.replace("_", " ")
    if isinstance(value, date) and not isinstance(value, datetime):
        return fmt_day(value)
    return errors.default_render(value)


def staff_message(exc: DomainError) -> str:
    """The console's words for a domain error (text that is not a code as it is)."""
    words = STAFF_MESSAGES.get(exc.reason)
    return exc.reason if words is None else errors.fill(words, exc.values(), _staff_render)


def staff_field_errors(exc: DomainError) -> dict[str, str]:
    """Field name -> the console's words for the field's code (text that is not a code as it is)."""
    worded = {}
    for field, code in exc.fields.items():
        words = STAFF_FIELD_MESSAGES.get(code)
        worded[field] = code if words is None else errors.fill(words, exc.field_params.get(field, {}), _staff_render)
    return worded


def run(operation: Callable[[], str], *, then: str, on_error: str | None = None) -> Response:
    """Run ``operation`` (which returns the success message), flash the message, then redirect
    to ``then`` (post/redirect/get: reloading never repeats the action); the request's edge
    commits. A DomainError is flashed as an error in the console's words (its message, then each
    field's), the request's work is discarded,
    then redirect to ``on_error`` (default ``then``)."""
    try:
        message = operation()
    except DomainError as exc:
        discard_changes()
        flash(" ".join([staff_message(exc), *staff_field_errors(exc).values()]), "error")
        return redirect(on_error or then)
    flash(message, "success")
    return redirect(then)
