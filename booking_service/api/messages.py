"""The API's words for the domain's codes (``booking_service.errors``): plain English that says
what to fix, for integrators to show as it is.

``MESSAGES`` words an error's ``reason`` (its ``message``), ``FIELD_MESSAGES`` each field code
(the values of ``fields``); ``%(name)s`` is a value the error carries. A reason or field value
that is not a code here is already readable text and passes through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from booking_service import errors
from booking_service.errors import DomainError, fill
from booking_service.patients.operations import MAX_NAME_LENGTH

MESSAGES = {
    errors.NOT_FOUND: "There is nothing at this address.",
    errors.INVALID: "Some fields need fixing.",
    errors.CONFLICT: "That conflicts with the current state.",
    errors.SLOT_TAKEN: "That time was just taken. Please choose another time.",
    errors.SLOT_UNAVAILABLE: "That time is not available for booking. Please choose one of the free times.",
    errors.PATIENT_OVERLAP: "You already have an appointment at that time.",
    errors.INVALID_TRANSITION: "This appointment can no longer be changed.",
    errors.LATE_CANCELLATION: (
        "Cancellations within %(hours)s hours of the visit are made by phone: please call %(phone)s."
    ),
    errors.CLINIC_NOT_SET_UP: (
        "The clinic is not set up yet: open /setup in a browser to set it up (a new database), "
        "or run `flask --app booking_service seed-demo` for the demo clinic."
    ),
    errors.SERVICE_NOT_FOUND: "There is no such service.",
    errors.LOCATION_NOT_FOUND: "There is no such location.",
    errors.PRACTITIONER_NOT_FOUND: "There is no such practitioner.",
    errors.PRACTITIONER_NOT_OFFERING: "That practitioner does not offer this service at this location.",
    errors.APPOINTMENT_NOT_FOUND: "There is no such appointment.",
    errors.PATIENT_NOT_FOUND: "There is no such patient.",
    errors.MESSAGE_NOT_FOUND: "There is no such message.",
    errors.LINK_INVALID: "This link is not valid. Please contact the clinic.",
    errors.START_NEEDS_OFFSET: "The start time needs a UTC offset.",
    errors.RED_FLAG_UNKNOWN: "Unknown red-flag question.",
    errors.STATUS_UNKNOWN: "Unknown status.",
    errors.LATE_CHANGE: "Changes within %(hours)s hours of the visit are made by phone: please call %(phone)s.",
    errors.APPOINTMENT_CLOSED: "This appointment is %(status)s and can no longer be changed.",
    errors.APPOINTMENT_STARTED: "This appointment has already started and can no longer be changed.",
    errors.STATUS_CHANGE_NOT_ALLOWED: "An appointment that is %(old)s cannot become %(new)s.",
    errors.CHECK_IN_TOO_EARLY: "Check-in opens %(hours)s hours before the appointment.",
    errors.NOT_STARTED_YET: "An appointment can be marked %(status)s once it has started.",
    errors.HOURS_INVALID: "Some hours need fixing: see the fields.",
    errors.TIME_OFF_INVALID: "The time off needs fixing.",
    errors.TIME_OFF_GONE: "That time off was already removed.",
    errors.CLOSURE_INVALID: "The closure needs fixing.",
    errors.CLOSURE_GONE: "That closure was already removed.",
    errors.POLICY_INVALID: "Some settings need fixing: see the fields.",
    errors.WAITLIST_DATES_INVALID: "Some dates need fixing.",
    errors.WAITLIST_ENTRY_NOT_FOUND: "There is no such waitlist entry.",
    errors.WAITLIST_ENTRY_CLOSED: "This waitlist entry is %(status)s, not waiting.",
    errors.ROLE_UNKNOWN: "Unknown role %(role)s.",
    errors.PRACTITIONER_LINK_NEEDS_ROLE: "Only a practitioner login is linked to a practitioner.",
    errors.PASSWORD_TOO_SHORT: "The password is too short.",
    errors.USER_EXISTS: "A staff user with email %(email)s already exists.",
    errors.USER_NOT_FOUND: "There is no staff user with email %(email)s.",
    errors.USER_DEACTIVATED: "The staff user %(email)s is deactivated.",
    # Setting up the clinic (staff only).
    errors.CLINIC_INVALID: "Some of the clinic's details need fixing: see the fields.",
    errors.LOCATION_INVALID: "Some of the location's details need fixing: see the fields.",
    errors.PRACTITIONER_INVALID: "Some of the practitioner's details need fixing: see the fields.",
    errors.SERVICE_INVALID: "Some of the service's details need fixing: see the fields.",
    errors.IMPACT_NOT_CONFIRMED: (
        "This change leaves %(count)s future appointments to move: confirm it to save, then move them."
    ),
    # Treatment-plan series.
    errors.PLAN_CONFLICTS: (
        "Some visits of the plan cannot be booked as asked, so nothing was booked. Choose a time from each "
        "conflict's alternatives and send the plan again with every start in `starts`."
    ),
    errors.PLAN_NOT_FOUND: "There is no such treatment plan.",
    errors.PLAN_INVALID: "The treatment plan needs fixing: see the fields.",
    errors.PLAN_NOTHING_LEFT: "This plan has no upcoming visit left to cancel.",
}

FIELD_MESSAGES = {
    errors.FIRST_NAME_MISSING: "Enter a first name.",
    errors.LAST_NAME_MISSING: "Enter a last name.",
    errors.NAME_TOO_LONG: f"Use at most {MAX_NAME_LENGTH} characters.",
    errors.NAME_INVALID: "Use letters, spaces, hyphens or apostrophes only.",
    errors.EMAIL_INVALID: "Enter an email address such as name@example.com.",
    errors.PHONE_INVALID: "Enter a mobile number such as 416 555 0123 or +1 416 555 0123.",
    errors.CONTACT_MISSING: "Give an email address or a mobile number so we can confirm your booking.",
    errors.LANGUAGE_INVALID: "Choose en or fr.",
    errors.SERVICE_UNKNOWN: "Choose a service from /api/v1/services.",
    errors.LOCATION_UNKNOWN: "Choose a location from /api/v1/locations.",
    errors.PRACTITIONER_UNKNOWN: "Choose a practitioner from /api/v1/practitioners, or leave it out.",
    errors.TIME_NEEDS_ZONE: "Use ISO 8601 with an offset, such as 2026-11-24T09:00:00-05:00.",
    errors.START_NOT_A_SLOT: "Choose a start time from /api/v1/availability.",
    errors.END_NOT_AFTER_START: "Use an end after the start.",
    errors.DAY_INVALID: "Use a date as YYYY-MM-DD.",
    errors.RED_FLAG_KEYS_UNKNOWN: "Remove the unknown keys: %(keys)s.",
    errors.STATUS_INVALID: "Use one of %(choices)s.",
    errors.WEEKDAY_INVALID: "Use a weekday from 0 (Monday) to 6 (Sunday).",
    errors.BREAK_INCOMPLETE: "Give both ends of the break, or neither.",
    errors.BREAK_END_NOT_AFTER_START: "End the break after it starts.",
    errors.BREAK_OUTSIDE_HOURS: "Put the break inside the working hours.",
    errors.UNTIL_BEFORE_FROM: "Use a 'valid until' date on or after 'valid from'.",
    errors.HOURS_OVERLAP: "This overlaps the hours %(start)s-%(end)s of the same day: change one of them.",
    errors.HOURS_OVERLAP_ELSEWHERE: (
        "This overlaps their hours at %(location)s (%(start)s-%(end)s): a person can be in one place at a time."
    ),
    errors.REASON_TOO_LONG: "Keep the reason under %(limit)s characters.",
    errors.CLOSURE_NAME_MISSING: "Say why it is closed (for example: Boxing Day).",
    errors.CLOSURE_NAME_TOO_LONG: "Keep the name under %(limit)s characters.",
    errors.DAY_ALREADY_CLOSED: "That day is already closed there: choose another day.",
    errors.NUMBER_OUT_OF_RANGE: "Use a whole number of %(unit)s from %(low)s to %(high)s.",
    errors.SLOT_STEP_INVALID: "Use one of %(choices)s minutes.",
    errors.LATE_POLICY_INVALID: "Use 'block' or 'record'.",
    errors.YES_NO_INVALID: "Use true or false.",
    errors.TIME_INVALID: "Use a time as HH:MM.",
    errors.QUIET_HOURS_ORDER: "End the sending hours after they start (for example 08:00 to 20:00).",
    errors.COLOUR_INVALID: "Use a colour as #rrggbb, for example #0f6e6e.",
    errors.COLOUR_CONTRAST_LOW: (
        "White text on %(colour)s has a contrast of %(ratio)s:1; use a darker colour (at least %(minimum)s:1)."
    ),
    errors.RULES_NOT_LIST: "Use a list of reminder rules.",
    errors.RULE_NOT_OBJECT: "Write each reminder rule as an object.",
    errors.RULE_CHANNEL_INVALID: "Use sms or email as a reminder rule's channel, not %(value)s.",
    errors.RULE_NEEDS_ONE_OFFSET: "Give each reminder rule exactly one of hours_before or days_before.",
    errors.RULE_HOURS_INVALID: "Use a number of hours above 0 and up to 744 for hours_before, not %(value)s.",
    errors.RULE_AT_WITH_HOURS: "Use 'at' only with days_before.",
    errors.RULE_DAYS_INVALID: "Use a whole number of days from 0 to 31 for days_before, not %(value)s.",
    errors.RULE_AT_INVALID: "Use a local time HH:MM for 'at', not %(value)s.",
    errors.EARLIEST_DATE_PAST: "Choose today or a later date.",
    errors.LATEST_BEFORE_EARLIEST: "Choose a date on or after the first date.",
    errors.LATEST_BEYOND_HORIZON: "Choose a date up to %(last_day)s: we book up to %(horizon_days)s days ahead.",
    errors.ROLE_INVALID: "Use one of %(roles)s.",
    errors.PRACTITIONER_LINK_INVALID: "Link only a practitioner login to a practitioner, or leave it out.",
    errors.PASSWORD_LENGTH: "Use at least %(minimum)s characters.",
    errors.EXERCISES_MISSING: "Give at least one exercise.",
    errors.EXERCISES_TOO_MANY: "Give at most 20 exercises.",
    errors.EXERCISE_UNKNOWN: "Use an exercise_id from /api/v1/exercises.",
    errors.EXERCISE_REPEATED: "List each exercise once.",
    errors.REPS_INVALID: "Use a number of repetitions between 1 and 200, or leave it out for the default.",
    errors.SETS_INVALID: "Use a number of sets between 1 and 20, or leave it out for the default.",
    errors.HOLD_INVALID: "Use a hold between 1 and 600 seconds, or leave it out for the default.",
    errors.TIMES_PER_DAY_INVALID: "Use between 1 and 10 times a day, or leave it out for the default.",
    errors.DAYS_MISSING: 'Give at least one day of the week, such as ["mon", "wed", "fri"].',
    errors.TIME_MISSING: "Give a time of day such as 18:30.",
    errors.START_MISSING: "Give the first day, YYYY-MM-DD.",
    errors.END_BEFORE_START: "Use an end date on or after the start date, or leave it out (until discharge).",
    errors.PRACTITIONER_NOT_YOURS: "Use your own practitioner id.",
    errors.EXERCISE_KEY_INVALID: "Use 2 to 64 lower-case letters, digits or underscores.",
    errors.EXERCISE_KEY_TAKEN: "Another exercise has this key.",
    errors.EXERCISE_NAME_MISSING: "Give a name.",
    errors.EXERCISE_INSTRUCTIONS_MISSING: "Give the instructions.",
    errors.TEXT_TOO_LONG: "Shorten this text.",
    errors.MEDIA_URL_INVALID: "Use a web address starting with https://.",
    # Setting up the clinic (staff only).
    errors.VALUE_MISSING: "Fill this in.",
    errors.KEY_INVALID: "Use lower-case letters, digits and single hyphens (up to 64), such as downtown-east.",
    errors.KEY_TAKEN: "Another item of the same kind has this key: choose another.",
    errors.TIMEZONE_INVALID: "Use an IANA time zone, such as America/Toronto.",
    errors.COUNTRY_INVALID: "Use a two-letter country code, such as CA.",
    errors.LANGUAGES_INVALID: "Choose one or more of %(choices)s.",
    errors.KIND_INVALID: "Use one of %(choices)s.",
    errors.DURATION_INVALID: "Use a number of minutes that is a multiple of %(step)s, up to %(high)s.",
    errors.PRICE_INVALID: "Use a price in cents from 0 to 10000000, or leave it out.",
    errors.PHOTO_URL_INVALID: "Use a web address starting with https://, or leave it out.",
    errors.STAFF_LOGIN_INVALID: "Use the id of an active staff user with the practitioner role, or leave it out.",
    errors.STAFF_LOGIN_TAKEN: "This staff login is already %(practitioner)s's: use another or leave it out.",
    errors.TOO_LONG: "Shorten this to %(limit)s characters at most.",
    # Treatment-plan series.
    errors.PLAN_COUNT_INVALID: "Use a number of visits from %(low)s to %(high)s.",
    errors.PLAN_EVERY_DAYS_INVALID: "Use a number of days between visits from %(low)s to %(high)s.",
    errors.PLAN_WEEKDAYS_MISSING: "Give at least one day of the week.",
    errors.PLAN_FIRST_START_MISSING: "Give first_start (the first visit), or every start in `starts`.",
    errors.PLAN_STARTS_MISMATCH: "Give exactly count starts (%(count)s, not %(given)s), or leave count out.",
    errors.PLAN_STARTS_OVERLAP: "Two of these starts overlap: one person cannot be in two visits at once.",
    errors.PLAN_PATIENT_ERASED: "This patient's data was erased: book under a new patient record.",
    # The desk: patients' details and notes.
    errors.BIRTH_DATE_INVALID: "Use a past date as YYYY-MM-DD, or null for none.",
    errors.SMS_OPTED_OUT: "This number replied STOP: only a START text from it allows texts again.",
    errors.NOTE_MISSING: "Give the note's text.",
    errors.NOTE_TOO_LONG: "Keep the note under %(limit)s characters.",
    errors.SAME_PATIENT: "Give two different patients.",
    # Staff placing an appointment outside the free times, and moves (the live day view).
    errors.OUTSIDE_HOURS_REASON_MISSING: (
        "This time is not one of %(name)s's free times: give outside_hours_reason to book it anyway."
    ),
    errors.START_IN_PAST: "Use a start from now on.",
    errors.PRACTITIONER_BUSY_THEN: "%(name)s has another appointment or time off then: choose a free time.",
    errors.LOCATION_CLOSED_THAT_DAY: "%(location)s is closed on %(day)s: choose another day.",
    errors.PRACTITIONER_NEEDED: "Give practitioner_id: a time outside the free times is booked with one practitioner.",
}


def _shown(value: Any) -> str:
    """Statuses and other codes inside a sentence read with spaces (``no_show`` -> ``no show``)."""
    text = errors.default_render(value)
    return text.replace("_", " ") if isinstance(value, str) and text.isidentifier() else text


def error_message(exc: DomainError) -> str:
    """The API's ``message`` for a domain error."""
    words = MESSAGES.get(exc.reason)
    return exc.reason if words is None else fill(words, exc.values(), _shown)


def field_message(code: str, values: Mapping[str, Any] | None = None) -> str:
    words = FIELD_MESSAGES.get(code)
    return code if words is None else fill(words, values or {}, errors.default_render)


def field_messages(exc: DomainError) -> dict[str, str]:
    """Field path -> readable message, for the ``fields`` of an API error."""
    return {path: field_message(code, exc.field_params.get(path)) for path, code in exc.fields.items()}
