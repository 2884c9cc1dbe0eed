"""The live day board: a time grid per location and day, and its change token.

:func:`day_board` lays one local day at one location out as rows every slot step (the clinic's
``slot_step_minutes``) by one column per practitioner: appointments span the rows they cover,
and every other row says what that time is (free, outside working hours, a break, time off,
a buffer after a visit, busy at another location), so the gaps show. It costs a fixed number
of statements whatever the number of appointments (the test counts them).

:func:`day_change_token` is what the live view polls: one indexed statement whose answer
changes whenever anything the board shows changes (see its docstring), so "nothing changed"
is a 304 without building the board.

Read-only; each function takes a session and plain values.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, func, or_, select
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
from booking_service.patients.models import Patient
from booking_service.scheduling import availability, slots
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.queries import _practitioners_working

# Colours of services on the board (staff.css ``.svc-0`` .. ``.svc-7``): a service keeps its
# colour from day to day (its id modulo the palette); the text always names it as well.
PALETTE = 8
# Shown when nobody works that day and nothing is booked.
DEFAULT_HOURS = (time(8), time(18))


@dataclass(frozen=True, slots=True)
class Visit:
    """What the board shows of one appointment, read with one Core statement (hundreds of ORM
    objects with every column would cost more than the rest of the board)."""

    id: int
    practitioner_id: int
    practitioner_name: str
    service_id: int
    service_name: str
    patient_name: str
    start_at: datetime
    end_at: datetime
    busy_until: datetime
    status: str
    triage: str
    confirmed_at: datetime | None
    outside_hours_reason: str | None
    late_cancellation: bool


@dataclass(frozen=True)
class Cell:
    """One cell of a practitioner's column, starting at row ``row`` and ``span`` rows tall.

    ``kind``: ``visits`` (``appointments`` in time order, usually one), ``free`` (one row,
    ``bookable`` when it starts from now on; ``free_minutes`` on the first row of a gap: the
    gap's length), ``off`` (outside working hours), ``break``, ``time_off``, ``buffer`` (after a
    visit) or ``elsewhere`` (busy at another location). Rows of one kind are merged, except free
    rows: each is a time to click.
    """

    kind: str
    row: int
    span: int
    start: datetime
    end: datetime
    appointments: tuple[Visit, ...] = ()
    free_minutes: int = 0
    bookable: bool = False


@dataclass(frozen=True)
class Column:
    """A practitioner's column: ``cells[row]`` is the cell starting at that row, or None where
    a taller cell above covers it."""

    practitioner: Practitioner
    cells: list[Cell | None]
    appointments: int


@dataclass(frozen=True)
class Board:
    day: date
    location: Location
    step: timedelta
    rows: list[datetime]  # the UTC instant each row starts
    columns: list[Column]
    cancelled: list[Visit]  # shown under the grid: all when asked for, else late ones only
    services: list[tuple[int, str]]  # the legend: (id, name) of the services on the board, by name
    closed: bool  # the location is closed that day
    now_row: int | None  # the row holding "now" (today only)
    ids: list[int] = field(default_factory=list)  # every appointment shown (for the failure marks)


def colour_of(service_id: int) -> int:
    return service_id % PALETTE


# --- the change token ------------------------------------------------------------------------------


@functools.cache
def _token_query(scoped: bool) -> Select:
    """The statement of :func:`day_change_token`, built once with bound parameters (building it
    costs more than running it; see ``slots._calendar_queries``); ``scoped``: one practitioner's."""
    a, p = Appointment.__table__.c, Patient.__table__.c
    hours, away, closures = WorkingHours.__table__.c, TimeOff.__table__.c, Closure.__table__.c
    location_id, start, end, day = (bindparam(name) for name in ("location_id", "start", "end", "day"))
    visits = [a.location_id == location_id, a.start_at >= start, a.start_at < end]
    if scoped:
        visits.append(a.practitioner_id == bindparam("practitioner_id"))
    hours_where = (hours.location_id == location_id,)
    away_where = (away.start_at < end, away.end_at > start)
    closed_where = (closures.day == day, or_(closures.location_id.is_(None), closures.location_id == location_id))
    return (
        select(
            func.count(),
            func.coalesce(func.sum(a.revision), 0),
            func.max(a.updated_at),
            func.max(p.updated_at),
            select(func.count()).where(*hours_where).scalar_subquery(),
            select(func.coalesce(func.max(hours.id), 0)).where(*hours_where).scalar_subquery(),
            select(func.count()).where(*away_where).scalar_subquery(),
            select(func.coalesce(func.max(away.id), 0)).where(*away_where).scalar_subquery(),
            select(func.count()).where(*closed_where).scalar_subquery(),
            select(func.coalesce(func.max(closures.id), 0)).where(*closed_where).scalar_subquery(),
            select(ClinicSettings.slot_step_minutes).where(ClinicSettings.id == 1).scalar_subquery(),
        )
        .select_from(Appointment.__table__.join(Patient.__table__, a.patient_id == p.id))
        .where(*visits)
    )


