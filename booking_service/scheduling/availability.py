"""Free-slot engine: pure functions over time intervals (no database, no Flask).

Contract
========
Intervals
    An :class:`Interval` is half-open, ``[start, end)``, with timezone-aware ends and
    ``start <= end``. Two intervals overlap when they share an instant: both are non-empty and
    ``a.start < b.end and b.start < a.end``. So intervals that only touch do not overlap, and an
    empty interval overlaps nothing, not even one it lies strictly inside (an empty busy
    interval blocks no slot). Every instant this module returns is in UTC (``tzinfo is
    datetime.UTC``).

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
    transition convert each candidate on its own. By the same fact, a day whose two midnights
    are ordinary wall times on one offset converts all its period ends with that offset (found
    once per search, for every calendar in the zone); other days resolve each end on its own.
    Calendars made by :meth:`PractitionerCalendar.from_trusted` (the database loader) hand
    their busy time over as UTC pairs, without building or checking an :class:`Interval` each.
"""

from __future__ import annotations

import functools
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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
_MIDNIGHT = time()
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
        """True when the two intervals share at least one instant (touching is not enough, and
        an empty interval shares none, even strictly inside the other)."""
        return self.start < self.end and other.start < other.end and self.start < other.end and other.start < self.end


def _trusted_interval(start: datetime, end: datetime) -> Interval:
    """An Interval of two values known to be valid, without __post_init__'s checks."""
    interval = object.__new__(Interval)
    interval.__dict__.update(start=start, end=end)
    return interval


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
        for name, value in (
            ("start", self.start),
            ("end", self.end),
            ("break_start", self.break_start),
            ("break_end", self.break_end),
        ):
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
    # A factory rather than a plain default, so that the class has no `busy` attribute and
    # __getattr__ can build the intervals of a calendar made by from_trusted() on first read.
    busy: tuple[Interval, ...] = field(default_factory=tuple)
    closed_days: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.tz, tzinfo):
            raise ValueError(f"tz must be a tzinfo such as ZoneInfo('America/Toronto'), got {self.tz!r}")
        object.__setattr__(self, "hours", tuple(self.hours))
        object.__setattr__(self, "busy", tuple(self.busy))
        object.__setattr__(self, "closed_days", frozenset(self.closed_days))

    @classmethod
    def from_trusted(
        cls,
        practitioner_id: int,
        tz: tzinfo,
        hours: tuple[WeeklyHours, ...],
        busy: list[tuple[datetime, datetime]],
        closed_days: frozenset[date],
    ) -> PractitionerCalendar:
        """A calendar from data that is valid already, for the database loader: no checks.

        ``busy`` holds ``(start, end)`` pairs in any order with ``start <= end`` and both ends
        in UTC (``tzinfo is datetime.UTC``), as the database's constraints guarantee; the
        caller must not change the list afterwards. The engine reads the pairs directly; the
        :class:`Interval` objects of ``calendar.busy`` are only built if someone reads it.
        Equal to the calendar the public constructor makes from the same values.
        """
        calendar = object.__new__(cls)
        fields = calendar.__dict__
        fields["practitioner_id"] = practitioner_id
        fields["tz"] = tz
        fields["hours"] = hours
        fields["closed_days"] = closed_days
        fields["_busy_spans"] = busy
        return calendar

    def __getattr__(self, name: str):
        # Only reached when normal lookup fails: `busy` of a calendar from from_trusted().
        spans = self.__dict__.get("_busy_spans")
        if name != "busy" or spans is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        busy = tuple(_trusted_interval(start, end) for start, end in spans)
        self.__dict__["busy"] = busy
        return busy


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


class _Piece(NamedTuple):
    start: time
    start_fold1: time  # start with fold=1
    end: time
    end_fold1: time
    start_delta: timedelta  # start as time since midnight
    end_delta: timedelta


def _piece(start: time, end: time) -> _Piece:
    # Times that differ only in `fold` are equal and hash alike: key the cache on it too.
    return _cached_piece(start, end, start.fold, end.fold)


