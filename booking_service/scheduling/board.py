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

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from booking_service.clinic.models import Closure, Location, Practitioner, Service, TimeOff, WorkingHours
from booking_service.patients.models import Patient
from booking_service.scheduling import availability, slots
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.operations import appointments_on
from booking_service.scheduling.queries import _merge, _practitioners_working

# Colours of services on the board (staff.css ``.svc-0`` .. ``.svc-7``): a service keeps its
# colour from day to day (its id modulo the palette); the text always names it as well.
PALETTE = 8
# Shown when nobody works that day and nothing is booked.
DEFAULT_HOURS = (time(8), time(18))


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
    appointments: tuple[Appointment, ...] = ()
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
    cancelled: list[Appointment]  # shown under the grid: all when asked for, else late ones only
    services: list[Service]  # the legend: services on the board, by name
    closed: bool  # the location is closed that day
    now_row: int | None  # the row holding "now" (today only)
    ids: list[int] = field(default_factory=list)  # every appointment shown (for the failure marks)


def colour_of(service_id: int) -> int:
    return service_id % PALETTE


# --- the change token ------------------------------------------------------------------------------


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
      time off overlapping the day, and closures of that day (count and highest id each).
    """
    tz = ZoneInfo(location.timezone)
    bounds = availability.local_day_bounds(day, tz)
    a, p = Appointment.__table__.c, Patient.__table__.c
    hours, away, closures = WorkingHours.__table__.c, TimeOff.__table__.c, Closure.__table__.c

    visits = [a.location_id == location.id, a.start_at >= bounds.start, a.start_at < bounds.end]
    if practitioner_id is not None:
        visits.append(a.practitioner_id == practitioner_id)
    hours_where = (hours.location_id == location.id,)
    away_where = (away.start_at < bounds.end, away.end_at > bounds.start)
    closed_where = (closures.day == day, or_(closures.location_id.is_(None), closures.location_id == location.id))
    query = (
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
        )
        .select_from(Appointment.__table__.join(Patient.__table__, a.patient_id == p.id))
        .where(*visits)
    )
    return tuple(session.execute(query).one())


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
    visits: list[Appointment],
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
    clusters: list[tuple[int, int, list[Appointment]]] = []
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

    Six statements: the day's appointments (with patient, practitioner and service), who works,
    their hours, their busy time (any location) with time off, closures, and time off again
    for its label.
    """
    tz = ZoneInfo(location.timezone)
    step = timedelta(minutes=step_minutes)
    found = appointments_on(
        session, day, location_id=location.id, practitioner_id=practitioner_id, tz_name=location.timezone
    )
    visible = [a for a in found if a.status != "cancelled"]
    cancelled = [a for a in found if a.status == "cancelled" and (include_cancelled or a.late_cancellation)]
    working = _practitioners_working(
        session, location_id=location.id, first_day=day, last_day=day, practitioner_id=practitioner_id
    )
    people = _merge(working, visible)
    calendars = slots.load_calendars(session, location=location, practitioners=people, first_day=day, last_day=day)
    bounds = availability.local_day_bounds(day, tz)
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
    by_practitioner: dict[int, list[Appointment]] = defaultdict(list)
    for appointment in visible:
        by_practitioner[appointment.practitioner_id].append(appointment)
    columns = [
        _column(p, by_practitioner[p.id], calendar, away[p.id], day=day, rows=rows, step=step, now=now)
        for p, calendar in zip(people, calendars, strict=True)
    ]
    now_row = None
    if bounds.start <= now < bounds.end and rows[0] <= now < rows[-1] + step:
        now_row = int((now - rows[0]) // step)
    services = {a.service_id: a.service for a in visible}
    return Board(
        day=day,
        location=location,
        step=step,
        rows=rows,
        columns=columns,
        cancelled=cancelled,
        services=sorted(services.values(), key=lambda s: (s.name, s.id)),
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
