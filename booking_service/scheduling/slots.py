"""Free slots from the database: load each practitioner's calendar, hand it to the pure engine.

The engine (``availability``) knows nothing of the database; this module knows nothing of slot
maths. One query per search whatever its size: busy time (appointments and time off); weekly
hours and closures come from the process's catalogue cache (``clinic.cache``), or from two more
queries in a transaction that has changed the catalogue itself.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import CompoundSelect, DateTime, Select, bindparam, or_, select, type_coerce, union_all
from sqlalchemy.orm import Session

from booking_service.clinic import cache
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
from booking_service.scheduling.availability import PractitionerCalendar, Slot, WeeklyHours
from booking_service.scheduling.models import Appointment

MAX_RANGE_DAYS = 62
# Staff may book a time that started this long ago: the walk-in standing at the desk takes the
# slot that began a few minutes before. The clinic's minimum notice binds online booking only.
STAFF_GRACE = timedelta(minutes=10)


def booking_window(clinic: ClinicSettings, now: datetime, *, staff: bool = False) -> tuple[datetime, datetime]:
    """(not_before, not_after): minimum notice (for staff: :data:`STAFF_GRACE` ago) and the
    booking horizon, as instants."""
    notice = -STAFF_GRACE if staff else timedelta(minutes=clinic.min_notice_minutes)
    return now + notice, now + timedelta(days=clinic.horizon_days)


class _CalendarQueries(NamedTuple):
    hours: Select
    busy: CompoundSelect  # appointments (with their buffer) and time off, in one round trip
    busy_ignoring: CompoundSelect  # the same without the appointment :ignore
    closed: Select


@functools.cache
def _calendar_queries() -> _CalendarQueries:
    """The statements of :func:`load_calendars`, built once with bound parameters.

    Building a select costs more than running a small one through SQLAlchemy's compiled cache.
    They are Core statements over the tables, not ORM ones: rows come back as plain tuples
    without the ORM's result machinery, and the instants are selected as plain ``DateTime``
    so that :func:`_utc` converts them (a no-op on PostgreSQL, whose sessions are in UTC)
    instead of ``UTCDateTime`` calling ``astimezone`` on each value (bench/availability.py
    measured the three). Built on first use, not at import, so importing this module
    configures no mappers.
    """
    hours_t, appointments_t = WorkingHours.__table__.c, Appointment.__table__.c
    time_off_t, closures_t = TimeOff.__table__.c, Closure.__table__.c
    ids = bindparam("ids", expanding=True)
    span_start, span_end = bindparam("span_start"), bindparam("span_end")
    hours = select(
        hours_t.practitioner_id,
        hours_t.weekday,
        hours_t.start_time,
        hours_t.end_time,
        hours_t.break_start,
        hours_t.break_end,
        hours_t.valid_from,
        hours_t.valid_until,
    ).where(
        hours_t.practitioner_id.in_(ids),
        hours_t.location_id == bindparam("location_id"),
        or_(hours_t.valid_from.is_(None), hours_t.valid_from <= bindparam("last_day")),
        or_(hours_t.valid_until.is_(None), hours_t.valid_until >= bindparam("first_day")),
    )
    # The comparisons keep the columns' UTCDateTime, so the bound instants are converted as
    # usual (naive UTC on SQLite); only the selected values skip its result processing.
    instant = DateTime(timezone=True)
    appointments = select(
        appointments_t.practitioner_id,
        type_coerce(appointments_t.start_at, instant),
        type_coerce(appointments_t.busy_until, instant),
    ).where(
        appointments_t.practitioner_id.in_(ids),
        appointments_t.status != "cancelled",
        appointments_t.start_at < span_end,
        appointments_t.busy_until > span_start,
    )
    time_off = select(
        time_off_t.practitioner_id, type_coerce(time_off_t.start_at, instant), type_coerce(time_off_t.end_at, instant)
    ).where(time_off_t.practitioner_id.in_(ids), time_off_t.start_at < span_end, time_off_t.end_at > span_start)
    closed = select(closures_t.day).where(
        or_(closures_t.location_id.is_(None), closures_t.location_id == bindparam("location_id")),
        closures_t.day >= bindparam("first_day"),
        closures_t.day <= bindparam("last_day"),
    )
    return _CalendarQueries(
        hours=hours,
        busy=union_all(appointments, time_off),
        busy_ignoring=union_all(appointments.where(appointments_t.id != bindparam("ignore")), time_off),
        closed=closed,
    )


def _utc(value: datetime) -> datetime:
    """An instant from the database as an aware UTC datetime: PostgreSQL (sessions in UTC, see
    db.py) returns it in UTC already, SQLite as naive UTC."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _hours_from_database(connection, queries: _CalendarQueries, params: dict) -> dict[int, list[WeeklyHours]]:
    hours: dict[int, list[WeeklyHours]] = defaultdict(list)
    for practitioner_id, weekday, start, end, break_start, break_end, valid_from, valid_until in connection.execute(
        queries.hours, params
    ).fetchall():
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
    return hours


