"""Changing the clinic's schedule and policy: weekly hours, time off, closures, clinic settings.

Every function takes a session and plain values, validates, changes rows and flushes; none
commits (the caller's request, job or command does). Bad input raises
:class:`~booking_service.errors.ValidationFailed` whose ``fields`` name every problem found, so
a form can mark each one; an unknown id raises :class:`~booking_service.errors.NotFound`.
Adding time off or a closure never touches appointments (the clinic's rules know nothing of
them): ``usecases.schedule`` lists the ones it overlaps, for staff to move.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service import audit, errors
from booking_service.clinic.cache import bump_catalogue
from booking_service.clinic.models import ClinicSettings, Closure, Location, Practitioner, TimeOff, WorkingHours
from booking_service.clinic.queries import get_clinic
from booking_service.clinic.reminder_rules import RuleError, parse_rules
from booking_service.errors import NotFound, ValidationFailed

MAX_REASON = 200
MAX_CLOSURE_NAME = 120

# --- weekly hours ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoursRow:
    """One weekly row as staff enter it: local wall times at the row's location."""

    weekday: int  # 0 = Monday
    start: time
    end: time
    break_start: time | None = None
    break_end: time | None = None
    valid_from: date | None = None
    valid_until: date | None = None


def _validity_overlaps(a_from: date | None, a_until: date | None, b_from: date | None, b_until: date | None) -> bool:
    """Whether two inclusive date ranges (None: open-ended) share a day."""
    return (a_from is None or b_until is None or a_from <= b_until) and (
        b_from is None or a_until is None or b_from <= a_until
    )


def _row_problems(row: HoursRow) -> dict[str, str]:
    """Field -> field code of what is wrong with one row on its own."""
    problems: dict[str, str] = {}
    if not 0 <= row.weekday <= 6:
        problems["weekday"] = errors.WEEKDAY_INVALID
    if row.end <= row.start:
        problems["end"] = errors.END_NOT_AFTER_START
    if (row.break_start is None) != (row.break_end is None):
        problems["break_end" if row.break_end is None else "break_start"] = errors.BREAK_INCOMPLETE
    elif row.break_start is not None and row.break_end is not None:
        if row.break_end <= row.break_start:
            problems["break_end"] = errors.BREAK_END_NOT_AFTER_START
        elif not (row.start <= row.break_start and row.break_end <= row.end):
            problems["break_start"] = errors.BREAK_OUTSIDE_HOURS
    if row.valid_from and row.valid_until and row.valid_until < row.valid_from:
        problems["valid_until"] = errors.UNTIL_BEFORE_FROM
    return problems


def _clash(a: HoursRow | WorkingHours, b: HoursRow | WorkingHours) -> bool:
    a_start, a_end = (a.start, a.end) if isinstance(a, HoursRow) else (a.start_time, a.end_time)
    b_start, b_end = (b.start, b.end) if isinstance(b, HoursRow) else (b.start_time, b.end_time)
    return (
        a.weekday == b.weekday
        and a_start < b_end
        and b_start < a_end
        and _validity_overlaps(a.valid_from, a.valid_until, b.valid_from, b.valid_until)
    )


def weekly_hours(session: Session, practitioner_id: int) -> list[WorkingHours]:
    """Every weekly row of a practitioner, at every location, by location, weekday and start."""
    return list(
        session.scalars(
            select(WorkingHours)
            .where(WorkingHours.practitioner_id == practitioner_id)
            .order_by(WorkingHours.location_id, WorkingHours.weekday, WorkingHours.start_time, WorkingHours.id)
        )
    )


