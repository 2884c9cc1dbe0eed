"""Marshmallow schemas of the JSON API: the same classes validate requests (through webargs) and
describe them in the OpenAPI document (through apispec), so the document cannot drift from what
the server accepts.

Request bodies reject unknown keys (marshmallow's default ``unknown=RAISE``): a misspelt
``practitionerId`` is a 422 naming the key, not a booking with "anyone". Unknown query
parameters are ignored (webargs' default), so cache-busters and tracking parameters do no harm.

Every bound here exists so that bad input is a 4xx and never reaches the database as a 500:
ids fit a 32-bit integer, strings fit their columns and carry no NUL or lone surrogate
(PostgreSQL and the UTF-8 encoder refuse those), dates and instants stay within years
2000-2999 (date arithmetic near ``date.min``/``date.max`` overflows).
"""

from __future__ import annotations

import datetime as dt
import re

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from booking_service.clinic.models import SERVICE_KINDS
from booking_service.outbox.models import CHANNELS, KINDS
from booking_service.outbox.models import STATUSES as MESSAGE_STATUSES
from booking_service.scheduling.models import PLAN_MAX_EVERY_DAYS, PLAN_MAX_VISITS, RED_FLAGS, STATUSES
from booking_service.scheduling.slots import MAX_RANGE_DAYS

MAX_ID = 2**31 - 1
MIN_YEAR, MAX_YEAR = 2000, 2999
STAFF_STATUSES = ("confirmed", "checked_in", "completed", "no_show", "cancelled")
LANGUAGES = ("en", "fr")
# Controls other than tab and newline, and lone surrogates (JSON can carry "\ud800").
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")

_ID_MESSAGE = f"Use a whole number between 1 and {MAX_ID}."
# The same bounds for the OpenAPI document (ECMA-262 regular expressions).
TEXT_PATTERN = r"^[^\u0000-\u0008\u000b-\u001f\u007f]*$"
YEAR_PATTERN = r"^2[0-9]{3}-"


# --- fields ----------------------------------------------------------------------------------


class Text(fields.String):
    """A string without control characters (tab and newline allowed) or lone surrogates."""

    default_error_messages = {
        "invalid": "Use a text value.",
        "characters": "Remove control characters from this text.",
    }

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"pattern": TEXT_PATTERN, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs)
        if _FORBIDDEN.search(result):
            raise self.make_error("characters")
        return result


def Id(*, body: bool = True, **kwargs) -> fields.Integer:
    """A database id. In a JSON body it must be a JSON integer; in a query string, digits."""
    return fields.Integer(
        strict=body,
        validate=validate.Range(min=1, max=MAX_ID, error=_ID_MESSAGE),
        error_messages={"invalid": _ID_MESSAGE, "too_large": _ID_MESSAGE},
        **kwargs,
    )


class Instant(fields.AwareDateTime):
    """An ISO 8601 date and time with a UTC offset, such as ``2026-11-24T09:00:00-05:00``."""

    default_error_messages = {
        "invalid": "Use an ISO 8601 date and time with an offset, such as 2026-11-24T09:00:00-05:00.",
        "invalid_awareness": "Add the UTC offset, such as 2026-11-24T09:00:00-05:00.",
        "range": f"Use a time between the years {MIN_YEAR} and {MAX_YEAR}.",
    }

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"pattern": YEAR_PATTERN, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        result = super()._deserialize(value, attr, data, **kwargs)
        if not MIN_YEAR <= result.year <= MAX_YEAR:
            raise self.make_error("range")
        return result.astimezone(dt.UTC)


class Day(fields.Date):
    """A calendar date, ``YYYY-MM-DD``."""

    default_error_messages = {
        "invalid": "Use a date in the form YYYY-MM-DD.",
        "range": f"Use a date between the years {MIN_YEAR} and {MAX_YEAR}.",
    }

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"pattern": r"^2[0-9]{3}-[0-9]{2}-[0-9]{2}$", **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise self.make_error("invalid")
        result = super()._deserialize(value, attr, data, **kwargs)
        if not MIN_YEAR <= result.year <= MAX_YEAR:
            raise self.make_error("range")
        return result