def stored_weekly_hours(
    session: Session, *, location_id: int, practitioner_ids: Sequence[int], first_day: date, last_day: date
) -> dict[int, list[WeeklyHours]]:
    """Each practitioner's weekly rows at the location in force on some of the local days, as
    the engine's values, read from the database (this session's own changes flushed), never from
    the process's catalogue copy: for a check right after the hours change in this transaction."""
    if session.autoflush:
        session.flush()
    params = {"ids": list(practitioner_ids), "location_id": location_id, "first_day": first_day, "last_day": last_day}
    return _hours_from_database(session.connection(), _calendar_queries(), params)


def _weekly_hours(cached: cache.Catalogue) -> dict[tuple[int, int], tuple[tuple[cache.Hours, WeeklyHours], ...]]:
    """The catalogue's weekly rows as the engine's values, built once per loaded catalogue."""
    built = cached.derived.get("slots.weekly_hours")
    if built is None:
        built = {
            key: tuple(
                (
                    row,
                    WeeklyHours(
                        weekday=row.weekday,
                        start=row.start,
                        end=row.end,
                        break_start=row.break_start,
                        break_end=row.break_end,
                        valid_from=row.valid_from,
                        valid_until=row.valid_until,
                    ),
                )
                for row in rows
            )
            for key, rows in cached.hours.items()
        }
        cached.derived["slots.weekly_hours"] = built
    return built


def _hours_from_catalogue(
    cached: cache.Catalogue, location_id: int, ids: Sequence[int], first_day: date, last_day: date
) -> dict[int, list[WeeklyHours]]:
    """The rows the hours query would return (validity overlapping the days), from the cache."""
    weekly = _weekly_hours(cached)
    return {
        pid: [hours for row, hours in weekly.get((pid, location_id), ()) if row.valid_within(first_day, last_day)]
        for pid in ids
    }


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
    # Core statements do not autoflush: flush pending changes as the ORM would before a query,
    # so that the calendars see this session's own unflushed bookings.
    if session.autoflush:
        session.flush()
    connection = session.connection()

    cached = cache.catalogue(session)
    if cached is None:
        hours = _hours_from_database(connection, queries, params)
    else:
        hours = _hours_from_catalogue(cached, location.id, ids, first_day, last_day)

    busy: dict[int, list[tuple[datetime, datetime]]] = {practitioner_id: [] for practitioner_id in ids}
    busy_query = queries.busy
    busy_params = {"ids": ids, "span_start": span[0], "span_end": span[1]}
    if ignore_appointment_id is not None:
        busy_query = queries.busy_ignoring
        busy_params["ignore"] = ignore_appointment_id
    for practitioner_id, start, end in connection.execute(busy_query, busy_params).fetchall():
        if start.tzinfo is not UTC:
            start = _utc(start)
        if end.tzinfo is not UTC:
            end = _utc(end)
        busy[practitioner_id].append((start, end))

    if cached is None:
        closed = frozenset(connection.execute(queries.closed, params).scalars().all())
    else:
        closed = cached.closed_days(location.id, first_day, last_day)
    # The database's constraints already guarantee what PractitionerCalendar would check of the
    # busy intervals (end after start), so they go in as plain pairs.
    return [PractitionerCalendar.from_trusted(p.id, tz, tuple(hours[p.id]), busy[p.id], closed) for p in practitioners]


def engine_options(clinic: ClinicSettings, service: Service, now: datetime, *, staff: bool = False) -> dict:
    not_before, not_after = booking_window(clinic, now, staff=staff)
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
    staff: bool = False,
) -> list[Slot]:
    """Free slots of ``practitioners`` (merged: "anyone") at ``location`` for those local days;
    ``staff``: the window staff book in (no minimum notice, see :func:`booking_window`)."""
    calendars = load_calendars(
        session,
        location=location,
        practitioners=practitioners,
        first_day=first_day,
        last_day=last_day,
        ignore_appointment_id=ignore_appointment_id,
    )
    return availability.free_slots_any(
        calendars, first_day=first_day, last_day=last_day, **engine_options(clinic, service, now, staff=staff)
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