def set_weekly_hours(
    session: Session, practitioner_id: int, location_id: int, rows: Sequence[HoursRow]
) -> list[WorkingHours]:
    """Replace every weekly row of the practitioner at the location with ``rows`` (an empty
    list: they no longer work there). Returns the new rows, flushed.

    Raises NotFound for an unknown practitioner or location, and ValidationFailed with fields
    ``rows.<index>.<field>`` (index into ``rows``) when a row ends before it starts, has a break
    outside its hours or half a break, a validity ending before it begins, or overlaps another
    row of the same weekday with overlapping validity: one of ``rows`` or one of the
    practitioner's rows at *another* location (a person is in one place at a time). Times at
    different locations are compared as wall-clock times: the clinic's locations share one zone.
    """
    if session.get(Practitioner, practitioner_id) is None:
        raise NotFound(errors.PRACTITIONER_NOT_FOUND, fields={"practitioner_id": errors.PRACTITIONER_UNKNOWN})
    if session.get(Location, location_id) is None:
        raise NotFound(errors.LOCATION_NOT_FOUND, fields={"location_id": errors.LOCATION_UNKNOWN})
    elsewhere = session.scalars(
        select(WorkingHours).where(
            WorkingHours.practitioner_id == practitioner_id, WorkingHours.location_id != location_id
        )
    ).all()

    fields: dict[str, str] = {}
    field_params: dict[str, dict[str, object]] = {}
    for index, row in enumerate(rows):
        problems = _row_problems(row)
        if not problems:
            earlier = next((other for other in rows[:index] if not _row_problems(other) and _clash(row, other)), None)
            other_place = next((other for other in elsewhere if _clash(row, other)), None)
            if earlier is not None:
                problems["start"] = errors.HOURS_OVERLAP
                field_params[f"rows.{index}.start"] = {"start": earlier.start, "end": earlier.end}
            elif other_place is not None:
                problems["start"] = errors.HOURS_OVERLAP_ELSEWHERE
                field_params[f"rows.{index}.start"] = {
                    "location": other_place.location.name,
                    "start": other_place.start_time,
                    "end": other_place.end_time,
                }
        fields.update({f"rows.{index}.{name}": code for name, code in problems.items()})
    if fields:
        raise ValidationFailed(errors.HOURS_INVALID, fields=fields, field_params=field_params)

    for old in session.scalars(
        select(WorkingHours).where(
            WorkingHours.practitioner_id == practitioner_id, WorkingHours.location_id == location_id
        )
    ):
        session.delete(old)
    new_rows = [
        WorkingHours(
            practitioner_id=practitioner_id,
            location_id=location_id,
            weekday=row.weekday,
            start_time=row.start,
            end_time=row.end,
            break_start=row.break_start,
            break_end=row.break_end,
            valid_from=row.valid_from,
            valid_until=row.valid_until,
        )
        for row in rows
    ]
    session.add_all(new_rows)
    session.flush()
    bump_catalogue(session)
    audit.record(
        session, "hours.update", "practitioner", practitioner_id, {"location_id": location_id, "rows": len(new_rows)}
    )
    return new_rows


# --- time off and closures ----------------------------------------------------------------------------


def add_time_off(
    session: Session, practitioner_id: int, start_at: datetime, end_at: datetime, reason: str = ""
) -> TimeOff:
    """Record an absence of the practitioner between two aware instants (stored in UTC).

    Returns the new row, flushed. Appointments it overlaps are left as they are, for staff to
    move (``usecases.schedule.add_time_off`` lists them). Raises
    NotFound for an unknown practitioner, ValidationFailed when an instant is naive, the end is
    not after the start, or the reason is longer than 200 characters.
    """
    if session.get(Practitioner, practitioner_id) is None:
        raise NotFound(errors.PRACTITIONER_NOT_FOUND, fields={"practitioner_id": errors.PRACTITIONER_UNKNOWN})
    fields: dict[str, str] = {}
    for name, value in (("start_at", start_at), ("end_at", end_at)):
        if value.tzinfo is None or value.utcoffset() is None:
            fields[name] = errors.TIME_NEEDS_ZONE
    if not fields and end_at <= start_at:
        fields["end_at"] = errors.END_NOT_AFTER_START
    reason = " ".join((reason or "").split())
    if len(reason) > MAX_REASON:
        fields["reason"] = errors.REASON_TOO_LONG
    if fields:
        raise ValidationFailed(errors.TIME_OFF_INVALID, fields=fields, field_params={"reason": {"limit": MAX_REASON}})
    time_off = TimeOff(practitioner_id=practitioner_id, start_at=start_at, end_at=end_at, reason=reason)
    session.add(time_off)
    session.flush()
    audit.record(
        session,
        "time_off.add",
        "time_off",
        time_off.id,
        {"practitioner_id": practitioner_id, "start": start_at.isoformat(), "end": end_at.isoformat()},
    )
    return time_off


def remove_time_off(session: Session, time_off_id: int) -> TimeOff:
    """Delete one time off (its slots become free again). Returns it; NotFound when unknown."""
    time_off = session.get(TimeOff, time_off_id)
    if time_off is None:
        raise NotFound(errors.TIME_OFF_GONE)
    session.delete(time_off)
    session.flush()
    audit.record(session, "time_off.remove", "time_off", time_off_id, {"practitioner_id": time_off.practitioner_id})
    return time_off


