"""Free-slot engine: pure functions over time intervals (no database, no Flask).

Contract
========
Intervals
    An :class:`Interval` is half-open, ``[start, end)``, with timezone-aware ends and
    ``start <= end``. Two intervals overlap when ``a.start < b.end and b.start < a.end``, so
    intervals that only touch do not overlap and an empty interval overlaps nothing. Every
    instant this module returns is in UTC (``tzinfo is datetime.UTC``).

Days and working time
    ``first_day`` and ``last_day`` are local dates in the calendar's zone, both inclusive; an
    empty range (``first_day > last_day``) has no working time and no slots.
    On each local day that is not in ``closed_days``, every :class:`WeeklyHours` entry whose
    ``weekday`` matches and whose ``valid_from``/``valid_until`` (inclusive, local dates) admit
    the day contributes ``[start, break_start)`` and ``[break_end, end)`` (or ``[start, end)``
    without a break) in local wall-clock time. Pieces of one day that overlap or touch are
    merged; each merged piece is a *working period*. Its two ends are converted to UTC: a wall
    time that occurs twice (autumn fall-back) uses its first occurrence (``fold=0``); a wall
    time that does not exist (spring-forward gap) becomes the first instant after the gap.
    Periods that end up empty are dropped. :func:`working_intervals` returns these periods.
    A break that vanishes into a spring-forward gap still separates two periods, even though
    they then touch in UTC.

Slot grid
    Candidate starts are generated in local wall-clock time: the period's start, then
    ``+step``, ``+2*step``, ... while before the period's end. Each candidate is converted to
    UTC on its own, so 09:00 is 09:00 local on either side of a DST change. A candidate that
    does not exist (spring-forward gap) is skipped; an ambiguous one (fall-back) uses the first
    occurrence (``fold=0``). A slot lasts ``duration`` of elapsed time: ``end = start +
    duration`` in UTC.

A candidate ``s`` is a free slot when all of these hold:
    * ``[s, s + duration)`` lies within the working period it was generated from (so never
      across a break); the buffer may run past the end of the period;
    * ``[s, s + duration + buffer_after)`` overlaps no interval of ``calendar.busy`` (busy
      intervals are expected to include the buffers of the appointments they stand for);
    * ``not_before <= s <= not_after`` (minimum notice and booking horizon).

Slots are returned sorted by start (and, across practitioners, by practitioner id).
:func:`is_free` answers "would :func:`free_slots` return this start?" for exactly the same
arguments; it is what the booking transaction uses to re-check a requested start.

Errors
    ``ValueError`` for naive datetimes, ``duration <= 0``, ``step <= 0``, ``buffer_after < 0``,
    an interval that ends before it starts, and inconsistent :class:`WeeklyHours`.

Cost
    Busy intervals are sorted and merged once per call, then each candidate is checked with a
    binary search, and the grid jumps past any busy interval it meets: O((B + C) log B) for B
    busy intervals and C candidates. A working period whose two ends are ordinary wall times on
    the same UTC offset is taken to contain no offset change (no tzdb zone has had two
    transitions within a few days of each other since 1970, and a period is under a day), so
    its grid is computed in UTC without per-candidate zone look-ups; only periods that touch a
    transition convert each candidate on its own.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple
from zoneinfo import ZoneInfo

__all__ = [
    "Interval",
    "PractitionerCalendar",
    "Slot",
    "WeeklyHours",
    "free_slots",
    "free_slots_any",
    "is_free",
    "local_day_bounds",
    "subtract",
    "working_intervals",
]

_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def _as_utc(value: datetime) -> datetime:
    # Comparing datetimes that share one tzinfo object skips utcoffset() calls, so everything
    # internal is normalised to datetime.UTC once.
    return value if value.tzinfo is UTC else value.astimezone(UTC)


@dataclass(frozen=True)
class Interval:
    """Half-open ``[start, end)`` between two timezone-aware datetimes.

    Raises ValueError when either end is naive or when ``end < start``; ``start == end`` is
    allowed and is empty.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _require_aware(self.start, "Interval.start")
        _require_aware(self.end, "Interval.end")
        if self.end < self.start:
            raise ValueError(f"Interval ends before it starts: {self.start} .. {self.end}")

    def overlaps(self, other: Interval) -> bool:
        """True when the two intervals share at least one instant (touching is not enough)."""
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class WeeklyHours:
    """A practitioner's recurring hours at one location, in local wall-clock time.

    ``weekday`` is 0 (Monday) to 6 (Sunday). ``start < end`` on the same day (hours past
    midnight are not supported). The break is optional; when given, both ends are given and
    ``start <= break_start < break_end <= end``. ``valid_from``/``valid_until`` are inclusive
    local dates; ``None`` leaves that side open. Raises ValueError otherwise.
    """

    weekday: int
    start: time
    end: time
    break_start: time | None = None
    break_end: time | None = None
    valid_from: date | None = None
    valid_until: date | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday) .. 6 (Sunday), got {self.weekday}")
        for name in ("start", "end", "break_start", "break_end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is not None:
                raise ValueError(f"WeeklyHours.{name} must be a wall-clock time without tzinfo")
        if not self.start < self.end:
            raise ValueError(f"working hours must end after they start: {self.start}-{self.end}")
        if (self.break_start is None) != (self.break_end is None):
            raise ValueError("a break needs both break_start and break_end")
        if self.break_start is not None and not (self.start <= self.break_start < self.break_end <= self.end):
            raise ValueError(f"break {self.break_start}-{self.break_end} must lie inside {self.start}-{self.end}")
        if self.valid_from is not None and self.valid_until is not None and self.valid_from > self.valid_until:
            raise ValueError(f"valid_from {self.valid_from} is after valid_until {self.valid_until}")

    def applies_on(self, day: date) -> bool:
        """True when these hours are in force on the local date ``day``."""
        return (
            day.weekday() == self.weekday
            and (self.valid_from is None or self.valid_from <= day)
            and (self.valid_until is None or day <= self.valid_until)
        )

    def pieces(self) -> list[tuple[time, time]]:
        """Local ``(start, end)`` pieces of working time: the hours minus the break."""
        if self.break_start is None or self.break_end is None:
            return [(self.start, self.end)]
        return [piece for piece in ((self.start, self.break_start), (self.break_end, self.end)) if piece[0] < piece[1]]


@dataclass(frozen=True)
class PractitionerCalendar:
    """Everything the engine needs about one practitioner at one location.

    ``busy`` holds existing appointments (already extended by their buffer) and time off;
    ``closed_days`` are local dates the location is closed. Lists and sets are accepted and
    stored as a tuple / frozenset so the calendar stays hashable.
    """

    practitioner_id: int
    tz: ZoneInfo
    hours: tuple[WeeklyHours, ...]
    busy: tuple[Interval, ...] = ()
    closed_days: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.tz, tzinfo):
            raise ValueError(f"tz must be a tzinfo such as ZoneInfo('America/Toronto'), got {self.tz!r}")
        object.__setattr__(self, "hours", tuple(self.hours))
        object.__setattr__(self, "busy", tuple(self.busy))
        object.__setattr__(self, "closed_days", frozenset(self.closed_days))


