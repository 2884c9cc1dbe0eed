"""Domain errors: one vocabulary of stable codes, worded by each surface.

A :class:`DomainError` carries

- ``status`` and ``code``: the HTTP status and the error code of the API contract
  (``slot_taken``, ``invalid`` ...);
- ``reason``: a stable code for the rule that refused (one of the reason constants below, such
  as ``CLOSURE_GONE``); several reasons share one API ``code``. Without one it is the ``code``;
- ``fields``: field name -> a stable *field code* (the field constants below, such as
  ``PHONE_INVALID``);
- ``params`` (values the error's words need: an hour count, a status) and ``field_params``
  (field name -> the values that field's words need: a limit, a date, a location name);
- ``extra``: values the API adds to its error body as they are (``alternatives``, ``phone``).

The domain writes no words. Each rule is written once, in the domain; the API
(``api/messages.py``, plain English that says what to fix), the patient pages
(``web/common.py``, Flask-Babel, en and fr) and the console (``console/common.py``, staff
wording; the CLI reuses it) each map every code to their own words, with the parameters
filled in. A reason or field value that is not a known code is already readable text (from code
that predates the codes) and is shown as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        reason: str | None = None,
        *,
        fields: Mapping[str, str] | None = None,
        code: str | None = None,
        params: Mapping[str, Any] | None = None,
        field_params: Mapping[str, Mapping[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        if code is not None:
            self.code = code
        self.reason = reason or self.code
        super().__init__(self.reason)
        self.fields = dict(fields or {})
        self.params = dict(params or {})
        self.field_params = {name: dict(values) for name, values in (field_params or {}).items()}
        self.extra = extra

    @property
    def message(self) -> str:
        """The reason (a code, or text from older code): kept for callers that read ``message``."""
        return self.reason

    def values(self) -> dict[str, Any]:
        """The values the error's own words may use: ``params`` and the scalar ``extra``."""
        scalars = {k: v for k, v in self.extra.items() if isinstance(v, str | int | float)}
        return {**scalars, **self.params}