def add_closure(session: Session, day: date | None, name: str, location_id: int | None = None) -> Closure:
    """Close one location (``location_id``) or the whole clinic (None) for a local day.

    Returns the new row, flushed. Appointments that day there are left as they are, for staff
    to move (``usecases.schedule.add_closure`` lists them). Raises NotFound for an unknown location and
    ValidationFailed for no day (None: the form's day did not read as a date, field ``day``
    ``DAY_INVALID``), a missing or overlong name, or when that place is already closed that day.
    """
    if location_id is not None and session.get(Location, location_id) is None:
        raise NotFound(errors.LOCATION_NOT_FOUND, fields={"location_id": errors.LOCATION_UNKNOWN})
    name = " ".join((name or "").split())
    fields: dict[str, str] = {}
    if not name:
        fields["name"] = errors.CLOSURE_NAME_MISSING
    elif len(name) > MAX_CLOSURE_NAME:
        fields["name"] = errors.CLOSURE_NAME_TOO_LONG
    if day is None:
        fields["day"] = errors.DAY_INVALID
    elif (
        session.scalar(
            select(Closure.id).where(
                Closure.day == day,
                Closure.location_id.is_(None) if location_id is None else Closure.location_id == location_id,
            )
        )
        is not None
    ):
        fields["day"] = errors.DAY_ALREADY_CLOSED
    if fields:
        raise ValidationFailed(
            errors.CLOSURE_INVALID, fields=fields, field_params={"name": {"limit": MAX_CLOSURE_NAME}}
        )
    closure = Closure(day=day, name=name, location_id=location_id)
    session.add(closure)
    session.flush()
    bump_catalogue(session)
    audit.record(session, "closure.add", "closure", closure.id, {"day": day.isoformat(), "location_id": location_id})
    return closure


def remove_closure(session: Session, closure_id: int) -> Closure:
    """Delete one closure (the day opens again). Returns it; NotFound when unknown."""
    closure = session.get(Closure, closure_id)
    if closure is None:
        raise NotFound(errors.CLOSURE_GONE)
    session.delete(closure)
    session.flush()
    bump_catalogue(session)
    audit.record(
        session,
        "closure.remove",
        "closure",
        closure_id,
        {"day": closure.day.isoformat(), "location_id": closure.location_id},
    )
    return closure


def upcoming_time_off(session: Session, now: datetime) -> list[TimeOff]:
    """Time off not yet over, soonest first."""
    return list(session.scalars(select(TimeOff).where(TimeOff.end_at > now).order_by(TimeOff.start_at, TimeOff.id)))


def upcoming_closures(session: Session, today: date) -> list[Closure]:
    """Closures from ``today`` on, soonest first."""
    return list(session.scalars(select(Closure).where(Closure.day >= today).order_by(Closure.day, Closure.id)))


# --- clinic policy -------------------------------------------------------------------------------------

SLOT_STEPS = (5, 10, 15, 20, 30, 60)
LATE_CANCELLATION_POLICIES = ("block", "record")
# Buttons carry white text on the brand colour: WCAG 2 AA for normal text asks 4.5:1.
MIN_CONTRAST = 4.5
COLOUR_DEFAULT = "#0f6e6e"
_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