def _text(max_length: int, *, min_length: int = 0, **kwargs) -> Text:
    error = "Use between {min} and {max} characters." if min_length else "Use at most {max} characters."
    return Text(validate=validate.Length(min=min_length, max=max_length, error=error), **kwargs)


# --- errors ----------------------------------------------------------------------------------


class SlotSchema(Schema):
    start = fields.DateTime(required=True, metadata={"description": "In the location's time zone."})
    end = fields.DateTime(required=True)
    practitioner_id = fields.Integer(required=True)


class PlanConflictSchema(Schema):
    """One visit of a treatment plan that cannot be booked as asked."""

    index = fields.Integer(
        required=True, metadata={"description": "The visit's position in the plan as asked (0: the first)."}
    )
    start = fields.DateTime(required=True, metadata={"description": "The start asked for, in the location's zone."})
    reason = fields.String(
        required=True,
        validate=validate.OneOf(("slot_taken", "slot_unavailable", "patient_overlap")),
        metadata={
            "description": "slot_taken: nobody free then; slot_unavailable: not a bookable time (closed, off "
            "the grid, past, too far ahead); patient_overlap: the patient has another visit then."
        },
    )
    alternatives = fields.List(
        fields.Nested(SlotSchema),
        required=True,
        metadata={
            "description": "Up to five free starts: the plan's practitioner first, then the same day and the "
            "days after it, nearest first. Empty when none is near."
        },
    )


class ErrorBodySchema(Schema):
    code = fields.String(
        required=True,
        metadata={
            "description": "Stable machine-readable code: bad_request, malformed_json, "
            "unsupported_content_type, unauthorized, not_found, method_not_allowed, "
            "payload_too_large, slot_taken, patient_overlap, invalid_transition, "
            "late_cancellation, conflict, invalid, slot_unavailable, rate_limited, internal_error, "
            "plan_conflicts."
        },
    )
    message = fields.String(required=True, metadata={"description": "A sentence for people."})
    fields_ = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={
            "description": "Field path (dotted, e.g. patient.phone) -> what to change. Empty when the "
            "error is not about one field."
        },
    )
    alternatives = fields.List(
        fields.Nested(SlotSchema),
        metadata={"description": "slot_taken and slot_unavailable: free starts near the one asked for."},
    )
    phone = fields.String(metadata={"description": "late_cancellation: the clinic's phone number."})
    conflicts = fields.List(
        fields.Nested(PlanConflictSchema),
        metadata={"description": "plan_conflicts: every visit of the plan in the way, with its alternatives."},
    )


class ErrorSchema(Schema):
    """Every error of the API: ``{"error": {"code", "message", "fields"}}``."""

    error = fields.Nested(ErrorBodySchema, required=True)


# --- catalogue -------------------------------------------------------------------------------


class ServiceSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    name_fr = fields.String(allow_none=True)
    kind = fields.String(required=True, validate=validate.OneOf(SERVICE_KINDS))
    duration_minutes = fields.Integer(required=True)
    description = fields.String()


class ServiceListSchema(Schema):
    services = fields.List(fields.Nested(ServiceSchema), required=True)


class LocationSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    address = fields.String(required=True)
    phone = fields.String(allow_none=True)
    timezone = fields.String(required=True, metadata={"description": "IANA time zone, e.g. America/Toronto."})


class LocationListSchema(Schema):
    locations = fields.List(fields.Nested(LocationSchema), required=True)