# --- reasons: why an operation refused (the error's ``reason``) ------------------------------------
# The API's own codes, as reasons of errors that have no finer one.
NOT_FOUND = "not_found"
INVALID = "invalid"
CONFLICT = "conflict"
SLOT_TAKEN = "slot_taken"
SLOT_UNAVAILABLE = "slot_unavailable"
PATIENT_OVERLAP = "patient_overlap"
INVALID_TRANSITION = "invalid_transition"
LATE_CANCELLATION = "late_cancellation"  # params: hours, phone
# The catalogue and lookups (code ``not_found`` unless noted).
CLINIC_NOT_SET_UP = "clinic_not_set_up"
SERVICE_NOT_FOUND = "service_not_found"
LOCATION_NOT_FOUND = "location_not_found"
PRACTITIONER_NOT_FOUND = "practitioner_not_found"
PRACTITIONER_NOT_OFFERING = "practitioner_not_offering"  # code invalid
APPOINTMENT_NOT_FOUND = "appointment_not_found"
PATIENT_NOT_FOUND = "patient_not_found"
MESSAGE_NOT_FOUND = "message_not_found"
LINK_INVALID = "link_invalid"
# Booking and changing an appointment.
START_NEEDS_OFFSET = "start_needs_offset"  # code invalid
RED_FLAG_UNKNOWN = "red_flag_unknown"  # code invalid
STATUS_UNKNOWN = "status_unknown"  # code invalid
LATE_CHANGE = "late_change"  # code late_cancellation; params: hours, phone
APPOINTMENT_CLOSED = "appointment_closed"  # code invalid_transition; params: status
APPOINTMENT_STARTED = "appointment_started"  # code invalid_transition
STATUS_CHANGE_NOT_ALLOWED = "status_change_not_allowed"  # code invalid_transition; params: old, new
CHECK_IN_TOO_EARLY = "check_in_too_early"  # code invalid_transition; params: hours
NOT_STARTED_YET = "not_started_yet"  # code invalid_transition; params: status
# The clinic's schedule and policy (code ``invalid`` or ``not_found``).
HOURS_INVALID = "hours_invalid"
TIME_OFF_INVALID = "time_off_invalid"
TIME_OFF_GONE = "time_off_gone"
CLOSURE_INVALID = "closure_invalid"
CLOSURE_GONE = "closure_gone"
POLICY_INVALID = "policy_invalid"
# The waitlist.
WAITLIST_DATES_INVALID = "waitlist_dates_invalid"
WAITLIST_ENTRY_NOT_FOUND = "waitlist_entry_not_found"
WAITLIST_ENTRY_CLOSED = "waitlist_entry_closed"  # code invalid_transition; params: status
# Staff users (the CLI).
ROLE_UNKNOWN = "role_unknown"  # params: role
PRACTITIONER_LINK_NEEDS_ROLE = "practitioner_link_needs_role"
PASSWORD_TOO_SHORT = "password_too_short"
USER_EXISTS = "user_exists"  # code conflict; params: email
USER_NOT_FOUND = "user_not_found"  # params: email
USER_DEACTIVATED = "user_deactivated"  # params: email
# Setting up the clinic: its details and catalogue (``clinic.catalogue``; staff only, never on
# the patient pages).
CLINIC_INVALID = "clinic_invalid"
LOCATION_INVALID = "location_invalid"
PRACTITIONER_INVALID = "practitioner_invalid"
SERVICE_INVALID = "service_invalid"
IMPACT_NOT_CONFIRMED = "impact_not_confirmed"  # code conflict; params: count
# Treatment-plan series (staff only).
PLAN_CONFLICTS = "plan_conflicts"  # code plan_conflicts; extra: conflicts (index, start, reason, alternatives)
PLAN_NOT_FOUND = "plan_not_found"
PLAN_INVALID = "plan_invalid"  # code invalid; the fields say what to fix
PLAN_NOTHING_LEFT = "plan_nothing_left"  # code invalid_transition: no future visit left to cancel