def day_change_token(session: Session, day: date, *, location: Location, practitioner_id: int | None = None) -> tuple:
    """What the live view compares to decide "nothing changed": one SQL statement.

    - the appointments starting that local day at the location (cancelled ones too; the
      practitioner's own only when ``practitioner_id`` is given), through
      ``ix_appointments_location_start``: how many, the sum of their ``revision`` (every UPDATE
      raises it, so a change shows even when two transactions' ``updated_at`` arrive out of
      order), the latest ``updated_at``, and the latest ``updated_at`` of their patients (a
      corrected name). A row that moves in raises the latest ``updated_at``; one that moves out
      (another day, place or colleague) lowers the count or the sum;
    - the location's working hours (saving hours replaces the rows: count and highest id),
      time off overlapping the day, and closures of that day (count and highest id each);
    - last, the clinic's slot step (the grid's rows), so the caller needs no other query.
    """
    bounds = availability.local_day_bounds(day, ZoneInfo(location.timezone))
    params = {"location_id": location.id, "start": bounds.start, "end": bounds.end, "day": day}
    if practitioner_id is not None:
        params["practitioner_id"] = practitioner_id
    return tuple(session.execute(_token_query(practitioner_id is not None), params).one())


# --- the board ---------------------------------------------------------------------------------------


def _hour_floor(instant: datetime, tz: ZoneInfo) -> datetime:
    local = instant.astimezone(tz)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(instant.tzinfo)


def _row_range(
    day: date, tz: ZoneInfo, spans: list[tuple[datetime, datetime]], step: timedelta
) -> tuple[datetime, int]:
    """(first row's instant, number of rows): whole local hours covering ``spans`` (working
    periods and visits), within the local day; 08:00-18:00 when there is nothing."""
    bounds = availability.local_day_bounds(day, tz)
    if spans:
        first = _hour_floor(min(start for start, _ in spans), tz)
        last = max(end for _, end in spans)
        last_hour = _hour_floor(last, tz)
        last = last_hour if last_hour == last else last_hour + timedelta(hours=1)
    else:
        first = datetime.combine(day, DEFAULT_HOURS[0], tzinfo=tz).astimezone(bounds.start.tzinfo)
        last = datetime.combine(day, DEFAULT_HOURS[1], tzinfo=tz).astimezone(bounds.start.tzinfo)
    first, last = max(first, bounds.start), min(last, bounds.end)
    return first, max(1, math.ceil((last - first) / step))


def _blocked_kind(
    start: datetime, end: datetime, time_off: list[tuple[datetime, datetime]], buffers: list[tuple[datetime, datetime]]
) -> str:
    if any(s < end and start < e for s, e in time_off):
        return "time_off"
    if any(s < end and start < e for s, e in buffers):
        return "buffer"
    return "elsewhere"