@dataclass(frozen=True)
class Slot:
    """A bookable start. ``end = start + duration``; the buffer is not part of it."""

    start: datetime
    end: datetime
    practitioner_id: int


# --- wall time -> UTC -----------------------------------------------------------------------
#
# Per PEP 495 a naive wall time has the same UTC offset with fold=0 and fold=1 when it is
# ordinary; fold=0 gives the larger offset when it is repeated (fall-back) and the smaller one
# when it falls in a spring-forward gap. `tz.utcoffset(naive)` reads only the wall-clock
# fields and `fold`, and it is far cheaper than `replace(tzinfo=...)`, so the hot paths use it.


def _candidate_utc(wall: datetime, tz: tzinfo) -> datetime | None:
    """UTC instant of a candidate start: first occurrence if repeated, None if it does not exist."""
    off0 = tz.utcoffset(wall)
    off1 = tz.utcoffset(wall.replace(fold=1))
    assert off0 is not None and off1 is not None
    if off0 < off1:
        return None
    return (wall - off0).replace(tzinfo=UTC)


def _resolve_boundary(day: date, at: time, at_fold1: time, tz: tzinfo) -> tuple[datetime, timedelta | None]:
    """UTC instant of the period boundary ``day at`` (``at_fold1`` is ``at`` with fold=1), and
    its UTC offset when that wall time is ordinary (neither repeated nor skipped), else None.

    A repeated wall time is its first occurrence; one in a spring-forward gap becomes the end of
    the gap (the first instant that exists). Unlike the plain fold=0 rule this keeps the
    conversion monotonic, so a period never turns inside out around a gap.
    """
    off0 = tz.utcoffset(datetime.combine(day, at))
    off1 = tz.utcoffset(datetime.combine(day, at_fold1))
    assert off0 is not None and off1 is not None
    as_if_utc = datetime.combine(day, at, UTC)
    if off0 == off1:
        return as_if_utc - off0, off0
    if off0 > off1:
        return as_if_utc - off0, None
    # The transition instant T satisfies wall - off1 < T <= wall - off0; zoneinfo has no public
    # transition list, so find T by bisection on the offset in force (only on gap days).
    lo, hi = as_if_utc - off1, as_if_utc - off0
    resolution = timedelta(microseconds=1)
    while hi - lo > resolution:
        mid = lo + (hi - lo) // 2
        if mid.astimezone(tz).utcoffset() == off1:
            hi = mid
        else:
            lo = mid
    return hi, None