# --- field codes: what is wrong with one field (values of ``fields``) ------------------------------
# A patient's details (``patients.operations.clean_details``).
FIRST_NAME_MISSING = "first_name_missing"
LAST_NAME_MISSING = "last_name_missing"
NAME_TOO_LONG = "name_too_long"
NAME_INVALID = "name_invalid"
EMAIL_INVALID = "email_invalid"
PHONE_INVALID = "phone_invalid"
CONTACT_MISSING = "contact_missing"
LANGUAGE_INVALID = "language_invalid"
# Choosing from the catalogue.
SERVICE_UNKNOWN = "service_unknown"
LOCATION_UNKNOWN = "location_unknown"
PRACTITIONER_UNKNOWN = "practitioner_unknown"
# Times and dates.
TIME_NEEDS_ZONE = "time_needs_zone"
START_NOT_A_SLOT = "start_not_a_slot"
END_NOT_AFTER_START = "end_not_after_start"
DAY_INVALID = "day_invalid"
RED_FLAG_KEYS_UNKNOWN = "red_flag_keys_unknown"  # params: keys
STATUS_INVALID = "status_invalid"  # params: choices
# Weekly hours (fields ``rows.<n>.<field>``).
WEEKDAY_INVALID = "weekday_invalid"
BREAK_INCOMPLETE = "break_incomplete"
BREAK_END_NOT_AFTER_START = "break_end_not_after_start"
BREAK_OUTSIDE_HOURS = "break_outside_hours"
UNTIL_BEFORE_FROM = "until_before_from"
HOURS_OVERLAP = "hours_overlap"  # params: start, end
HOURS_OVERLAP_ELSEWHERE = "hours_overlap_elsewhere"  # params: location, start, end
# Time off and closures.
REASON_TOO_LONG = "reason_too_long"  # params: limit
CLOSURE_NAME_MISSING = "closure_name_missing"
CLOSURE_NAME_TOO_LONG = "closure_name_too_long"  # params: limit
DAY_ALREADY_CLOSED = "day_already_closed"
# Clinic policy.
NUMBER_OUT_OF_RANGE = "number_out_of_range"  # params: low, high
SLOT_STEP_INVALID = "slot_step_invalid"  # params: choices
LATE_POLICY_INVALID = "late_policy_invalid"
YES_NO_INVALID = "yes_no_invalid"
TIME_INVALID = "time_invalid"
QUIET_HOURS_ORDER = "quiet_hours_order"
COLOUR_INVALID = "colour_invalid"
COLOUR_CONTRAST_LOW = "colour_contrast_low"  # params: colour, ratio, minimum
# Reminder rules (``clinic.reminder_rules.RuleError.code``; params: value).
RULES_NOT_LIST = "rules_not_list"
RULE_NOT_OBJECT = "rule_not_object"
RULE_CHANNEL_INVALID = "rule_channel_invalid"
RULE_NEEDS_ONE_OFFSET = "rule_needs_one_offset"
RULE_HOURS_INVALID = "rule_hours_invalid"
RULE_AT_WITH_HOURS = "rule_at_with_hours"
RULE_DAYS_INVALID = "rule_days_invalid"
RULE_AT_INVALID = "rule_at_invalid"
# The waitlist's dates.
EARLIEST_DATE_PAST = "earliest_date_past"
LATEST_BEFORE_EARLIEST = "latest_before_earliest"
LATEST_BEYOND_HORIZON = "latest_beyond_horizon"  # params: last_day, horizon_days
# Staff users.
ROLE_INVALID = "role_invalid"  # params: roles
PRACTITIONER_LINK_INVALID = "practitioner_link_invalid"
PASSWORD_LENGTH = "password_length"  # params: minimum
# Field codes of exercises and home exercise programs (``exercises.validation``).
EXERCISES_MISSING = "exercises_missing"
EXERCISE_UNKNOWN = "exercise_unknown"
EXERCISE_REPEATED = "exercise_repeated"
REPS_INVALID = "reps_invalid"
SETS_INVALID = "sets_invalid"
HOLD_INVALID = "hold_invalid"
TIMES_PER_DAY_INVALID = "times_per_day_invalid"
DAYS_MISSING = "days_missing"
TIME_MISSING = "time_missing"
START_MISSING = "start_missing"
END_BEFORE_START = "end_before_start"
EXERCISE_KEY_INVALID = "exercise_key_invalid"
EXERCISE_KEY_TAKEN = "exercise_key_taken"
EXERCISE_NAME_MISSING = "exercise_name_missing"
EXERCISE_INSTRUCTIONS_MISSING = "exercise_instructions_missing"
TEXT_TOO_LONG = "text_too_long"
MEDIA_URL_INVALID = "media_url_invalid"
EXERCISES_TOO_MANY = "exercises_too_many"
PRACTITIONER_NOT_YOURS = "practitioner_not_yours"
# Field codes of setting up the clinic (``clinic.catalogue``; staff only).
VALUE_MISSING = "value_missing"
KEY_INVALID = "key_invalid"
KEY_TAKEN = "key_taken"
TIMEZONE_INVALID = "timezone_invalid"
COUNTRY_INVALID = "country_invalid"
LANGUAGES_INVALID = "languages_invalid"  # params: choices
KIND_INVALID = "kind_invalid"  # params: choices
DURATION_INVALID = "duration_invalid"  # params: step, high
PRICE_INVALID = "price_invalid"
PHOTO_URL_INVALID = "photo_url_invalid"
STAFF_LOGIN_INVALID = "staff_login_invalid"
STAFF_LOGIN_TAKEN = "staff_login_taken"  # params: practitioner
TOO_LONG = "too_long"  # params: limit
# Field codes of treatment-plan series (``scheduling.plans``; staff only).
PLAN_COUNT_INVALID = "plan_count_invalid"  # params: low, high
PLAN_EVERY_DAYS_INVALID = "plan_every_days_invalid"  # params: low, high
PLAN_WEEKDAYS_MISSING = "plan_weekdays_missing"
PLAN_FIRST_START_MISSING = "plan_first_start_missing"
PLAN_STARTS_MISMATCH = "plan_starts_mismatch"  # params: count, given
PLAN_STARTS_OVERLAP = "plan_starts_overlap"
PLAN_PATIENT_ERASED = "plan_patient_erased"
# Field codes of the desk: patients' details and notes at the console and the staff API (staff only).
BIRTH_DATE_INVALID = "birth_date_invalid"
SMS_OPTED_OUT = "sms_opted_out"  # consent to texts for a number that replied STOP: only START lifts it
NOTE_MISSING = "note_missing"
NOTE_TOO_LONG = "note_too_long"  # params: limit
SAME_PATIENT = "same_patient"
# Staff placing an appointment at a time that is not one of the free times, and moves to a
# colleague or another location (the live day view; ``scheduling.operations``).
OUTSIDE_HOURS_REASON_MISSING = "outside_hours_reason_missing"  # params: name
START_IN_PAST = "start_in_past"
PRACTITIONER_BUSY_THEN = "practitioner_busy_then"  # params: name
LOCATION_CLOSED_THAT_DAY = "location_closed_that_day"  # params: location, day
PRACTITIONER_NEEDED = "practitioner_needed"