class PractitionerSchema(Schema):
    id = fields.Integer(required=True)
    display_name = fields.String(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    profession = fields.String(required=True)
    bio = fields.String()
    location_ids = fields.List(fields.Integer(), required=True)
    service_ids = fields.List(fields.Integer(), required=True)


class PractitionerListSchema(Schema):
    practitioners = fields.List(fields.Nested(PractitionerSchema), required=True)


class PractitionerQuerySchema(Schema):
    location_id = Id(body=False, metadata={"description": "Only practitioners working at this location."})
    service_id = Id(body=False, metadata={"description": "Only practitioners offering this service."})


class AvailabilityQuerySchema(Schema):
    service_id = Id(body=False, required=True)
    location_id = Id(body=False, required=True)
    practitioner_id = Id(body=False, metadata={"description": "Leave out for anyone."})
    start = Day(required=True, metadata={"description": "First day, inclusive, in the location's time zone."})
    end = Day(
        required=True,
        metadata={"description": f"Last day, inclusive; at most {MAX_RANGE_DAYS} days from start to end."},
    )

    @validates_schema
    def _range(self, data, **_kwargs):
        start, end = data.get("start"), data.get("end")
        if start is None or end is None:
            return
        if end < start:
            raise ValidationError("Use an end date on or after the start date.", field_name="end")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise ValidationError(
                f"Ask for at most {MAX_RANGE_DAYS} days at a time (start and end both count).",
                field_name="end",
            )


class AvailabilitySchema(Schema):
    timezone = fields.String(required=True, metadata={"description": "The location's IANA time zone."})
    slots = fields.List(fields.Nested(SlotSchema), required=True)


# --- booking ---------------------------------------------------------------------------------


class PatientInSchema(Schema):
    first_name = _text(80, min_length=1, required=True)
    last_name = _text(80, min_length=1, required=True)
    email = _text(
        254, allow_none=True, metadata={"description": "Checked by syntax only. Give an email, a phone or both."}
    )
    phone = _text(
        32,
        allow_none=True,
        metadata={"description": "E.164 (+14165550123) or the clinic country's national format; stored as E.164."},
    )
    sms_consent = fields.Boolean(load_default=False)
    email_consent = fields.Boolean(load_default=False)
    exercise_sms_consent = fields.Boolean(
        load_default=False,
        metadata={"description": "Agrees to texts about a home exercise program (nudges); needs a phone."},
    )
    language = fields.String(
        allow_none=True,
        validate=validate.OneOf(LANGUAGES, error="Use en or fr."),
        metadata={"description": "Language of every page and message for this patient; default: the clinic's."},
    )


class RedFlagsSchema(Schema):
    bladder_bowel = fields.Boolean()
    saddle_numbness = fields.Boolean()
    leg_weakness = fields.Boolean()
    systemic = fields.Boolean()


assert set(RedFlagsSchema().fields) == set(RED_FLAGS)  # the schema follows the model's questions


class IntakeSchema(Schema):
    reason = _text(2000, allow_none=True, metadata={"description": "Seen by staff only; never in a message."})
    red_flags = fields.Nested(
        RedFlagsSchema, allow_none=True, metadata={"description": "Any true flag marks the booking urgent."}
    )


class BookingInSchema(Schema):
    service_id = Id(required=True)
    location_id = Id(required=True)
    practitioner_id = Id(allow_none=True, load_default=None, metadata={"description": "Null or absent: anyone."})
    start = Instant(required=True, metadata={"description": "A start from /api/v1/availability."})
    patient = fields.Nested(PatientInSchema, required=True)
    intake = fields.Nested(IntakeSchema, allow_none=True, load_default=None)


class NamedRefSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class PractitionerRefSchema(Schema):
    id = fields.Integer(required=True)
    display_name = fields.String(required=True)


class LocationRefSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    address = fields.String(required=True)
    timezone = fields.String(required=True)


class BookingSchema(Schema):
    """The answer to a booking: what the patient needs, plus the link to manage it."""

    id = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    start = fields.DateTime(required=True, metadata={"description": "ISO 8601, in the location's time zone."})
    end = fields.DateTime(required=True)
    triage = fields.String(required=True, validate=validate.OneOf(("none", "urgent")))
    manage_url = fields.String(required=True, metadata={"description": "The patient's link to reschedule or cancel."})
    practitioner_id = fields.Integer(required=True)
    service_id = fields.Integer(required=True)
    location_id = fields.Integer(required=True)
    language = fields.String(required=True)
    service = fields.Nested(NamedRefSchema, required=True)
    practitioner = fields.Nested(PractitionerRefSchema, required=True)
    location = fields.Nested(LocationRefSchema, required=True)


# --- manage link -----------------------------------------------------------------------------


class CancellationPolicySchema(Schema):
    window_hours = fields.Integer(required=True)
    policy = fields.String(
        required=True,
        validate=validate.OneOf(("block", "record")),
        metadata={"description": "block: inside the window, changes are made by phone; record: allowed, marked late."},
    )
    inside_window = fields.Boolean(required=True)
    clinic_phone = fields.String(required=True)


class ContactHintSchema(Schema):
    email = fields.String(allow_none=True, metadata={"description": "Masked, e.g. a•••@example.com."})
    phone = fields.String(allow_none=True, metadata={"description": "Masked, e.g. •••• 0142."})


class ManagedAppointmentSchema(Schema):
    """What a manage link shows: only what its holder needs (no contact details, no intake)."""

    id = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    start = fields.DateTime(required=True)
    end = fields.DateTime(required=True)
    confirmed_at = fields.DateTime(allow_none=True)
    language = fields.String(required=True)
    service = fields.Nested(NamedRefSchema, required=True)
    practitioner = fields.Nested(PractitionerRefSchema, required=True)
    location = fields.Nested(LocationRefSchema, required=True)
    can_cancel = fields.Boolean(required=True)
    can_reschedule = fields.Boolean(required=True)
    cancellation_policy = fields.Nested(CancellationPolicySchema, required=True)
    contact = fields.Nested(ContactHintSchema, required=True)


class CancelInSchema(Schema):
    reason = _text(500, allow_none=True)


class RescheduleInSchema(Schema):
    start = Instant(required=True, metadata={"description": "A start from /api/v1/availability."})


# --- staff -----------------------------------------------------------------------------------


class PatientRefSchema(Schema):
    id = fields.Integer(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)


class PatientSchema(Schema):
    id = fields.Integer(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True, metadata={"description": "E.164."})
    language = fields.String(required=True)
    sms_consent = fields.Boolean(required=True)
    email_consent = fields.Boolean(required=True)
    sms_opted_out = fields.Boolean(required=True, metadata={"description": "The phone replied STOP."})
    exercise_sms_consent = fields.Boolean(required=True)
    birth_date = fields.Date(allow_none=True, metadata={"description": "Given at the desk; may be null."})


class IntakeOutSchema(Schema):
    reason = fields.String(allow_none=True)
    red_flags = fields.Dict(keys=fields.String(), values=fields.Boolean(), allow_none=True)


class StaffAppointmentSchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    start = fields.DateTime(required=True, metadata={"description": "In the location's time zone."})
    end = fields.DateTime(required=True)
    triage = fields.String(required=True, validate=validate.OneOf(("none", "urgent")))
    source = fields.String(required=True)
    language = fields.String(required=True)
    practitioner_id = fields.Integer(required=True)
    service_id = fields.Integer(required=True)
    location_id = fields.Integer(required=True)
    patient_id = fields.Integer(required=True)
    service = fields.Nested(NamedRefSchema, required=True)
    practitioner = fields.Nested(PractitionerRefSchema, required=True)
    location = fields.Nested(LocationRefSchema, required=True)
    patient = fields.Nested(PatientRefSchema, required=True)
    confirmed_at = fields.DateTime(allow_none=True)
    checked_in_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    no_show_at = fields.DateTime(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)
    cancelled_by = fields.String(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    late_cancellation = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)
    plan_id = fields.Integer(
        allow_none=True, metadata={"description": "The treatment plan it was booked in (/api/v1/plans/<id>), or null."}
    )


class StaffAppointmentDetailSchema(StaffAppointmentSchema):
    """One appointment for staff: with the patient's contact details and the intake."""

    patient = fields.Nested(PatientSchema, required=True)
    intake = fields.Nested(IntakeOutSchema, required=True)


class StaffAppointmentListSchema(Schema):
    date = fields.Date(required=True)
    timezone = fields.String(required=True, metadata={"description": "The zone the date was read in."})
    appointments = fields.List(fields.Nested(StaffAppointmentSchema), required=True)


class StaffAppointmentQuerySchema(Schema):
    date = Day(
        metadata={"description": "Local day (location's zone, or the clinic's without location_id); default today."}
    )
    location_id = Id(body=False)
    practitioner_id = Id(body=False)


class StatusInSchema(Schema):
    status = fields.String(
        required=True,
        validate=validate.OneOf(STAFF_STATUSES, error=f"Use one of {', '.join(STAFF_STATUSES)}."),
    )


class MessageSchema(Schema):
    id = fields.Integer(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    status = fields.String(required=True, validate=validate.OneOf(MESSAGE_STATUSES))
    due_at = fields.DateTime(required=True)
    sent_at = fields.DateTime(required=True, allow_none=True)
    to = fields.String(required=True, allow_none=True)
    provider_id = fields.String(required=True, allow_none=True)
    error = fields.String(required=True, allow_none=True)


class MessageListSchema(Schema):
    messages = fields.List(fields.Nested(MessageSchema), required=True)


class PatientQuerySchema(Schema):
    q = _text(
        100,
        min_length=1,
        required=True,
        metadata={"description": "Part of a name, an email address, or a phone number (any format)."},
    )
    limit = fields.Integer(
        load_default=20,
        validate=validate.Range(min=1, max=100, error="Use a limit between 1 and 100."),
        error_messages={"invalid": "Use a whole number between 1 and 100."},
    )


class PatientListSchema(Schema):
    patients = fields.List(fields.Nested(PatientSchema), required=True)


class PatientPatchSchema(Schema):
    """Only the fields given change; the others keep their values."""

    first_name = _text(80, min_length=1)
    last_name = _text(80, min_length=1)
    email = _text(254, allow_none=True, metadata={"description": "Null removes it (a phone must then remain)."})
    phone = _text(
        32,
        allow_none=True,
        metadata={"description": "E.164 or the clinic country's national format; null removes it."},
    )
    language = fields.String(validate=validate.OneOf(LANGUAGES, error="Use en or fr."))
    birth_date = fields.Date(
        allow_none=True, error_messages={"invalid": "Use a date as YYYY-MM-DD."}, metadata={"description": "Or null."}
    )
    sms_consent = fields.Boolean(
        metadata={"description": "As the patient gave it. Cannot be granted for a number that replied STOP (422)."}
    )
    email_consent = fields.Boolean()
    exercise_sms_consent = fields.Boolean()


class PatientDetailSchema(PatientSchema):
    appointments = fields.List(
        fields.Nested(StaffAppointmentSchema), required=True, metadata={"description": "Newest first."}
    )


# --- exercise programs -----------------------------------------------------------------------

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOG_SOURCE_NAMES = ("page", "sms", "staff")


class ClockTime(fields.Field):
    """A local time of day, ``HH:MM`` (24-hour)."""

    default_error_messages = {"invalid": "Use a time of day in the form HH:MM (24-hour), such as 18:30."}

    def __init__(self, **kwargs):
        kwargs["metadata"] = {
            "type": "string",
            "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
            **kwargs.get("metadata", {}),
        }
        super().__init__(**kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.strftime("%H:%M")

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
            raise self.make_error("invalid")
        return dt.time(int(value[:2]), int(value[3:]))


def _dose(description: str) -> fields.Integer:
    return fields.Integer(
        strict=True,
        allow_none=True,
        load_default=None,
        error_messages={"invalid": "Use a whole number."},
        metadata={"description": description},
    )


class ExerciseSchema(Schema):
    id = fields.Integer(required=True)
    key = fields.String(required=True, metadata={"description": "Stable name of the exercise in the library."})
    name = fields.String(required=True, metadata={"description": "In English."})
    name_fr = fields.String(required=True)
    instructions = fields.String(required=True)
    instructions_fr = fields.String(required=True)
    cautions = fields.String(required=True)
    cautions_fr = fields.String(required=True)
    default_reps = fields.Integer(required=True, allow_none=True)
    default_sets = fields.Integer(required=True, allow_none=True)
    default_hold_seconds = fields.Integer(required=True, allow_none=True)
    default_times_per_day = fields.Integer(required=True)
    media_url = fields.String(required=True, allow_none=True)


class ExerciseListSchema(Schema):
    exercises = fields.List(fields.Nested(ExerciseSchema), required=True)


class ProgramItemInSchema(Schema):
    exercise_id = Id(required=True, metadata={"description": "An id from /api/v1/exercises."})
    reps = _dose("1-200; null or absent: the exercise's default.")
    sets = _dose("1-20; null or absent: the exercise's default.")
    hold_seconds = _dose("1-600; null or absent: the exercise's default.")
    times_per_day = _dose("1-10; null or absent: the exercise's default.")


class ProgramInSchema(Schema):
    exercises = fields.List(
        fields.Nested(ProgramItemInSchema), required=True, metadata={"description": "In the order to do them."}
    )
    days = fields.List(
        fields.String(validate=validate.OneOf(WEEKDAY_NAMES, error="Use mon, tue, wed, thu, fri, sat or sun.")),
        required=True,
        metadata={"description": "Days of the week to exercise (and be nudged)."},
    )
    time = ClockTime(required=True, metadata={"description": "Local time of the nudge, in the patient's zone."})
    start = Day(required=True, metadata={"description": "First day of the program (local)."})
    end = Day(allow_none=True, load_default=None, metadata={"description": "Last day; absent: until discharge."})
    practitioner_id = Id(
        required=True, metadata={"description": "The practitioner in charge (a practitioner's token: their own id)."}
    )


class ProgramItemSchema(Schema):
    exercise_id = fields.Integer(required=True)
    key = fields.String(required=True)
    name = fields.String(required=True)
    reps = fields.Integer(required=True, allow_none=True)
    sets = fields.Integer(required=True, allow_none=True)
    hold_seconds = fields.Integer(required=True, allow_none=True)
    times_per_day = fields.Integer(required=True)


class ProgramVersionSchema(Schema):
    version = fields.Integer(required=True)
    days = fields.List(fields.String(validate=validate.OneOf(WEEKDAY_NAMES)), required=True)
    time = ClockTime(required=True)
    start = fields.Date(required=True)
    end = fields.Date(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    exercises = fields.List(fields.Nested(ProgramItemSchema), required=True)


class ProgramLogSchema(Schema):
    date = fields.Date(required=True, metadata={"description": "The patient's local day."})
    done = fields.Boolean(required=True)
    pain = fields.Integer(required=True, allow_none=True, metadata={"description": "0-10."})
    source = fields.String(required=True, validate=validate.OneOf(LOG_SOURCE_NAMES))
    note = fields.String(required=True)


class AdherenceWeekSchema(Schema):
    start = fields.Date(required=True, metadata={"description": "The week's Monday."})
    logged = fields.Integer(required=True, metadata={"description": "Program days logged as done."})
    prescribed = fields.Integer(required=True, metadata={"description": "Program days in the week, up to today."})
    ratio = fields.Float(required=True, allow_none=True)


class AdherenceSchema(Schema):
    overall = fields.Float(required=True, allow_none=True, metadata={"description": "0-1; null before day one."})
    weeks = fields.List(fields.Nested(AdherenceWeekSchema), required=True)


class ProgramSchema(Schema):
    id = fields.Integer(required=True)
    patient_id = fields.Integer(required=True)
    practitioner_id = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("active", "paused", "ended")))
    pause_reason = fields.String(required=True, allow_none=True, metadata={"description": "staff, alert or patient."})
    end_reason = fields.String(required=True, allow_none=True, metadata={"description": "ended or discharged."})
    version = fields.Integer(required=True, metadata={"description": "The current version's number."})
    program_url = fields.String(required=True, metadata={"description": "The patient's program page (no login)."})
    days = fields.List(fields.String(validate=validate.OneOf(WEEKDAY_NAMES)), required=True)
    time = ClockTime(required=True)
    timezone = fields.String(required=True)
    start = fields.Date(required=True)
    end = fields.Date(required=True, allow_none=True, metadata={"description": "null: until discharge."})
    exercises = fields.List(fields.Nested(ProgramItemSchema), required=True, metadata={"description": "Current."})
    created_at = fields.DateTime(required=True)


class ProgramDetailSchema(ProgramSchema):
    versions = fields.List(
        fields.Nested(ProgramVersionSchema), required=True, metadata={"description": "Oldest first."}
    )
    logs = fields.List(fields.Nested(ProgramLogSchema), required=True, metadata={"description": "Oldest first."})
    adherence = fields.Nested(AdherenceSchema, required=True)


# --- treatment plans (a series of visits) ------------------------------------------------------

PLAN_STATUSES = ("active", "finished", "cancelled")


class PlanInSchema(Schema):
    patient_id = Id(required=True, metadata={"description": "An existing patient (see /api/v1/patients)."})
    service_id = Id(required=True)
    location_id = Id(required=True)
    practitioner_id = Id(
        allow_none=True,
        load_default=None,
        metadata={
            "description": "Null or absent: any practitioner, one free per visit (the same one wherever they "
            "can). A practitioner's token: their own id."
        },
    )
    first_start = Instant(
        allow_none=True,
        load_default=None,
        metadata={"description": "The first visit; the others follow at the same local time. Needed without starts."},
    )
    count = fields.Integer(
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(
            min=1, max=PLAN_MAX_VISITS, error=f"Use a number of visits from 1 to {PLAN_MAX_VISITS}."
        ),
        error_messages={"invalid": "Use a whole number."},
        metadata={"description": f"How many visits (1-{PLAN_MAX_VISITS}). Needed without starts."},
    )
    every_days = fields.Integer(
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(
            min=1, max=PLAN_MAX_EVERY_DAYS, error=f"Use a number of days from 1 to {PLAN_MAX_EVERY_DAYS}."
        ),
        error_messages={"invalid": "Use a whole number."},
        metadata={"description": f"Days between two visits (1-{PLAN_MAX_EVERY_DAYS}); default 7, weekly."},
    )
    starts = fields.List(
        Instant(),
        allow_none=True,
        load_default=None,
        validate=validate.Length(min=1, max=PLAN_MAX_VISITS, error=f"Give 1 to {PLAN_MAX_VISITS} starts."),
        metadata={
            "description": "Every visit's start, overriding the computed ones (for instance with a conflict's "
            "alternative picked); count, if given, must match."
        },
    )

    @validates_schema
    def _either(self, data, **_kwargs):
        if data.get("starts") is None:
            if data.get("first_start") is None:
                raise ValidationError("Give first_start (the first visit), or every start in starts.", "first_start")
            if data.get("count") is None:
                raise ValidationError(f"Give count, a number of visits from 1 to {PLAN_MAX_VISITS}.", "count")
        elif data.get("count") is not None and data["count"] != len(data["starts"]):
            raise ValidationError(f"Give exactly {data['count']} starts, or leave count out.", "count")


class PlanCancelInSchema(Schema):
    reason = _text(500, allow_none=True, metadata={"description": "Staff only; never in a message."})


class PlanSchema(Schema):
    id = fields.Integer(required=True)
    patient_id = fields.Integer(required=True)
    service_id = fields.Integer(required=True)
    location_id = fields.Integer(required=True)
    practitioner_id = fields.Integer(required=True, allow_none=True, metadata={"description": "null: any."})
    count = fields.Integer(required=True, metadata={"description": "Visits booked in the plan."})
    every_days = fields.Integer(required=True, allow_none=True)
    weekdays = fields.List(fields.String(validate=validate.OneOf(WEEKDAY_NAMES)), required=True, allow_none=True)
    source = fields.String(required=True, validate=validate.OneOf(("api", "staff")))
    status = fields.String(
        required=True,
        validate=validate.OneOf(PLAN_STATUSES),
        metadata={"description": "active; finished (no visit left); cancelled (the rest was cancelled)."},
    )
    visits_done = fields.Integer(required=True, metadata={"description": "Visits completed."})
    visits_left = fields.Integer(required=True, metadata={"description": "Visits still to come."})
    created_at = fields.DateTime(required=True)
    cancelled_at = fields.DateTime(required=True, allow_none=True)
    appointments = fields.List(
        fields.Nested(StaffAppointmentSchema), required=True, metadata={"description": "In time order."}
    )
