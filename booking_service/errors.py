"""Domain errors: one vocabulary of stable codes, worded by each surface.

Each error carries the HTTP status and the error ``code`` of the API contract, an English
``message`` (the API's default wording, and what the CLI prints), and ``fields``: field name ->
a stable *field code* such as ``"phone_invalid"``. Each rule is written once, in the domain; the
API (``api/messages.py``), the patient pages (``web/common.py``, Flask-Babel, en and fr) and the
console (``console/common.py``) each map codes to their own words. Field values that are not a
known code are already readable text (older rules) and are shown as they are.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, fields: dict[str, Any] | None = None, code: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code is not None:
            self.code = code
        self.extra = extra


# Field codes of a patient's details (``patients.operations.clean_details``).
FIRST_NAME_MISSING = "first_name_missing"
LAST_NAME_MISSING = "last_name_missing"
NAME_TOO_LONG = "name_too_long"
NAME_INVALID = "name_invalid"
EMAIL_INVALID = "email_invalid"
PHONE_INVALID = "phone_invalid"
CONTACT_MISSING = "contact_missing"
LANGUAGE_INVALID = "language_invalid"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class ValidationFailed(DomainError):
    """Input that is well-formed but not acceptable (a phone that is not a phone)."""

    status = 422
    code = "invalid"


class SlotUnavailable(DomainError):
    """The requested start is not a slot at all: off the grid, outside hours, past, too far."""

    status = 422
    code = "slot_unavailable"


class SlotTaken(DomainError):
    """The requested start was a valid slot but someone else just took it."""

    status = 409
    code = "slot_taken"


class PatientBusy(DomainError):
    """The patient already has an appointment overlapping the requested time."""

    status = 409
    code = "patient_overlap"


class InvalidTransition(DomainError):
    """The appointment's status does not allow the requested change (cancelled, finished ...)."""

    status = 409
    code = "invalid_transition"


class LateCancellationBlocked(DomainError):
    """Inside the cancellation window, with the clinic's policy asking the patient to phone."""

    status = 409
    code = "late_cancellation"


class Conflict(DomainError):
    status = 409
    code = "conflict"


# Field codes of exercises and home exercise programs (``exercises.validation``).
EXERCISES_MISSING = "exercises_missing"
EXERCISE_UNKNOWN = "exercise_unknown"
EXERCISE_REPEATED = "exercise_repeated"
REPS_INVALID = "reps_invalid"
SETS_INVALID = "sets_invalid"
HOLD_INVALID = "hold_invalid"
TIMES_PER_DAY_INVALID = "times_per_day_invalid"
DAYS_MISSING = "days_missing"
DAY_INVALID = "day_invalid"
TIME_MISSING = "time_missing"
START_MISSING = "start_missing"
END_BEFORE_START = "end_before_start"
PRACTITIONER_UNKNOWN = "practitioner_unknown"
EXERCISE_KEY_INVALID = "exercise_key_invalid"
EXERCISE_KEY_TAKEN = "exercise_key_taken"
EXERCISE_NAME_MISSING = "exercise_name_missing"
EXERCISE_INSTRUCTIONS_MISSING = "exercise_instructions_missing"
TEXT_TOO_LONG = "text_too_long"
MEDIA_URL_INVALID = "media_url_invalid"
EXERCISES_TOO_MANY = "exercises_too_many"
PRACTITIONER_NOT_YOURS = "practitioner_not_yours"