def _constants(first: str, last: str) -> frozenset[str]:
    names = list(globals())
    chosen = names[names.index(first) : names.index(last) + 1]
    return frozenset(globals()[name] for name in chosen if name.isupper())


REASONS = _constants("NOT_FOUND", "USER_DEACTIVATED") | _constants("PLAN_CONFLICTS", "PLAN_NOTHING_LEFT")
FIELD_CODES = _constants("FIRST_NAME_MISSING", "PASSWORD_LENGTH")
# Rules only staff meet (the API and the console word them; the patient pages never show them).
STAFF_REASONS = _constants("CLINIC_INVALID", "IMPACT_NOT_CONFIRMED")
STAFF_FIELD_CODES = (
    _constants("EXERCISES_MISSING", "PRACTITIONER_NOT_YOURS")
    | _constants("VALUE_MISSING", "TOO_LONG")
    | _constants("PLAN_COUNT_INVALID", "PLAN_PATIENT_ERASED")
    | _constants("BIRTH_DATE_INVALID", "SAME_PATIENT")
    | _constants("OUTSIDE_HOURS_REASON_MISSING", "PRACTITIONER_NEEDED")
)


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


class PlanConflicts(DomainError):
    """Some visits of a treatment plan cannot be booked as asked; nothing was stored.

    ``extra["conflicts"]``: one :class:`booking_service.scheduling.plans.Conflict` per visit in
    the way (its index in the plan, the start asked for, why, and the nearest free alternatives).
    """

    status = 409
    code = "plan_conflicts"


class _Values(dict):
    """Missing values fill in as empty text: a surface's words never fail on a missing value."""

    def __missing__(self, key: str) -> str:
        return ""


def fill(template: str, values: Mapping[str, Any], render: Any = None) -> str:
    """``template`` (``%(name)s`` placeholders) with ``values`` filled in, each shown by
    ``render`` (default: times as HH:MM, dates as YYYY-MM-DD, the rest with ``str``)."""
    show = render or default_render
    try:
        return template % _Values({name: show(value) for name, value in values.items()})
    except (TypeError, ValueError):  # a template without placeholders meets a stray '%'
        return template


def default_render(value: Any) -> str:
    from datetime import date, time

    if isinstance(value, time):
        return f"{value:%H:%M}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
