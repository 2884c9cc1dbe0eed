"""The clinic as stored, in the clinic file's own terms: what an export writes and what a load
compares against.

Values are the file's: keys instead of ids, times as ``HH:MM``, days as ``mon`` ... ``sun``,
dates as ``YYYY-MM-DD``. Each item is a plain dict in the file's field order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.clinic.files.schema import DAY_NAMES
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service, WorkingHours
from booking_service.staff.models import User

CLINIC_FIELDS = ("name", "phone", "email", "address", "country", "timezone", "languages", "brand_color")
POLICY_FIELDS = (
    "min_notice_minutes",
    "horizon_days",
    "slot_step_minutes",
    "cancellation_window_hours",
    "late_cancellation_policy",
    "reminder_rules",
    "quiet_hours_start",
    "quiet_hours_end",
    "sms_daily_cap",
    "sms_weekly_cap",
    "follow_up_prompt",
)
LOCATION_FIELDS = ("key", "name", "address", "phone", "timezone", "directions", "directions_fr", "active")
SERVICE_FIELDS = (
    "key",
    "name",
    "name_fr",
    "kind",
    "duration_minutes",
    "buffer_minutes",
    "price_cents",
    "online_bookable",
    "preparation_notes",
    "preparation_notes_fr",
    "description",
    "description_fr",
    "active",
)
PRACTITIONER_FIELDS = (
    "key",
    "first_name",
    "last_name",
    "profession",
    "bio",
    "photo_url",
    "online_bookable",
    "active",
    "login",
    "locations",
    "services",
)
ROW_FIELDS = ("day", "start", "end", "break_start", "break_end", "valid_from", "valid_until")


def hhmm(value: time | None) -> str | None:
    return None if value is None else value.strftime("%H:%M")


def iso_day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def clinic_state(clinic: ClinicSettings | None) -> dict[str, Any] | None:
    """The clinic's fields and its policy (``policy``), or None when there is no clinic yet."""
    if clinic is None:
        return None
    state: dict[str, Any] = {name: getattr(clinic, name) for name in CLINIC_FIELDS}
    state["languages"] = list(clinic.languages or [])
    policy = {name: getattr(clinic, name) for name in POLICY_FIELDS}
    policy["reminder_rules"] = [dict(rule) for rule in clinic.reminder_rules or []]
    policy["quiet_hours_start"] = hhmm(clinic.quiet_hours_start)
    policy["quiet_hours_end"] = hhmm(clinic.quiet_hours_end)
    state["policy"] = policy
    return state


def location_state(location: Location) -> dict[str, Any]:
    return {name: getattr(location, name) for name in LOCATION_FIELDS}


def service_state(service: Service) -> dict[str, Any]:
    return {name: getattr(service, name) for name in SERVICE_FIELDS}


def row_state(row: WorkingHours) -> dict[str, Any]:
    """One weekly row as the file writes it (break and validity only when set)."""
    values = {
        "day": DAY_NAMES[row.weekday],
        "start": hhmm(row.start_time),
        "end": hhmm(row.end_time),
        "break_start": hhmm(row.break_start),
        "break_end": hhmm(row.break_end),
        "valid_from": iso_day(row.valid_from),
        "valid_until": iso_day(row.valid_until),
    }
    return {name: value for name, value in values.items() if value is not None or name in ("day", "start", "end")}


def row_order(row: dict[str, Any]) -> tuple:
    return (DAY_NAMES.index(row["day"]), row["start"], row.get("valid_from") or "", row["end"])


def practitioner_state(practitioner: Practitioner, logins: dict[int, str]) -> dict[str, Any]:
    state: dict[str, Any] = {name: getattr(practitioner, name) for name in PRACTITIONER_FIELDS[:8]}
    state["login"] = logins.get(practitioner.user_id) if practitioner.user_id is not None else None
    state["locations"] = [location.key for location in sorted(practitioner.locations, key=lambda item: item.id)]
    state["services"] = [service.key for service in _services_in_order(practitioner.services)]
    hours: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(practitioner.working_hours, key=lambda item: (item.location_id, item.id)):
        hours.setdefault(row.location.key, []).append(row_state(row))
    state["hours"] = {key: sorted(rows, key=row_order) for key, rows in hours.items()}
    return state


def _services_in_order(services: Iterable[Service]) -> list[Service]:
    return sorted(services, key=lambda item: (item.sort_order, item.id))


def current_state(session: Session) -> dict[str, Any]:
    """The whole clinic as the file writes it: ``clinic`` (None when not set up), ``locations``,
    ``services`` and ``practitioners`` (each a list of items in the catalogue's order)."""
    practitioners = list(session.scalars(select(Practitioner).order_by(Practitioner.id)))
    user_ids = {p.user_id for p in practitioners if p.user_id is not None}
    logins = dict(session.execute(select(User.id, User.email).where(User.id.in_(user_ids))).all())
    return {
        "clinic": clinic_state(session.get(ClinicSettings, 1)),
        "locations": [location_state(item) for item in session.scalars(select(Location).order_by(Location.id))],
        "services": [
            service_state(item) for item in session.scalars(select(Service).order_by(Service.sort_order, Service.id))
        ],
        "practitioners": [practitioner_state(item, logins) for item in practitioners],
    }
