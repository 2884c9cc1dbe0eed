"""The JSON Schema of a clinic file (draft 2020-12): its shape, not the clinic's rules.

The schema checks what a field is (text, a whole number, a list of keys, a time as HH:MM) and
which fields an item needs; whether a value is allowed (a real time zone, a duration the clinic
accepts, a colour with enough contrast) is the domain's rule, checked by the same functions the
console calls. A ``description`` is the words of the error when a value does not fit
("must be a positive whole number").
"""

from __future__ import annotations

from typing import Any

TIME_PATTERN = r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_PATTERN = r"^(?i:mon|tue|wed|thu|fri|sat|sun|monday|tuesday|wednesday|thursday|friday|saturday|sunday)$"


def _text(description: str | None = None, *, nullable: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"] if nullable else "string"}
    if description:
        schema["description"] = description
    return schema


_NAME = {"type": "string", "minLength": 1, "description": "text (not empty)"}
_KEY = {"type": "string", "minLength": 1, "description": "a key: text such as downtown or follow-up-30"}
_BOOL = {"type": "boolean", "description": "true or false"}
_TIME = {"type": "string", "pattern": TIME_PATTERN, "description": "a time as HH:MM, such as 08:30"}
_OPTIONAL_TIME = {
    "type": ["string", "null"],
    "pattern": TIME_PATTERN,
    "description": "a time as HH:MM, such as 12:30 (or null)",
}
_OPTIONAL_DATE = {
    "type": ["string", "null"],
    "pattern": DATE_PATTERN,
    "description": "a date as YYYY-MM-DD (or null)",
}


def _whole(description: str = "a whole number", *, minimum: int | None = None, nullable: bool = False) -> dict:
    schema: dict[str, Any] = {"type": ["integer", "null"] if nullable else "integer", "description": description}
    if minimum is not None:
        schema["minimum"] = minimum
    return schema


def _keys(what: str) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "description": f"the key of a {what}"},
        "uniqueItems": True,
        "description": f"a list of {what} keys, such as [downtown]" if what == "location" else f"a list of {what} keys",
    }


def _item(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": properties,
        "description": "a mapping of fields (key: value)",
    }


REMINDER_RULE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "channel": _text("sms or email"),
        "hours_before": {"type": "number", "description": "a number of hours"},
        "days_before": _whole("a whole number of days"),
        "at": _TIME,
    },
    "description": "a rule such as {channel: sms, hours_before: 24} or {channel: email, days_before: 2, at: '09:00'}",
}

POLICY = _item(
    [],
    {
        "min_notice_minutes": _whole("a whole number of minutes"),
        "horizon_days": _whole("a whole number of days"),
        "slot_step_minutes": _whole("a whole number of minutes"),
        "cancellation_window_hours": _whole("a whole number of hours"),
        "late_cancellation_policy": _text("block or record"),
        "reminder_rules": {"type": "array", "items": REMINDER_RULE, "description": "a list of reminder rules"},
        "quiet_hours_start": _TIME,
        "quiet_hours_end": _TIME,
        "sms_daily_cap": _whole("a whole number of texts"),
        "sms_weekly_cap": _whole("a whole number of texts"),
        "follow_up_prompt": _BOOL,
    },
)

CLINIC = _item(
    ["name"],
    {
        "name": _NAME,
        "phone": _text("a phone number as text"),
        "email": _text("an email address (or null)", nullable=True),
        "address": _text(),
        "country": _text("a two-letter country code such as CA"),
        "timezone": _text("an IANA time zone such as America/Toronto"),
        "languages": {
            "type": "array",
            "items": _text("a language code such as en"),
            "minItems": 1,
            "uniqueItems": True,
            "description": "a list of language codes, the default first, such as [en, fr]",
        },
        "brand_color": _text("a colour as #rrggbb"),
        "policy": POLICY,
    },
)

LOCATION = _item(
    ["key", "name"],
    {
        "key": _KEY,
        "name": _NAME,
        "address": _text(),
        "phone": _text("a phone number as text (or null)", nullable=True),
        "timezone": _text("an IANA time zone such as America/Toronto"),
        "directions": _text(),
        "directions_fr": _text(),
        "active": _BOOL,
    },
)

SERVICE = _item(
    ["key", "name", "kind", "duration_minutes"],
    {
        "key": _KEY,
        "name": _NAME,
        "name_fr": _text(nullable=True),
        "kind": _text("initial, follow_up or other"),
        "duration_minutes": _whole("a positive whole number", minimum=1),
        "buffer_minutes": _whole("a whole number of minutes, 0 or more", minimum=0),
        "price_cents": _whole("a price in cents, 0 or more (or null: not shown)", minimum=0, nullable=True),
        "online_bookable": _BOOL,
        "preparation_notes": _text(),
        "preparation_notes_fr": _text(),
        "description": _text(),
        "description_fr": _text(),
        "active": _BOOL,
    },
)

HOURS_ROW = _item(
    ["day", "start", "end"],
    {
        "day": {
            "anyOf": [
                {"type": "string", "pattern": DAY_PATTERN},
                {"type": "integer", "minimum": 0, "maximum": 6},
            ],
            "description": "a day: mon, tue, wed, thu, fri, sat or sun (or 0 = Monday to 6 = Sunday)",
        },
        "start": _TIME,
        "end": _TIME,
        "break_start": _OPTIONAL_TIME,
        "break_end": _OPTIONAL_TIME,
        "valid_from": _OPTIONAL_DATE,
        "valid_until": _OPTIONAL_DATE,
    },
)

PRACTITIONER = _item(
    ["key", "first_name", "last_name"],
    {
        "key": _KEY,
        "first_name": _NAME,
        "last_name": _NAME,
        "profession": _text(),
        "bio": _text(),
        "photo_url": _text("a web address (or null)", nullable=True),
        "online_bookable": _BOOL,
        "active": _BOOL,
        "login": _text("the email of the staff login this practitioner uses (or null)", nullable=True),
        "locations": _keys("location"),
        "services": _keys("service"),
        "hours": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": HOURS_ROW,
                "description": "a list of weekly rows such as {day: mon, start: '09:00', end: '17:00'}",
            },
            "description": "a mapping of location key -> a list of weekly rows",
        },
    },
)

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Clinic file",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "clinic": CLINIC,
        "locations": {"type": "array", "items": LOCATION, "description": "a list of locations"},
        "services": {"type": "array", "items": SERVICE, "description": "a list of services"},
        "practitioners": {"type": "array", "items": PRACTITIONER, "description": "a list of practitioners"},
    },
    "description": "a mapping with clinic, locations, services and practitioners",
}
