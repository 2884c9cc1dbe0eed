"""Free slots from the database: load each practitioner's calendar, hand it to the pure engine.

The engine (``availability``) knows nothing of the database; this module knows nothing of slot
maths. Three queries per search whatever its size: hours, busy time, closures.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import CompoundSelect, Select, bindparam, or_, select, union_all
from sqlalchemy.orm import Session

from booking_service.clinic.models import (
    ClinicSettings,
    Closure,
    Location,
    Practitioner,
    Service,
    TimeOff,
    WorkingHours,
)
from booking_service.scheduling import availability
from booking_service.scheduling.availability import Interval, PractitionerCalendar, Slot, WeeklyHours
from booking_service.scheduling.models import Appointment

MAX_RANGE_DAYS = 62


def booking_window(clinic: ClinicSettings, now: datetime) -> tuple[datetime, datetime]:
    """(not_before, not_after): minimum notice and booking horizon as instants."""
    return now + timedelta(minutes=clinic.min_notice_minutes), now + timedelta(days=clinic.horizon_days)


class _CalendarQueries(NamedTuple):
    hours: Select
    busy: CompoundSelect  # appointments (with their buffer) and time off, in one round trip
    busy_ignoring: CompoundSelect  # the same without the appointment :ignore
    closed: Select


@functools.cache
def _calendar_queries() -> _CalendarQueries:
    """The statements of :func:`load_calendars`, built once with bound parameters.

    Building a select costs more than running a small one through SQLAlchemy's compiled cache,
    and hours are read as plain rows, not ORM objects (bench/availability.py measured both).
    Built on first use, not at import, so importing this module configures no mappers.
    """
    ids = bindparam("ids", expanding=True)
    span_start, span_end = bindparam("span_start"), bindparam("span_end")
    hours = select(
        WorkingHours.practitioner_id,
        WorkingHours.weekday,
        WorkingHours.start_time,
        WorkingHours.end_time,
        WorkingHours.break_start,
        WorkingHours.break_end,
        WorkingHours.valid_from,
        WorkingHours.valid_until,
    ).where(
        WorkingHours.practitioner_id.in_(ids),
        WorkingHours.location_id == bindparam("location_id"),
        or_(WorkingHours.valid_from.is_(None), WorkingHours.valid_from <= bindparam("last_day")),
        or_(WorkingHours.valid_until.is_(None), WorkingHours.valid_until >= bindparam("first_day")),
    )
    appointments = select(Appointment.practitioner_id, Appointment.start_at, Appointment.busy_until).where(
        Appointment.practitioner_id.in_(ids),
        Appointment.status != "cancelled",
        Appointment.start_at < span_end,
        Appointment.busy_until > span_start,
    )
    time_off = select(TimeOff.practitioner_id, TimeOff.start_at, TimeOff.end_at).where(
        TimeOff.practitioner_id.in_(ids), TimeOff.start_at < span_end, TimeOff.end_at > span_start
    )
    closed = select(Closure.day).where(
        or_(Closure.location_id.is_(None), Closure.location_id == bindparam("location_id")),
        Closure.day >= bindparam("first_day"),
        Closure.day <= bindparam("last_day"),
    )
    return _CalendarQueries(
        hours=hours,
        busy=union_all(appointments, time_off),
        busy_ignoring=union_all(appointments.where(Appointment.id != bindparam("ignore")), time_off),
        closed=closed,
    )


def load_calendars(
    session: Session,
    *,
    location: Location,
    practitioners: Sequence[Practitioner],
    first_day: date,
    last_day: date,
    ignore_appointment_id: int | None = None,
) -> list[PractitionerCalendar]:
    """Each practitioner's calendar at ``location`` for the local days first_day..last_day.

    Busy time counts appointments at every location (a practitioner is in one place at a time),
    extended by their buffer; ``ignore_appointment_id`` leaves one out (a reschedule may move an
    appointment onto part of its own time).
    """
    tz = ZoneInfo(location.timezone)
    ids = [p.id for p in practitioners]
    if not ids:
        return []
    span = availability.local_day_bounds(first_day, tz).start, availability.local_day_bounds(last_day, tz).end

    queries = _calendar_queries()
    params = {"ids": ids, "location_id": location.id, "first_day": first_day, "last_day": last_day}

    hours: dict[int, list[WeeklyHours]] = defaultdict(list)
    for practitioner_id, weekday, start, end, break_start, break_end, valid_from, valid_until in session.execute(
        queries.hours, params
    ):
        hours[practitioner_id].append(
            WeeklyHours(
                weekday=weekday,
                start=start,
                end=end,
                break_start=break_start,
                break_end=break_end,
                valid_from=valid_from,
                valid_until=valid_until,
            )
        )

    busy: dict[int, list[Interval]] = defaultdict(list)
    busy_query = queries.busy
    busy_params = {"ids": ids, "span_start": span[0], "span_end": span[1]}
    if ignore_appointment_id is not None:
        busy_query = queries.busy_ignoring
        busy_params["ignore"] = ignore_appointment_id
    for practitioner_id, start, end in session.execute(busy_query, busy_params):
        busy[practitioner_id].append(Interval(start, end))

    closed = frozenset(session.scalars(queries.closed, params))
    return [
        PractitionerCalendar(
            practitioner_id=p.id,
            tz=tz,
            hours=tuple(hours[p.id]),
            busy=tuple(busy[p.id]),
            closed_days=closed,
        )
        for p in practitioners
    ]


def engine_options(clinic: ClinicSettings, service: Service, now: datetime) -> dict:
    not_before, not_after = booking_window(clinic, now)
    return {
        "duration": timedelta(minutes=service.duration_minutes),
        "buffer_after": timedelta(minutes=service.buffer_minutes),
        "step": timedelta(minutes=clinic.slot_step_minutes),
        "not_before": not_before,
        "not_after": not_after,
    }


def find_slots(
    session: Session,
    *,
    clinic: ClinicSettings,
    service: Service,
    location: Location,
    practitioners: Sequence[Practitioner],
    first_day: date,
    last_day: date,
    now: datetime,
    ignore_appointment_id: int | None = None,
) -> list[Slot]:
    """Free slots of ``practitioners`` (merged: "anyone") at ``location`` for those local days."""
    calendars = load_calendars(
        session,
        location=location,
        practitioners=practitioners,
        first_day=first_day,
        last_day=last_day,
        ignore_appointment_id=ignore_appointment_id,
    )
    return availability.free_slots_any(
        calendars, first_day=first_day, last_day=last_day, **engine_options(clinic, service, now)
    )


def local_date(instant: datetime, location: Location) -> date:
    return instant.astimezone(ZoneInfo(location.timezone)).date()


def nearest_slots(slots: Iterable[Slot], around: datetime, limit: int = 5) -> list[Slot]:
    """Up to ``limit`` free slots closest in time to ``around``, in time order, one per start."""
    unique: dict[datetime, Slot] = {}
    for slot in slots:
        unique.setdefault(slot.start, slot)
    closest = sorted(unique.values(), key=lambda s: abs((s.start - around).total_seconds()))[:limit]
    return sorted(closest, key=lambda s: s.start)