def _boundary_utc(wall: datetime, tz: tzinfo) -> datetime:
    at = wall.time()
    return _resolve_boundary(wall.date(), at, at.replace(fold=1), tz)[0]


def local_day_bounds(day: date, tz: tzinfo) -> Interval:
    """UTC interval of the local calendar day ``day`` in ``tz``: from its first instant to the
    first instant of the next day (23 or 25 hours long on DST days). A midnight that does not
    exist (zones that spring forward at 00:00) starts the day at the end of the gap."""
    midnight = datetime.combine(day, time())
    return Interval(_boundary_utc(midnight, tz), _boundary_utc(midnight + _ONE_DAY, tz))


# --- working periods -------------------------------------------------------------------------


class _Period(NamedTuple):
    anchor: datetime  # naive local wall time where the slot grid starts
    wall_end: datetime  # naive local wall time where the period ends
    start: datetime  # UTC
    end: datetime  # UTC
    # True when one UTC offset holds over the whole period, so that the candidate at wall
    # time `anchor + k*step` is simply `start + k*step`: no per-candidate zone lookups.
    uniform: bool


def _check_day(value: date, name: str) -> None:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ValueError(f"{name} must be a date (a local calendar day), got {value!r}")


def _merged_pieces(entries: Iterable[WeeklyHours]) -> list[tuple[time, time, time, time]]:
    """Local working pieces of one day, overlapping or touching ones merged, in order, as
    ``(start, start with fold=1, end, end with fold=1)``."""
    merged: list[list[time]] = []
    for start, end in sorted(piece for hours in entries for piece in hours.pieces()):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, start.replace(fold=1), end, end.replace(fold=1)) for start, end in merged]


def _working_periods(calendar: PractitionerCalendar, first_day: date, last_day: date) -> list[_Period]:
    _check_day(first_day, "first_day")
    _check_day(last_day, "last_day")
    tz = calendar.tz
    closed_days = calendar.closed_days
    by_weekday: dict[int, list[tuple[int, WeeklyHours]]] = {}
    for index, hours in enumerate(calendar.hours):
        by_weekday.setdefault(hours.weekday, []).append((index, hours))
    # Most days of one weekday have the same hours in force; merge their pieces once.
    pieces_for: dict[tuple[int, ...], list[tuple[time, time, time, time]]] = {}

    periods: list[_Period] = []
    combine = datetime.combine
    day = first_day
    while day <= last_day:
        entries = by_weekday.get(day.weekday())
        if entries and day not in closed_days:
            key = tuple(index for index, hours in entries if hours.applies_on(day))
            pieces = pieces_for.get(key)
            if pieces is None:
                pieces = pieces_for[key] = _merged_pieces(calendar.hours[i] for i in key)
            for start, start1, end, end1 in pieces:
                utc_start, start_offset = _resolve_boundary(day, start, start1, tz)
                utc_end, end_offset = _resolve_boundary(day, end, end1, tz)
                if utc_start < utc_end:
                    # Both ends ordinary and on one offset means no offset change in between:
                    # tzdb has no two transitions within days of each other (checked for every
                    # zone since 1970), and a period is shorter than a day.
                    uniform = start_offset is not None and start_offset == end_offset
                    periods.append(_Period(combine(day, start), combine(day, end), utc_start, utc_end, uniform))
        day += _ONE_DAY
    return periods