@functools.lru_cache(maxsize=1024)
def _cached_piece(start: time, end: time, _start_fold: int, _end_fold: int) -> _Piece:
    return _Piece(
        start,
        start.replace(fold=1),
        end,
        end.replace(fold=1),
        timedelta(0, start.hour * 3600 + start.minute * 60 + start.second, start.microsecond),
        timedelta(0, end.hour * 3600 + end.minute * 60 + end.second, end.microsecond),
    )


def _merged_pieces(entries: Iterable[WeeklyHours]) -> list[_Piece]:
    """Local working pieces of one day, overlapping or touching ones merged, in order."""
    entries = list(entries)
    if len(entries) == 1:  # the usual case: one entry's pieces are disjoint and in order
        return [_piece(start, end) for start, end in entries[0].pieces()]
    merged: list[list[time]] = []
    for start, end in sorted(piece for hours in entries for piece in hours.pieces()):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [_piece(start, end) for start, end in merged]


def _ordinary_offset(wall: datetime, tz: tzinfo) -> timedelta | None:
    """The UTC offset of the naive wall time ``wall`` if it is ordinary (neither repeated nor
    skipped), else None."""
    offset = tz.utcoffset(wall)
    return offset if offset == tz.utcoffset(wall.replace(fold=1)) else None


def _day_offsets(tz: tzinfo, first_day: date, last_day: date) -> list[timedelta | None]:
    """For each local day of ``first_day..last_day``: its UTC offset when its midnight and the
    next one are ordinary wall times on that same offset, so that the day holds no offset change
    (the same tzdb fact as for uniform periods, see the module docstring), else None."""
    offsets: list[timedelta | None] = []
    if first_day > last_day:
        return offsets
    midnight = datetime.combine(first_day, _MIDNIGHT)
    offset = _ordinary_offset(midnight, tz)
    for _ in range((last_day - first_day).days + 1):
        midnight += _ONE_DAY
        following = _ordinary_offset(midnight, tz)
        offsets.append(offset if offset is not None and offset == following else None)
        offset = following
    return offsets


def _working_periods(
    calendar: PractitionerCalendar,
    first_day: date,
    last_day: date,
    offsets: list[timedelta | None] | None = None,
) -> list[_Period]:
    """The working periods of ``calendar`` (see the module docstring). ``offsets`` is
    ``_day_offsets(calendar.tz, first_day, last_day)`` when the caller has it already."""
    _check_day(first_day, "first_day")
    _check_day(last_day, "last_day")
    if first_day > last_day:
        return []
    tz = calendar.tz
    if offsets is None:
        offsets = _day_offsets(tz, first_day, last_day)
    closed_days = calendar.closed_days
    by_weekday: dict[int, list[tuple[int, WeeklyHours]]] = {}
    for index, hours in enumerate(calendar.hours):
        by_weekday.setdefault(hours.weekday, []).append((index, hours))
    # Most days of one weekday have the same hours in force; merge their pieces once. Weekdays
    # whose hours have no validity dates have the same pieces on every day.
    pieces_for: dict[tuple[int, ...], list[_Piece]] = {}
    fixed: dict[int, list[_Piece]] = {
        weekday: _merged_pieces(hours for _, hours in entries)
        for weekday, entries in by_weekday.items()
        if all(hours.valid_from is None and hours.valid_until is None for _, hours in entries)
    }

    periods: list[_Period] = []
    append = periods.append
    combine = datetime.combine
    new_period = tuple.__new__  # _Period(...) without the Python-level __new__ of a NamedTuple
    day = first_day
    weekday = first_day.weekday()
    for offset in offsets:
        if weekday in by_weekday and day not in closed_days:
            pieces = fixed.get(weekday)
            if pieces is None:
                key = tuple(index for index, hours in by_weekday[weekday] if hours.applies_on(day))
                pieces = pieces_for.get(key)
                if pieces is None:
                    pieces = pieces_for[key] = _merged_pieces(calendar.hours[i] for i in key)
            if offset is not None:
                # No offset change that day: every wall time converts with the same offset.
                wall = combine(day, _MIDNIGHT)
                utc = combine(day, _MIDNIGHT, UTC) - offset
                for piece in pieces:
                    start, end = piece.start_delta, piece.end_delta
                    append(new_period(_Period, (wall + start, wall + end, utc + start, utc + end, True)))
            else:
                for start, start1, end, end1, _, _ in pieces:
                    utc_start, start_offset = _resolve_boundary(day, start, start1, tz)
                    utc_end, end_offset = _resolve_boundary(day, end, end1, tz)
                    if utc_start < utc_end:
                        # Both ends ordinary and on one offset means no offset change in
                        # between: tzdb has no two transitions within days of each other
                        # (checked for every zone since 1970), and a period is under a day.
                        uniform = start_offset is not None and start_offset == end_offset
                        append(_Period(combine(day, start), combine(day, end), utc_start, utc_end, uniform))
        day += _ONE_DAY
        weekday = weekday + 1 if weekday < 6 else 0
    return periods


