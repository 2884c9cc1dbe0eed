"""The API's words for the domain's field codes (``booking_service.errors``).

``fields`` of an API error maps a field path to a readable message: integrators show it as it
is. Values that are not a code here are already readable text and pass through.
"""

from __future__ import annotations

from collections.abc import Mapping

from booking_service import errors
from booking_service.patients.operations import MAX_NAME_LENGTH

FIELD_MESSAGES = {
    errors.FIRST_NAME_MISSING: "Enter a first name.",
    errors.LAST_NAME_MISSING: "Enter a last name.",
    errors.NAME_TOO_LONG: f"Use at most {MAX_NAME_LENGTH} characters.",
    errors.NAME_INVALID: "Use letters, spaces, hyphens or apostrophes only.",
    errors.EMAIL_INVALID: "Enter an email address such as name@example.com.",
    errors.PHONE_INVALID: "Enter a mobile number such as 416 555 0123 or +1 416 555 0123.",
    errors.CONTACT_MISSING: "Give an email address or a mobile number so we can confirm your booking.",
    errors.LANGUAGE_INVALID: "Choose en or fr.",
    errors.EXERCISES_MISSING: "Give at least one exercise.",
    errors.EXERCISES_TOO_MANY: "Give at most 20 exercises.",
    errors.EXERCISE_UNKNOWN: "Use an exercise_id from /api/v1/exercises.",
    errors.EXERCISE_REPEATED: "List each exercise once.",
    errors.REPS_INVALID: "Use a number of repetitions between 1 and 200, or leave it out for the default.",
    errors.SETS_INVALID: "Use a number of sets between 1 and 20, or leave it out for the default.",
    errors.HOLD_INVALID: "Use a hold between 1 and 600 seconds, or leave it out for the default.",
    errors.TIMES_PER_DAY_INVALID: "Use between 1 and 10 times a day, or leave it out for the default.",
    errors.DAYS_MISSING: 'Give at least one day of the week, such as ["mon", "wed", "fri"].',
    errors.DAY_INVALID: "Use mon, tue, wed, thu, fri, sat or sun.",
    errors.TIME_MISSING: "Give a time of day such as 18:30.",
    errors.START_MISSING: "Give the first day, YYYY-MM-DD.",
    errors.END_BEFORE_START: "Use an end date on or after the start date, or leave it out (until discharge).",
    errors.PRACTITIONER_UNKNOWN: "Use a practitioner id from /api/v1/practitioners.",
    errors.PRACTITIONER_NOT_YOURS: "Use your own practitioner id.",
    errors.EXERCISE_KEY_INVALID: "Use 2 to 64 lower-case letters, digits or underscores.",
    errors.EXERCISE_KEY_TAKEN: "Another exercise has this key.",
    errors.EXERCISE_NAME_MISSING: "Give a name.",
    errors.EXERCISE_INSTRUCTIONS_MISSING: "Give the instructions.",
    errors.TEXT_TOO_LONG: "Shorten this text.",
    errors.MEDIA_URL_INVALID: "Use a web address starting with https://.",
}


def field_message(code: str) -> str:
    return FIELD_MESSAGES.get(code, code)


def field_messages(fields: Mapping[str, str]) -> dict[str, str]:
    """Field path -> readable message, for the ``fields`` of an API error."""
    return {path: field_message(code) for path, code in fields.items()}