_RANGES: Mapping[str, tuple[int, int, str]] = {
    "min_notice_minutes": (0, 10080, "minutes"),
    "horizon_days": (1, 365, "days"),
    "cancellation_window_hours": (0, 168, "hours"),
    "sms_daily_cap": (0, 10, "texts"),
    "sms_weekly_cap": (0, 10, "texts"),
    "waitlist_offer_minutes": (15, 1440, "minutes"),  # a waitlist offer's time to answer
}
POLICY_FIELDS = frozenset(
    {
        *_RANGES,
        "slot_step_minutes",
        "late_cancellation_policy",
        "reminder_rules",
        "quiet_hours_start",
        "quiet_hours_end",
        "brand_color",
        "follow_up_prompt",
    }
)


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def contrast_with_white(colour: str) -> float:
    """WCAG 2 contrast ratio of ``#rrggbb`` against white (1 to 21)."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)
    return 1.05 / (luminance + 0.05)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _policy_problems(
    clinic: ClinicSettings, changes: Mapping[str, object]
) -> tuple[dict[str, str], dict[str, dict[str, object]]]:
    """(field -> field code, field -> the values its words need) for every bad policy change."""
    problems: dict[str, str] = {}
    params: dict[str, dict[str, object]] = {}
    for name, (low, high, unit) in _RANGES.items():
        if name in changes:
            value = changes[name]
            if not _is_int(value) or not low <= value <= high:
                problems[name] = errors.NUMBER_OUT_OF_RANGE
                params[name] = {"low": low, "high": high, "unit": unit}
    if "slot_step_minutes" in changes and changes["slot_step_minutes"] not in SLOT_STEPS:
        problems["slot_step_minutes"] = errors.SLOT_STEP_INVALID
        params["slot_step_minutes"] = {"choices": ", ".join(map(str, SLOT_STEPS))}
    if "late_cancellation_policy" in changes and changes["late_cancellation_policy"] not in LATE_CANCELLATION_POLICIES:
        problems["late_cancellation_policy"] = errors.LATE_POLICY_INVALID
    if "follow_up_prompt" in changes and not isinstance(changes["follow_up_prompt"], bool):
        problems["follow_up_prompt"] = errors.YES_NO_INVALID
    for name in ("quiet_hours_start", "quiet_hours_end"):
        if name in changes and not isinstance(changes[name], time):
            problems[name] = errors.TIME_INVALID
    if not {"quiet_hours_start", "quiet_hours_end"} & problems.keys():
        start = changes.get("quiet_hours_start", clinic.quiet_hours_start)
        end = changes.get("quiet_hours_end", clinic.quiet_hours_end)
        if start >= end:
            problems["quiet_hours_end"] = errors.QUIET_HOURS_ORDER
    if "reminder_rules" in changes:
        try:
            parse_rules(changes["reminder_rules"])
        except RuleError as exc:
            problems["reminder_rules"] = exc.code
            params["reminder_rules"] = {"value": exc.value}
    if "brand_color" in changes:
        code, colour_params = colour_problem(changes["brand_color"])
        if code:
            problems["brand_color"] = code
        if colour_params:
            params["brand_color"] = colour_params
    return problems, params


def colour_problem(colour: object) -> tuple[str | None, dict[str, object]]:
    """(field code, its values) when ``colour`` is not a ``#rrggbb`` brand colour with enough
    contrast for white text on it; (None, {}) when it is fine."""
    if not isinstance(colour, str) or not _HEX_COLOUR.match(colour):
        return errors.COLOUR_INVALID, {}
    ratio = contrast_with_white(colour)
    if ratio < MIN_CONTRAST:
        return errors.COLOUR_CONTRAST_LOW, {"colour": colour, "ratio": round(ratio, 1), "minimum": MIN_CONTRAST}
    return None, {}


def update_policy(session: Session, **fields: object) -> ClinicSettings:
    """Change some of the clinic's policy settings; the others keep their values.

    Accepted keywords (values already parsed): ``min_notice_minutes`` 0-10080,
    ``horizon_days`` 1-365, ``slot_step_minutes`` one of :data:`SLOT_STEPS`,
    ``cancellation_window_hours`` 0-168, ``late_cancellation_policy`` 'block' | 'record',
    ``sms_daily_cap`` and ``sms_weekly_cap`` 0-10, ``quiet_hours_start`` < ``quiet_hours_end``
    (``datetime.time``, local wall times bounding when messages may go out),
    ``reminder_rules`` (a list valid for :func:`booking_service.clinic.reminder_rules.parse_rules`),
    ``brand_color`` ``#rrggbb`` with at least 4.5:1 contrast against white (WCAG AA; buttons
    carry white text), ``follow_up_prompt`` bool, ``waitlist_offer_minutes`` 15-1440 (how long a
    waitlist offer waits for an answer before it passes to the next person).

    Raises TypeError for an unknown keyword (a programming error), NotFound when the clinic is
    not set up, ValidationFailed naming every bad field (nothing is changed then). Returns the
    settings row, flushed.
    """
    unknown = fields.keys() - POLICY_FIELDS
    if unknown:
        raise TypeError(f"not policy fields: {', '.join(sorted(unknown))}")
    clinic = get_clinic(session)
    problems, params = _policy_problems(clinic, fields)
    if problems:
        raise ValidationFailed(errors.POLICY_INVALID, fields=problems, field_params=params)
    for name, value in fields.items():
        if name == "brand_color":
            value = str(value).lower()
        elif name == "reminder_rules":
            value = [dict(rule) for rule in value]  # type: ignore[union-attr]  # a new list: JSON change tracking
        setattr(clinic, name, value)
    session.flush()
    bump_catalogue(session)
    audit.record(session, "settings.update", "clinic_settings", clinic.id, {"fields": sorted(fields)})
    return clinic


def rows_from(items: Iterable[WorkingHours]) -> list[HoursRow]:
    """The rows of stored hours as :class:`HoursRow` values (for showing and re-saving)."""
    return [
        HoursRow(
            weekday=item.weekday,
            start=item.start_time,
            end=item.end_time,
            break_start=item.break_start,
            break_end=item.break_end,
            valid_from=item.valid_from,
            valid_until=item.valid_until,
        )
        for item in items
    ]