def working_intervals(calendar: PractitionerCalendar, first_day: date, last_day: date) -> list[Interval]:
    """UTC working periods of ``calendar`` on the local days ``first_day..last_day`` (inclusive):
    weekly hours minus breaks, closed days left out, sorted and pairwise non-overlapping.
    Periods are not merged with each other, so a break is always a boundary."""
    return [Interval(p.start, p.end) for p in _working_periods(calendar, first_day, last_day)]


# --- busy intervals --------------------------------------------------------------------------


class _BusyIndex:
    """Busy intervals sorted and merged once, so an overlap test is one binary search.

    Intervals that overlap or touch are merged (appointments back to back become one interval,
    which the slot search then passes in one step); empty ones are dropped.
    """

    __slots__ = ("ends", "starts")

    def __init__(self, busy: Iterable[Interval]) -> None:
        self._merge(sorted((_as_utc(b.start), _as_utc(b.end)) for b in busy))

    @classmethod
    def of(cls, calendar: PractitionerCalendar) -> _BusyIndex:
        """The index of ``calendar.busy``, from the UTC pairs of a trusted calendar if it is one."""
        spans = calendar.__dict__.get("_busy_spans")
        if spans is None:
            return cls(calendar.busy)
        index = object.__new__(cls)
        index._merge(sorted(spans))
        return index

    def _merge(self, spans: list[tuple[datetime, datetime]]) -> None:
        """Merge ``spans``, UTC ``(start, end)`` pairs sorted by start."""
        starts: list[datetime] = []
        ends: list[datetime] = []
        add_start, add_end = starts.append, ends.append
        remaining = iter(spans)
        for start, end in remaining:  # the first non-empty one
            if start < end:
                add_start(start)
                add_end(end)
                last_end = end
                break
        for start, end in remaining:
            if start <= last_end:
                if end > last_end:
                    ends[-1] = last_end = end
            elif start < end:
                add_start(start)
                add_end(end)
                last_end = end
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