def _column(
    practitioner: Practitioner,
    visits: list[Visit],
    calendar: availability.PractitionerCalendar,
    time_off: list[tuple[datetime, datetime]],
    *,
    day: date,
    rows: list[datetime],
    step: timedelta,
    now: datetime,
) -> Column:
    count = len(rows)
    first = rows[0]
    cells: list[Cell | None] = [None] * count
    taken = [False] * count

    def row_at(instant: datetime, *, up: bool) -> int:
        position = (instant - first) / step
        return min(count, max(0, math.ceil(position) if up else math.floor(position)))

    # Visits: rows they touch; visits that share a row (off the grid) share one cell.
    clusters: list[tuple[int, int, list[Visit]]] = []
    for visit in visits:
        top = min(row_at(visit.start_at, up=False), count - 1)
        bottom = max(top + 1, row_at(visit.end_at, up=True))
        if clusters and top < clusters[-1][1]:
            low, high, members = clusters[-1]
            clusters[-1] = (low, max(high, bottom), [*members, visit])
        else:
            clusters.append((top, bottom, [visit]))
    for top, bottom, members in clusters:
        cells[top] = Cell("visits", top, bottom - top, rows[top], first + step * bottom, appointments=tuple(members))
        for row in range(top, bottom):
            taken[row] = True

    periods = availability.working_intervals(calendar, day, day)
    busy = [(b.start, b.end) for b in calendar.busy]
    buffers = [(v.end_at, v.busy_until) for v in visits if v.busy_until > v.end_at]

    def kind_of(start: datetime, end: datetime) -> str:
        if not any(p.start <= start and end <= p.end for p in periods):
            inside_day = any(p.end <= start for p in periods) and any(end <= p.start for p in periods)
            return "break" if inside_day else "off"
        if any(s < end and start < e for s, e in busy):
            return _blocked_kind(start, end, time_off, buffers)
        return "free"

    kinds = [None if taken[row] else kind_of(rows[row], rows[row] + step) for row in range(count)]
    row = 0
    while row < count:
        kind = kinds[row]
        if kind is None:
            row += 1
            continue
        run_end = row + 1
        while run_end < count and kinds[run_end] == kind:
            run_end += 1
        if kind == "free":
            minutes = int((step * (run_end - row)).total_seconds() // 60)
            for index in range(row, run_end):
                cells[index] = Cell(
                    "free",
                    index,
                    1,
                    rows[index],
                    rows[index] + step,
                    free_minutes=minutes if index == row else 0,
                    bookable=rows[index] >= now,
                )
        else:
            cells[row] = Cell(kind, row, run_end - row, rows[row], first + step * run_end)
        row = run_end
    return Column(practitioner, cells, len(visits))


def _visits(
    session: Session, *, location_id: int, bounds: availability.Interval, practitioner_id: int | None
) -> list[Visit]:
    """The appointments starting within ``bounds`` at the location, cancelled ones too, in time
    order, with their patient's, practitioner's and service's names: one statement."""
    a, patient, service = Appointment.__table__.c, Patient.__table__.c, Service.__table__.c
    practitioner = Practitioner.__table__.c
    query = (
        select(
            a.id,
            a.practitioner_id,
            practitioner.first_name,
            practitioner.last_name,
            a.service_id,
            service.name,
            patient.first_name,
            patient.last_name,
            a.start_at,
            a.end_at,
            a.busy_until,
            a.status,
            a.triage,
            a.confirmed_at,
            a.outside_hours_reason,
            a.late_cancellation,
        )
        .join_from(Appointment.__table__, Patient.__table__, a.patient_id == patient.id)
        .join(Service.__table__, a.service_id == service.id)
        .join(Practitioner.__table__, a.practitioner_id == practitioner.id)
        .where(a.location_id == location_id, a.start_at >= bounds.start, a.start_at < bounds.end)
        .order_by(a.start_at, a.practitioner_id, a.id)
    )
    if practitioner_id is not None:
        query = query.where(a.practitioner_id == practitioner_id)
    return [
        Visit(
            id=row[0],
            practitioner_id=row[1],
            practitioner_name=f"{row[2]} {row[3]}",
            service_id=row[4],
            service_name=row[5],
            patient_name=f"{row[6]} {row[7]}",
            start_at=row[8],
            end_at=row[9],
            busy_until=row[10],
            status=row[11],
            triage=row[12],
            confirmed_at=row[13],
            outside_hours_reason=row[14],
            late_cancellation=bool(row[15]),
        )
        for row in session.execute(query)
    ]


def day_board(
    session: Session,
    day: date,
    *,
    location: Location,
    step_minutes: int,
    now: datetime,
    practitioner_id: int | None = None,
    include_cancelled: bool = False,
) -> Board:
    """The local ``day`` at ``location`` as a grid (see the module's docstring): one column per
    practitioner working there that day or having a visit there (only ``practitioner_id``'s when
    given). Cancelled visits are listed under the grid: late ones always, all on request.

    Six statements whatever the number of appointments: who works, the day's appointments
    (:class:`Visit`, with the names shown), their hours, their busy time (any location) with
    time off, closures, and time off again for its label. (A practitioner with visits there
    but no hours that day is one more, to load them.)
    """
    tz = ZoneInfo(location.timezone)
    step = timedelta(minutes=step_minutes)
    bounds = availability.local_day_bounds(day, tz)
    working = _practitioners_working(
        session, location_id=location.id, first_day=day, last_day=day, practitioner_id=practitioner_id
    )
    found = _visits(session, location_id=location.id, bounds=bounds, practitioner_id=practitioner_id)
    visible = [v for v in found if v.status != "cancelled"]
    cancelled = [v for v in found if v.status == "cancelled" and (include_cancelled or v.late_cancellation)]
    # Everyone working, plus anyone with a visit here anyway (hours changed since), by id.
    by_id = {p.id: p for p in working}
    for visit in visible:
        if visit.practitioner_id not in by_id:
            by_id[visit.practitioner_id] = session.get(Practitioner, visit.practitioner_id)
    people = [by_id[key] for key in sorted(by_id)]
    calendars = slots.load_calendars(session, location=location, practitioners=people, first_day=day, last_day=day)
    away: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    if people:
        for practitioner_ref, start, end in session.execute(
            select(TimeOff.practitioner_id, TimeOff.start_at, TimeOff.end_at).where(
                TimeOff.practitioner_id.in_([p.id for p in people]),
                TimeOff.start_at < bounds.end,
                TimeOff.end_at > bounds.start,
            )
        ):
            away[practitioner_ref].append((start, end))

    spans = [(p.start, p.end) for c in calendars for p in availability.working_intervals(c, day, day)]
    spans += [(a.start_at, a.end_at) for a in visible]
    first, count = _row_range(day, tz, spans, step)
    rows = [first + step * index for index in range(count)]
    by_practitioner: dict[int, list[Visit]] = defaultdict(list)
    for visit in visible:
        by_practitioner[visit.practitioner_id].append(visit)
    columns = [
        _column(p, by_practitioner[p.id], calendar, away[p.id], day=day, rows=rows, step=step, now=now)
        for p, calendar in zip(people, calendars, strict=True)
    ]
    now_row = None
    if bounds.start <= now < bounds.end and rows[0] <= now < rows[-1] + step:
        now_row = int((now - rows[0]) // step)
    services = {v.service_id: v.service_name for v in visible}
    return Board(
        day=day,
        location=location,
        step=step,
        rows=rows,
        columns=columns,
        cancelled=cancelled,
        services=sorted(services.items(), key=lambda item: (item[1], item[0])),
        closed=any(day in c.closed_days for c in calendars),
        now_row=now_row,
        ids=[a.id for a in visible] + [a.id for a in cancelled],
    )


def now_bucket(day: date, *, location: Location, step_minutes: int, now: datetime) -> int | None:
    """Which slot step of ``day`` "now" is in (None on other days): the board marks the current
    row and stops offering past free rows, so its ETag must change as time passes."""
    bounds = availability.local_day_bounds(day, ZoneInfo(location.timezone))
    if not bounds.start <= now < bounds.end:
        return None
    return int((now - bounds.start) // timedelta(minutes=step_minutes))