def working_intervals(calendar: PractitionerCalendar, first_day: date, last_day: date) -> list[Interval]:
    """UTC working periods of ``calendar`` on the local days ``first_day..last_day`` (inclusive):
    weekly hours minus breaks, closed days left out, sorted and pairwise non-overlapping.
    Periods are not merged with each other, so a break is always a boundary."""
    return [Interval(p.start, p.end) for p in _working_periods(calendar, first_day, last_day)]


# --- busy intervals --------------------------------------------------------------------------


class _BusyIndex:
    """Busy intervals sorted and merged once, so an overlap test is one binary search."""

    __slots__ = ("ends", "starts")

    def __init__(self, busy: Iterable[Interval]) -> None:
        spans = sorted((_as_utc(b.start), _as_utc(b.end)) for b in busy if b.start < b.end)
        starts: list[datetime] = []
        ends: list[datetime] = []
        for start, end in spans:
            if ends and start <= ends[-1]:
                if end > ends[-1]:
                    ends[-1] = end
            else:
                starts.append(start)
                ends.append(end)
        # Disjoint and sorted, so the ends are sorted too and can be bisected.
        self.starts = starts
        self.ends = ends


def subtract(intervals: Iterable[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """The parts of ``intervals`` not covered by any of ``holes``, sorted by start.

    Each interval is cut on its own (inputs are not merged with each other); empty pieces are
    dropped. Results are in UTC. Cost O((n + m) log m + output) for n intervals and m holes.
    """
    index = _BusyIndex(holes)
    starts, ends = index.starts, index.ends
    result: list[Interval] = []
    for interval in sorted(intervals, key=lambda iv: iv.start):
        cursor, stop = _as_utc(interval.start), _as_utc(interval.end)
        i = bisect_right(ends, cursor)
        while cursor < stop and i < len(starts) and starts[i] < stop:
            if starts[i] > cursor:
                result.append(Interval(cursor, starts[i]))
            cursor = max(cursor, ends[i])
            i += 1
        if cursor < stop:
            result.append(Interval(cursor, stop))
    return result


# --- slots -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rules:
    duration: timedelta
    blocked: timedelta  # duration + buffer_after: what the slot keeps busy
    step: timedelta
    not_before: datetime
    not_after: datetime


def _rules(
    *,
    duration: timedelta,
    buffer_after: timedelta,
    step: timedelta,
    not_before: datetime,
    not_after: datetime,
) -> _Rules:
    if not isinstance(duration, timedelta) or duration <= _ZERO:
        raise ValueError(f"duration must be a positive timedelta, got {duration!r}")
    if not isinstance(step, timedelta) or step <= _ZERO:
        raise ValueError(f"step must be a positive timedelta, got {step!r}")
    if not isinstance(buffer_after, timedelta) or buffer_after < _ZERO:
        raise ValueError(f"buffer_after must be a timedelta >= 0, got {buffer_after!r}")
    _require_aware(not_before, "not_before")
    _require_aware(not_after, "not_after")
    return _Rules(duration, duration + buffer_after, step, _as_utc(not_before), _as_utc(not_after))


def _period_slots(period: _Period, tz: tzinfo, rules: _Rules, busy: _BusyIndex) -> list[datetime]:
    """UTC starts of the free slots generated from one working period, in increasing order."""
    not_before, step, blocked = rules.not_before, rules.step, rules.blocked
    if period.end <= not_before or period.start > rules.not_after:
        return []  # no start in [not_before, not_after] can fit in this period
    latest = min(period.end - rules.duration, rules.not_after)
    busy_starts, busy_ends = busy.starts, busy.ends
    n_busy = len(busy_ends)
    result = []
    if period.uniform:
        # The grid is start + k*step in UTC. Jump straight to the first k within the notice,
        # and past each busy interval met, instead of testing every grid point.
        start = period.start
        if start < not_before:
            start += -((start - not_before) // step) * step
        while start <= latest:
            # The first merged busy interval that ends after `start` is the only one that can
            # overlap [start, start + blocked).
            i = bisect_right(busy_ends, start)
            if i < n_busy and busy_starts[i] < start + blocked:
                start += -((start - busy_ends[i]) // step) * step
            else:
                result.append(start)
                start += step
        return result
    for start in _local_grid(period, tz, step):
        if start > latest:
            break  # candidates increase, so no later one fits either
        if start < not_before:
            continue
        i = bisect_right(busy_ends, start)
        if i < n_busy and busy_starts[i] < start + blocked:
            continue
        result.append(start)
    return result


def _local_grid(period: _Period, tz: tzinfo, step: timedelta) -> Iterator[datetime]:
    """UTC instants of the wall-time grid anchor, anchor+step, ... before the period's end,
    each converted on its own; wall times that do not exist are left out. Increasing."""
    wall = period.anchor
    while wall < period.wall_end:
        start = _candidate_utc(wall, tz)
        if start is not None:
            yield start
        wall += step


def free_slots(
    calendar: PractitionerCalendar,
    *,
    first_day: date,
    last_day: date,
    duration: timedelta,
    buffer_after: timedelta = _ZERO,
    step: timedelta,
    not_before: datetime,
    not_after: datetime,
) -> list[Slot]:
    """Free slots of one practitioner on the local days ``first_day..last_day`` (inclusive),
    sorted by start, following the rules in the module docstring.

    Raises ValueError for naive ``not_before``/``not_after``, ``duration <= 0``,
    ``step <= 0`` or ``buffer_after < 0``.
    """
    rules = _rules(
        duration=duration,
        buffer_after=buffer_after,
        step=step,
        not_before=not_before,
        not_after=not_after,
    )
    periods = _working_periods(calendar, first_day, last_day)
    if not periods:
        return []
    busy = _BusyIndex(calendar.busy)
    pid = calendar.practitioner_id
    slots = [
        Slot(start, start + duration, pid)
        for period in periods
        for start in _period_slots(period, calendar.tz, rules, busy)
    ]
    slots.sort(key=lambda slot: slot.start)
    return slots


def free_slots_any(calendars: Iterable[PractitionerCalendar], **kwargs) -> list[Slot]:
    """Free slots of any of ``calendars`` ("any practitioner"): every calendar's
    :func:`free_slots` with the same keyword arguments, merged and sorted by
    ``(start, practitioner_id)``. Two practitioners free at one time give two slots."""
    slots = [slot for calendar in calendars for slot in free_slots(calendar, **kwargs)]
    slots.sort(key=lambda slot: (slot.start, slot.practitioner_id))
    return slots


def is_free(
    calendar: PractitionerCalendar,
    start: datetime,
    *,
    duration: timedelta,
    buffer_after: timedelta = _ZERO,
    step: timedelta,
    not_before: datetime,
    not_after: datetime,
) -> bool:
    """True exactly when :func:`free_slots` with the same arguments would return a slot
    starting at ``start`` (for a day range that includes the local date of ``start``).

    False for a start off the grid, outside working hours, in a gap, overlapping busy time,
    before ``not_before`` or after ``not_after``. Raises ValueError like :func:`free_slots`,
    and for a naive ``start``.
    """
    rules = _rules(
        duration=duration,
        buffer_after=buffer_after,
        step=step,
        not_before=not_before,
        not_after=not_after,
    )
    _require_aware(start, "start")
    start = _as_utc(start)
    if not rules.not_before <= start <= rules.not_after:
        return False
    # Every candidate of local day D converts to an instant on local day D, so only the day of
    # `start` can produce it. Same generator as free_slots, so the two cannot disagree.
    day = start.astimezone(calendar.tz).date()
    busy = _BusyIndex(b for b in calendar.busy if b.start < start + rules.blocked and start < b.end)
    return any(
        candidate == start
        for period in _working_periods(calendar, day, day)
        if period.start <= start < period.end
        for candidate in _period_slots(period, calendar.tz, rules, busy)
    )