def _period_slots(periods: Iterable[_Period], tz: tzinfo, rules: _Rules, busy: _BusyIndex) -> list[datetime]:
    """UTC starts of the free slots generated from ``periods``, period by period, each
    period's in increasing order."""
    not_before, not_after, step, blocked, duration = (
        rules.not_before,
        rules.not_after,
        rules.step,
        rules.blocked,
        rules.duration,
    )
    busy_starts, busy_ends = busy.starts, busy.ends
    n_busy = len(busy_ends)
    result: list[datetime] = []
    append = result.append
    for period in periods:
        _, _, start, end, uniform = period
        if end <= not_before or start > not_after:
            continue  # no start in [not_before, not_after] can fit in this period
        latest = end - duration
        if latest > not_after:
            latest = not_after
        if uniform:
            # The grid is start + k*step in UTC. Walk the gaps between busy intervals: in the
            # gap before busy interval i (all earlier ones end by `start`), the grid points up
            # to busy_starts[i] - blocked are free; then jump to the first one past its end.
            if start < not_before:
                start += -((start - not_before) // step) * step
            i = bisect_right(busy_ends, start)
            while start <= latest:
                if i == n_busy:
                    limit = latest
                else:
                    limit = busy_starts[i] - blocked
                    if limit > latest:
                        limit = latest
                while start <= limit:
                    append(start)
                    start += step
                if i == n_busy:
                    break
                busy_end = busy_ends[i]
                if start < busy_end:
                    start = busy_end + (start - busy_end) % step  # first grid point from busy_end on
                i += 1
            continue
        for start in _local_grid(period, tz, step):
            if start > latest:
                break  # candidates increase, so no later one fits either
            if start < not_before:
                continue
            i = bisect_right(busy_ends, start)
            if i < n_busy and busy_starts[i] < start + blocked:
                continue
            append(start)
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
    pid = calendar.practitioner_id
    return _slots([(start, pid) for start in _free_starts(calendar, first_day, last_day, rules)], duration)


def free_slots_any(calendars: Iterable[PractitionerCalendar], **kwargs) -> list[Slot]:
    """Free slots of any of ``calendars`` ("any practitioner"): every calendar's
    :func:`free_slots` with the same keyword arguments, merged and sorted by
    ``(start, practitioner_id)``. Two practitioners free at one time give two slots."""
    calendars = list(calendars)
    if not calendars:
        return []
    return _free_slots_any(calendars, **kwargs)


def _free_slots_any(
    calendars: list[PractitionerCalendar],
    *,
    first_day: date,
    last_day: date,
    duration: timedelta,
    buffer_after: timedelta = _ZERO,
    step: timedelta,
    not_before: datetime,
    not_after: datetime,
) -> list[Slot]:
    rules = _rules(
        duration=duration,
        buffer_after=buffer_after,
        step=step,
        not_before=not_before,
        not_after=not_after,
    )
    found: list[tuple[datetime, int]] = []
    offsets, offsets_tz = None, None
    for calendar in calendars:
        if calendar.tz is not offsets_tz:  # calendars of one location share their zone
            _check_day(first_day, "first_day")
            _check_day(last_day, "last_day")
            offsets, offsets_tz = _day_offsets(calendar.tz, first_day, last_day), calendar.tz
        pid = calendar.practitioner_id
        found += [(start, pid) for start in _free_starts(calendar, first_day, last_day, rules, offsets)]
    found.sort()  # by (start, practitioner_id); equal pairs are equal slots
    return _slots(found, duration)


def _free_starts(
    calendar: PractitionerCalendar,
    first_day: date,
    last_day: date,
    rules: _Rules,
    offsets: list[timedelta | None] | None = None,
) -> list[datetime]:
    """UTC starts of the free slots of ``calendar``, sorted."""
    periods = _working_periods(calendar, first_day, last_day, offsets)
    if not periods:
        return []
    starts = _period_slots(periods, calendar.tz, rules, _BusyIndex.of(calendar))
    # Periods come in order and do not overlap, and each one's starts increase: sorted already
    # as a rule, and sorting a sorted list is one pass.
    starts.sort()
    return starts


def _slots(found: list[tuple[datetime, int]], duration: timedelta) -> list[Slot]:
    """Slots of ``(start, practitioner_id)`` pairs the engine computed, built without the
    dataclass __init__ (which costs about twice as much)."""
    new = object.__new__
    slots: list[Slot] = []
    append = slots.append
    for start, practitioner_id in found:
        slot = new(Slot)
        fields = slot.__dict__
        fields["start"] = start
        fields["end"] = start + duration
        fields["practitioner_id"] = practitioner_id
        append(slot)
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
    periods = [period for period in _working_periods(calendar, day, day) if period.start <= start < period.end]
    return start in _period_slots(periods, calendar.tz, rules, busy)
