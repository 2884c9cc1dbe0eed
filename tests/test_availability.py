"""The free-slot engine (booking_service.scheduling.availability): pure functions, no database.

Tables give times as text: local Toronto wall-clock "HH:MM" where the point is what a patient
sees, UTC "HH:MM" (the stored instant) where the point is the conversion, so every row can be
checked by hand. Toronto is UTC-5 in winter (EST) and UTC-4 in summer (EDT).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from booking_service.scheduling.availability import (
    Interval,
    PractitionerCalendar,
    Slot,
    WeeklyHours,
    free_slots,
    free_slots_any,
    is_free,
    local_day_bounds,
    subtract,
    working_intervals,
)

TORONTO = ZoneInfo("America/Toronto")
SPRING_FORWARD = date(2026, 3, 8)  # Sunday: 02:00 EST -> 03:00 EDT, at 07:00Z
FALL_BACK = date(2026, 11, 1)  # Sunday: 02:00 EDT -> 01:00 EST, at 06:00Z
TUESDAY = date(2026, 5, 5)  # an ordinary EDT day
OPEN = {  # no minimum notice, no horizon
    "not_before": datetime(2000, 1, 1, tzinfo=UTC),
    "not_after": datetime(2100, 1, 1, tzinfo=UTC),
}
NAIVE = datetime(2026, 5, 5, 9)


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def toronto(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), TORONTO)


def hhmm(text: str) -> time:
    return time.fromisoformat(text)


def every_day(start: str, end: str, break_start: str | None = None, break_end: str | None = None):
    """The same hours on all seven weekdays, written "HH:MM"."""
    break_ = (hhmm(break_start), hhmm(break_end)) if break_start and break_end else (None, None)
    return tuple(WeeklyHours(weekday, hhmm(start), hhmm(end), *break_) for weekday in range(7))


def calendar(hours, busy=(), closed_days=(), practitioner_id=1, tz=TORONTO) -> PractitionerCalendar:
    return PractitionerCalendar(practitioner_id, tz, tuple(hours), tuple(busy), frozenset(closed_days))


def starts_on(cal, day, *, duration=60, step=30, buffer_after=0, **limits) -> list[datetime]:
    """Starts of the free slots on one local day; durations in minutes."""
    slots = free_slots(
        cal,
        first_day=day,
        last_day=day,
        duration=minutes(duration),
        buffer_after=minutes(buffer_after),
        step=minutes(step),
        **{**OPEN, **limits},
    )
    return [slot.start for slot in slots]


def local_times(instants) -> str:
    return " ".join(instant.astimezone(TORONTO).strftime("%H:%M") for instant in instants)


def utc_times(instants) -> str:
    return " ".join(instant.astimezone(UTC).strftime("%H:%M") for instant in instants)


def overlaps(a_start, a_end, b_start, b_end) -> bool:
    """Half-open intervals share an instant: an empty one shares none, even strictly inside."""
    return a_start < a_end and b_start < b_end and a_start < b_end and b_start < a_end


# --- DST: ordinary hours on transition days -----------------------------------------------------

# fmt: off
DST_DAYS = [
    # day,              hours,           min, step, first UTC, last UTC, count
    pytest.param(date(2026, 3, 7), ("09:00", "12:00"), 60, 30, utc(3, 7, 14), utc(3, 7, 16), 5,
                 id="09:00 EST on the Saturday before spring forward is 14:00Z"),
    pytest.param(SPRING_FORWARD, ("09:00", "12:00"), 60, 30, utc(3, 8, 13), utc(3, 8, 15), 5,
                 id="09:00 EDT on the spring-forward Sunday is 13:00Z"),
    pytest.param(SPRING_FORWARD, ("13:00", "17:00"), 60, 30, utc(3, 8, 17), utc(3, 8, 20), 7,
                 id="the spring-forward afternoon runs 17:00Z to 20:00Z"),
    pytest.param(SPRING_FORWARD, ("17:00", "21:00"), 45, 15, utc(3, 8, 21), utc(3, 9, 0, 15), 14,
                 id="a spring-forward evening runs past midnight UTC"),
    pytest.param(date(2026, 3, 9), ("09:00", "12:00"), 60, 30, utc(3, 9, 13), utc(3, 9, 15), 5,
                 id="09:00 EDT on the Monday after is 13:00Z"),
    pytest.param(date(2026, 10, 31), ("09:00", "12:00"), 60, 30, utc(10, 31, 13), utc(10, 31, 15), 5,
                 id="09:00 EDT on the Saturday before fall back is 13:00Z"),
    pytest.param(FALL_BACK, ("09:00", "12:00"), 60, 30, utc(11, 1, 14), utc(11, 1, 16), 5,
                 id="09:00 EST on the fall-back Sunday is 14:00Z"),
    pytest.param(FALL_BACK, ("13:00", "17:00"), 60, 30, utc(11, 1, 18), utc(11, 1, 21), 7,
                 id="the fall-back afternoon runs 18:00Z to 21:00Z"),
    pytest.param(FALL_BACK, ("17:00", "21:00"), 45, 15, utc(11, 1, 22), utc(11, 2, 1, 15), 14,
                 id="a fall-back evening runs past midnight UTC"),
]
# fmt: on


@pytest.mark.parametrize(("day", "hours", "duration", "step", "first", "last", "count"), DST_DAYS)
def test_slots_keep_their_local_wall_time_on_dst_days(day, hours, duration, step, first, last, count):
    cal = calendar(every_day(*hours))

    starts = starts_on(cal, day, duration=duration, step=step)

    assert (starts[0], starts[-1], len(starts)) == (first, last, count)
    assert local_times(starts[:1]) == hours[0]


# --- DST: hours that span the transition itself ---------------------------------------------

# fmt: off
TRANSITION_NIGHTS = [
    # day,          hours (and break),   min, step, slot starts (UTC), working intervals (UTC)
    pytest.param(SPRING_FORWARD, ("01:00", "04:00"), 60, 60, "06:00 07:00", "06:00-08:00",
                 id="02:00 does not exist on the spring-forward night so it is skipped"),
    pytest.param(SPRING_FORWARD, ("01:00", "04:00"), 60, 30, "06:00 06:30 07:00", "06:00-08:00",
                 id="01:30 EST plus 60 elapsed minutes ends at 03:30 EDT inside working time"),
    pytest.param(SPRING_FORWARD, ("01:00", "02:30"), 60, 30, "06:00", "06:00-07:00",
                 id="hours ending inside the gap end where the gap ends so 01:30 no longer fits"),
    pytest.param(SPRING_FORWARD, ("02:30", "05:00"), 60, 30, "07:00 07:30 08:00", "07:00-09:00",
                 id="hours starting inside the gap start where the gap ends"),
    pytest.param(SPRING_FORWARD, ("01:00", "04:00", "02:00", "03:00"), 60, 30, "06:00 07:00",
                 "06:00-07:00 07:00-08:00",
                 id="a break that vanishes into the gap still keeps slots from straddling it"),
    pytest.param(FALL_BACK, ("01:00", "04:00"), 60, 60, "05:00 07:00 08:00", "05:00-09:00",
                 id="01:00 on the fall-back night is its first occurrence and the repeat is no new start"),
    pytest.param(FALL_BACK, ("01:00", "04:00"), 60, 30, "05:00 05:30 07:00 07:30 08:00", "05:00-09:00",
                 id="half-hour starts on the fall-back night use the first 01:30"),
    pytest.param(FALL_BACK, ("01:00", "02:00"), 30, 30, "05:00 05:30", "05:00-07:00",
                 id="hours 01:00 to 02:00 on the fall-back night last two hours but offer two starts"),
]
# fmt: on


@pytest.mark.parametrize(("day", "hours", "duration", "step", "expected", "working"), TRANSITION_NIGHTS)
def test_hours_spanning_the_transition_hour(day, hours, duration, step, expected, working):
    cal = calendar(every_day(*hours))

    starts = starts_on(cal, day, duration=duration, step=step)
    periods = working_intervals(cal, day, day)

    assert utc_times(starts) == expected
    assert " ".join(f"{utc_times([p.start])}-{utc_times([p.end])}" for p in periods) == working
    for start in starts:  # so no slot straddles a gap, or a break, out of its working period
        assert any(p.start <= start and start + minutes(duration) <= p.end for p in periods)


@pytest.mark.parametrize(
    ("day", "hours_long"),
    [
        pytest.param(SPRING_FORWARD, 23, id="the spring-forward day lasts 23 hours"),
        pytest.param(FALL_BACK, 25, id="the fall-back day lasts 25 hours"),
        pytest.param(TUESDAY, 24, id="an ordinary day lasts 24 hours"),
    ],
)
def test_local_day_bounds_run_from_midnight_to_midnight(day, hours_long):
    bounds = local_day_bounds(day, TORONTO)

    assert (bounds.start, bounds.end) == (toronto(day, 0), toronto(day + timedelta(days=1), 0))
    assert bounds.end - bounds.start == timedelta(hours=hours_long)
    assert bounds.start.tzinfo is UTC


def test_local_day_bounds_start_after_the_gap_when_midnight_does_not_exist():
    # Chile springs forward at 24:00: Sunday 2026-09-06 starts at 01:00 local (04:00Z).
    bounds = local_day_bounds(date(2026, 9, 6), ZoneInfo("America/Santiago"))

    assert (bounds.start, bounds.end) == (utc(9, 6, 4), utc(9, 7, 3))


# --- breaks, validity, closed days ---------------------------------------------------------------

# fmt: off
BREAKS = [
    pytest.param(("12:00", "13:00"), 30,
                 "09:00 09:30 10:00 10:30 11:00 13:00 13:30 14:00 14:30 15:00 15:30 16:00",
                 id="no slot runs into or through the lunch break"),
    pytest.param(("12:00", "12:45"), 30,
                 "09:00 09:30 10:00 10:30 11:00 12:45 13:15 13:45 14:15 14:45 15:15 15:45",
                 id="the grid restarts at the end of the break"),
    pytest.param(("09:00", "10:00"), 60, "10:00 11:00 12:00 13:00 14:00 15:00 16:00",
                 id="a break at opening time just starts the day later"),
]
# fmt: on


@pytest.mark.parametrize(("break_", "step", "expected"), BREAKS)
def test_breaks_split_the_day_into_working_periods(break_, step, expected):
    cal = calendar(every_day("09:00", "17:00", *break_))

    assert local_times(starts_on(cal, TUESDAY, step=step)) == expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        pytest.param(date(2026, 5, 5), "09:00 10:00 11:00", id="old hours apply up to valid_until"),
        pytest.param(date(2026, 5, 12), "09:00 10:00 11:00", id="valid_until is inclusive"),
        pytest.param(date(2026, 5, 19), "", id="no hours are in force between the two ranges"),
        pytest.param(date(2026, 5, 26), "13:00 14:00 15:00 16:00", id="valid_from is inclusive"),
        pytest.param(date(2026, 6, 2), "13:00 14:00 15:00 16:00", id="new hours apply after valid_from"),
        pytest.param(date(2026, 5, 6), "", id="hours apply only on their weekday"),
    ],
)
def test_weekly_hours_apply_only_in_their_validity_range(day, expected):
    cal = calendar(
        [
            WeeklyHours(1, time(9), time(12), valid_until=date(2026, 5, 12)),
            WeeklyHours(1, time(13), time(17), valid_from=date(2026, 5, 26)),
        ]
    )

    assert local_times(starts_on(cal, day, step=60)) == expected


def test_overlapping_and_touching_hours_merge_into_one_period_with_one_grid():
    cal = calendar(
        [
            WeeklyHours(1, time(9), time(11)),
            WeeklyHours(1, time(10), time(12)),
            WeeklyHours(1, time(12), time(13)),
        ]
    )

    assert working_intervals(cal, TUESDAY, TUESDAY) == [Interval(toronto(TUESDAY, 9), toronto(TUESDAY, 13))]
    assert local_times(starts_on(cal, TUESDAY, duration=45, step=45)) == "09:00 09:45 10:30 11:15 12:00"


def test_closed_days_have_no_slots_and_no_working_time():
    holiday = date(2026, 5, 18)  # Victoria Day, a Monday
    cal = calendar(every_day("09:00", "12:00"), closed_days={holiday})
    one_day = timedelta(days=1)

    slots = free_slots(
        cal,
        first_day=holiday - one_day,
        last_day=holiday + one_day,
        duration=minutes(60),
        step=minutes(60),
        **OPEN,
    )

    assert {slot.start.astimezone(TORONTO).date() for slot in slots} == {holiday - one_day, holiday + one_day}
    assert working_intervals(cal, holiday, holiday) == []


def test_both_ends_of_the_day_range_are_included():
    cal = calendar(every_day("09:00", "10:00"))

    slots = free_slots(
        cal, first_day=date(2026, 5, 4), last_day=date(2026, 5, 6), duration=minutes(60), step=minutes(60), **OPEN
    )

    assert [slot.start for slot in slots] == [utc(5, 4, 13), utc(5, 5, 13), utc(5, 6, 13)]


def test_an_empty_day_range_has_no_slots():
    cal = calendar(every_day("09:00", "12:00"))
    day_before = TUESDAY - timedelta(days=1)

    assert free_slots(cal, first_day=TUESDAY, last_day=day_before, duration=minutes(30), step=minutes(30), **OPEN) == []


# --- busy time and buffers -------------------------------------------------------------------------

# fmt: off
BUSY = [
    # busy (local),                       buffer, free starts (local) between 08:00 and 13:00
    pytest.param([("10:00", "11:00")], 0, "08:00 08:30 09:00 11:00 11:30 12:00",
                 id="a slot may end exactly when an appointment starts"),
    pytest.param([("10:00", "11:00")], 15, "08:00 08:30 11:00 11:30 12:00",
                 id="the new slot's buffer must not run into an appointment"),
    pytest.param([("10:00", "11:15")], 0, "08:00 08:30 09:00 11:30 12:00",
                 id="an appointment's own buffer is part of its busy interval"),
    pytest.param([("13:00", "13:30")], 30, "08:00 08:30 09:00 09:30 10:00 10:30 11:00 11:30",
                 id="the buffer may run past closing but not into time off after it"),
    pytest.param([("11:00", "11:30"), ("09:00", "10:00"), ("09:30", "10:30")], 0, "08:00 11:30 12:00",
                 id="unsorted and overlapping busy intervals are handled"),
    pytest.param([("10:00", "10:00")], 0, "08:00 08:30 09:00 09:30 10:00 10:30 11:00 11:30 12:00",
                 id="an empty busy interval blocks nothing"),
    pytest.param([("10:15", "10:15")], 0, "08:00 08:30 09:00 09:30 10:00 10:30 11:00 11:30 12:00",
                 id="an empty busy interval strictly inside a slot blocks nothing either"),
]
# fmt: on


@pytest.mark.parametrize(("busy", "buffer", "expected"), BUSY)
def test_busy_intervals_and_buffers_block_slots(busy, buffer, expected):
    def at(text):
        return datetime.combine(TUESDAY, hhmm(text), TORONTO)

    cal = calendar(every_day("08:00", "13:00"), busy=[Interval(at(start), at(end)) for start, end in busy])

    assert local_times(starts_on(cal, TUESDAY, buffer_after=buffer)) == expected


def test_the_buffer_runs_past_closing_time_when_nothing_follows():
    cal = calendar(every_day("09:00", "12:00"))

    assert local_times(starts_on(cal, TUESDAY, duration=60, step=60, buffer_after=30)) == "09:00 10:00 11:00"


def test_busy_intervals_in_any_time_zone_are_compared_as_instants():
    in_utc = Interval(utc(5, 5, 14), utc(5, 5, 15))  # 10:00-11:00 EDT
    in_toronto = Interval(toronto(TUESDAY, 10), toronto(TUESDAY, 11))

    as_utc = starts_on(calendar(every_day("09:00", "12:00"), busy=[in_utc]), TUESDAY)
    as_local = starts_on(calendar(every_day("09:00", "12:00"), busy=[in_toronto]), TUESDAY)

    assert as_utc == as_local
    assert local_times(as_utc) == "09:00 11:00"


# --- notice, horizon, grid -------------------------------------------------------------------------

FAR_PAST, FAR_FUTURE = OPEN["not_before"], OPEN["not_after"]


@pytest.mark.parametrize(
    ("not_before", "not_after", "expected"),
    [
        pytest.param(toronto(TUESDAY, 10, 15), FAR_FUTURE, "10:30 11:00", id="minimum notice drops earlier starts"),
        pytest.param(toronto(TUESDAY, 10), FAR_FUTURE, "10:00 10:30 11:00", id="a start at the notice is offered"),
        pytest.param(FAR_PAST, toronto(TUESDAY, 10), "09:00 09:30 10:00", id="a start at the horizon is offered"),
        pytest.param(FAR_PAST, toronto(TUESDAY, 9, 59), "09:00 09:30", id="the horizon drops later starts"),
        pytest.param(toronto(TUESDAY, 12), FAR_FUTURE, "", id="notice past closing leaves nothing"),
        pytest.param(toronto(TUESDAY, 10), toronto(TUESDAY, 9), "", id="a horizon before the notice leaves nothing"),
    ],
)
def test_minimum_notice_and_booking_horizon_bound_the_starts(not_before, not_after, expected):
    cal = calendar(every_day("09:00", "12:00"))

    assert local_times(starts_on(cal, TUESDAY, not_before=not_before, not_after=not_after)) == expected


@pytest.mark.parametrize(
    ("not_before", "not_after", "expected"),
    [
        pytest.param(utc(3, 8, 6, 30), FAR_FUTURE, "06:30 07:00", id="notice right on the start before the gap"),
        pytest.param(utc(3, 8, 7), FAR_FUTURE, "07:00", id="notice right on the start after the gap"),
        pytest.param(FAR_PAST, utc(3, 8, 7), "06:00 06:30 07:00", id="horizon right on the start after the gap"),
        pytest.param(FAR_PAST, utc(3, 8, 6, 59), "06:00 06:30", id="horizon just before the gap ends"),
    ],
)
def test_notice_and_horizon_are_inclusive_on_the_spring_forward_night(not_before, not_after, expected):
    cal = calendar(every_day("01:00", "04:00"))

    assert utc_times(starts_on(cal, SPRING_FORWARD, not_before=not_before, not_after=not_after)) == expected


@pytest.mark.parametrize(
    ("duration", "step", "expected"),
    [
        pytest.param(45, 20, "09:00 09:20 09:40 10:00 10:20 10:40 11:00", id="a 20-minute step under 45-minute visits"),
        pytest.param(45, 60, "09:00 10:00 11:00", id="a step longer than the visit leaves gaps"),
        pytest.param(50, 25, "09:00 09:25 09:50 10:15 10:40 11:05", id="the last start is the last that still fits"),
        pytest.param(180, 15, "09:00", id="a visit as long as the period fits once"),
        pytest.param(181, 15, "", id="a visit longer than the period never fits"),
    ],
)
def test_the_step_need_not_divide_the_duration(duration, step, expected):
    cal = calendar(every_day("09:00", "12:00"))

    assert local_times(starts_on(cal, TUESDAY, duration=duration, step=step)) == expected


def test_slots_are_utc_and_last_the_visit_without_its_buffer():
    cal = calendar(every_day("09:00", "10:00"), practitioner_id=7)

    slots = free_slots(
        cal,
        first_day=TUESDAY,
        last_day=TUESDAY,
        duration=minutes(40),
        buffer_after=minutes(10),
        step=minutes(20),
        **OPEN,
    )

    assert slots == [Slot(utc(5, 5, 13), utc(5, 5, 13, 40), 7), Slot(utc(5, 5, 13, 20), utc(5, 5, 14), 7)]
    assert all(slot.start.tzinfo is UTC and slot.end.tzinfo is UTC for slot in slots)


# --- any practitioner ----------------------------------------------------------------------------


def test_any_practitioner_merges_and_sorts_by_start_then_practitioner():
    morning = calendar(every_day("09:00", "11:00"), practitioner_id=2)
    late = calendar(every_day("10:00", "12:00"), practitioner_id=1)
    fully_booked = calendar(
        every_day("09:00", "12:00"),
        busy=[Interval(toronto(TUESDAY, 9), toronto(TUESDAY, 12))],
        practitioner_id=3,
    )

    slots = free_slots_any(
        [morning, fully_booked, late],
        first_day=TUESDAY,
        last_day=TUESDAY,
        duration=minutes(60),
        step=minutes(60),
        **OPEN,
    )

    assert [(local_times([s.start]), s.practitioner_id) for s in slots] == [
        ("09:00", 2),
        ("10:00", 1),
        ("10:00", 2),
        ("11:00", 1),
    ]


def test_any_practitioner_of_no_calendars_is_empty():
    assert free_slots_any([], first_day=TUESDAY, last_day=TUESDAY, duration=minutes(30), step=minutes(30), **OPEN) == []


# --- is_free ---------------------------------------------------------------------------------------

WEEK = timedelta(days=7)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        pytest.param(toronto(TUESDAY, 9), True, id="a free grid start is free"),
        pytest.param(utc(5, 5, 13), True, id="the same instant in UTC is free"),
        pytest.param(toronto(TUESDAY, 9, 10), False, id="a start off the grid is not a slot"),
        pytest.param(toronto(TUESDAY, 10), False, id="a start overlapping an appointment is not free"),
        pytest.param(toronto(TUESDAY, 9, 30), False, id="a start whose buffer runs into an appointment is not free"),
        pytest.param(toronto(TUESDAY, 11, 30), False, id="a start that would run past closing is not a slot"),
        pytest.param(toronto(TUESDAY, 8, 30), False, id="a start before opening is not a slot"),
        pytest.param(toronto(TUESDAY, 13), False, id="a start after closing is not a slot"),
        pytest.param(toronto(TUESDAY + WEEK, 9), False, id="a start beyond the horizon is not offered"),
        pytest.param(toronto(TUESDAY - WEEK, 9), False, id="a start inside the notice period is not offered"),
    ],
)
def test_is_free_rechecks_a_requested_start(start, expected):
    cal = calendar(every_day("09:00", "12:00"), busy=[Interval(toronto(TUESDAY, 10, 20), toronto(TUESDAY, 11))])
    rules = {
        "duration": minutes(45),
        "buffer_after": minutes(15),
        "step": minutes(30),
        "not_before": toronto(TUESDAY - timedelta(days=1), 0),
        "not_after": toronto(TUESDAY + timedelta(days=1), 0),
    }

    assert is_free(cal, start, **rules) is expected


@pytest.mark.parametrize("day", [SPRING_FORWARD, FALL_BACK, TUESDAY], ids=["spring forward", "fall back", "ordinary"])
def test_is_free_agrees_with_free_slots_at_every_minute_of_the_day(day):
    cal = calendar(
        every_day("00:30", "05:00", "02:10", "02:40"),
        busy=[Interval(toronto(day, 4), toronto(day, 4, 20))],
    )
    rules = {"duration": minutes(50), "buffer_after": minutes(10), "step": minutes(20), **OPEN}
    offered = {s.start for s in free_slots(cal, first_day=day, last_day=day, **rules)}
    bounds = local_day_bounds(day, TORONTO)

    instant = bounds.start
    while instant < bounds.end:
        assert is_free(cal, instant, **rules) is (instant in offered), instant
        instant += minutes(1)


# --- overlaps --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param((9, 12), (11, 13), True, id="intervals sharing an hour overlap"),
        pytest.param((9, 12), (12, 13), False, id="intervals that only touch do not overlap"),
        pytest.param((9, 12), (10, 10), False, id="an empty interval strictly inside overlaps nothing"),
        pytest.param((10, 10), (9, 12), False, id="overlapping is symmetric for an empty interval"),
        pytest.param((10, 10), (10, 10), False, id="an empty interval does not overlap itself"),
    ],
)
def test_intervals_overlap_when_they_share_an_instant(a, b, expected):
    first, second = Interval(utc(5, 5, a[0]), utc(5, 5, a[1])), Interval(utc(5, 5, b[0]), utc(5, 5, b[1]))

    assert first.overlaps(second) is expected
    assert overlaps(first.start, first.end, second.start, second.end) is expected  # the tests' reference


# --- subtract ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intervals", "holes", "expected"),
    [
        pytest.param([(9, 17)], [], [(9, 17)], id="no holes leaves the interval"),
        pytest.param([(9, 17)], [(12, 13)], [(9, 12), (13, 17)], id="a hole in the middle splits it"),
        pytest.param([(9, 17)], [(8, 10), (16, 18)], [(10, 16)], id="holes over the ends trim it"),
        pytest.param([(9, 17)], [(8, 18)], [], id="a hole over everything removes it"),
        pytest.param([(9, 17)], [(9, 10), (16, 17)], [(10, 16)], id="holes flush with the ends leave no empty piece"),
        pytest.param([(9, 12), (13, 17)], [(11, 14)], [(9, 11), (14, 17)], id="one hole can cut two intervals"),
        pytest.param([(9, 17)], [(12, 13), (10, 11), (10, 12)], [(9, 10), (13, 17)], id="unsorted overlapping holes"),
        pytest.param([(9, 12)], [(12, 13), (8, 9)], [(9, 12)], id="touching holes remove nothing"),
        pytest.param([(13, 17), (9, 12)], [], [(9, 12), (13, 17)], id="the result is sorted by start"),
    ],
)
def test_subtract_removes_holes_from_intervals(intervals, holes, expected):
    def intervals_of(pairs):
        return [Interval(utc(5, 5, a), utc(5, 5, b)) for a, b in pairs]

    assert subtract(intervals_of(intervals), intervals_of(holes)) == intervals_of(expected)


# --- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"duration": timedelta(0)}, "duration must be a positive", id="a zero duration is refused"),
        pytest.param({"duration": minutes(-30)}, "duration must be a positive", id="a negative duration is refused"),
        pytest.param({"step": timedelta(0)}, "step must be a positive", id="a zero step is refused"),
        pytest.param({"buffer_after": minutes(-5)}, "buffer_after must be", id="a negative buffer is refused"),
        pytest.param({"not_before": NAIVE}, "not_before must be timezone-aware", id="a naive notice is refused"),
        pytest.param({"not_after": NAIVE}, "not_after must be timezone-aware", id="a naive horizon is refused"),
        pytest.param({"first_day": NAIVE}, "first_day must be a date", id="a datetime as first day is refused"),
    ],
)
def test_free_slots_refuses_bad_arguments_with_a_clear_message(change, message):
    arguments = {
        "first_day": TUESDAY,
        "last_day": TUESDAY,
        "duration": minutes(30),
        "buffer_after": timedelta(0),
        "step": minutes(30),
        **OPEN,
        **change,
    }

    with pytest.raises(ValueError, match=message):
        free_slots(calendar(every_day("09:00", "12:00")), **arguments)


def test_is_free_refuses_a_naive_start():
    cal = calendar(every_day("09:00", "12:00"))

    with pytest.raises(ValueError, match="start must be timezone-aware"):
        is_free(cal, NAIVE, duration=minutes(30), step=minutes(30), **OPEN)


# fmt: off
BAD_BLOCKS = [
    pytest.param(lambda: Interval(NAIVE, utc(5, 5, 10)), "timezone-aware",
                 id="an interval with a naive end"),
    pytest.param(lambda: Interval(utc(5, 5, 10), utc(5, 5, 9)), "ends before it starts",
                 id="an interval ending before it starts"),
    pytest.param(lambda: WeeklyHours(7, time(9), time(12)), "weekday",
                 id="a weekday past Sunday"),
    pytest.param(lambda: WeeklyHours(0, time(12), time(9)), "must end after",
                 id="hours ending before they start"),
    pytest.param(lambda: WeeklyHours(0, time(9), time(12), time(10)), "both break_start and break_end",
                 id="half a break"),
    pytest.param(lambda: WeeklyHours(0, time(9), time(12), time(11), time(13)), "must lie inside",
                 id="a break past closing"),
    pytest.param(lambda: WeeklyHours(0, time(9), time(12), valid_from=date(2026, 6, 1), valid_until=date(2026, 5, 1)),
                 "valid_from", id="a validity range that ends before it starts"),
]
# fmt: on


@pytest.mark.parametrize(("build", "message"), BAD_BLOCKS)
def test_inconsistent_building_blocks_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# --- properties ------------------------------------------------------------------------------------

ZONES = ["UTC", "America/Toronto", "Europe/London", "Australia/Lord_Howe", "America/Santiago", "America/St_Johns"]
# 2026 transition days of those zones, so most examples touch a gap or a repeated hour.
TRANSITION_DAYS = [
    date(2026, 3, 8), date(2026, 3, 29), date(2026, 4, 5), date(2026, 9, 6),
    date(2026, 10, 4), date(2026, 10, 25), date(2026, 11, 1), date(2026, 6, 16),
]  # fmt: skip
PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def quarter_hour(index: int) -> time:
    return time(index // 4, index % 4 * 15)


@st.composite
def weekly_hours(draw, weekday=None):
    weekday = draw(st.integers(0, 6)) if weekday is None else weekday
    start = draw(st.integers(0, 94))
    end = draw(st.integers(start + 1, 95))
    break_ = (None, None)
    if draw(st.booleans()):
        break_start = draw(st.integers(start, end - 1))
        break_ = (quarter_hour(break_start), quarter_hour(draw(st.integers(break_start + 1, end))))
    valid_from = draw(st.none() | st.sampled_from(TRANSITION_DAYS))
    valid_until = draw(st.none() | st.sampled_from(TRANSITION_DAYS))
    if valid_from and valid_until and valid_from > valid_until:
        valid_from, valid_until = valid_until, valid_from
    return WeeklyHours(weekday, quarter_hour(start), quarter_hour(end), *break_, valid_from, valid_until)


@st.composite
def scenarios(draw, one_entry_per_weekday=False):
    """A calendar around a DST change, plus the arguments of a free_slots call."""
    tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    first_day = draw(st.sampled_from(TRANSITION_DAYS)) + timedelta(days=draw(st.integers(-2, 1)))
    last_day = first_day + timedelta(days=draw(st.integers(0, 3)))
    if one_entry_per_weekday:
        weekdays = draw(st.sets(st.integers(0, 6), min_size=1))
        hours = tuple(draw(weekly_hours(weekday)) for weekday in sorted(weekdays))
    else:
        hours = tuple(draw(st.lists(weekly_hours(), min_size=1, max_size=5)))
    origin = local_day_bounds(first_day, tz).start - timedelta(hours=12)
    span_minutes = (last_day - first_day).days * 1440 + 2160
    busy = tuple(
        Interval(origin + minutes(offset), origin + minutes(offset + length))
        for offset, length in draw(st.lists(st.tuples(st.integers(0, span_minutes), st.integers(0, 240)), max_size=15))
    )
    closed_days = frozenset(
        draw(st.sets(st.sampled_from([first_day + timedelta(days=i) for i in range(4)]), max_size=2))
    )
    cal = PractitionerCalendar(draw(st.integers(1, 5)), tz, hours, busy, closed_days)
    # Limits on quarter hours, so they often fall exactly on a start.
    quarters = st.integers(0, span_minutes // 15).map(lambda q: minutes(15 * q))
    not_before = draw(st.sampled_from([OPEN["not_before"], origin + draw(quarters)]))
    not_after = draw(st.sampled_from([OPEN["not_after"], not_before + draw(quarters)]))
    arguments = {
        "first_day": first_day,
        "last_day": last_day,
        "duration": minutes(draw(st.integers(5, 180))),
        "buffer_after": minutes(draw(st.sampled_from([0, 0, 5, 10, 15, 30]))),
        "step": minutes(draw(st.integers(5, 90))),
        "not_before": not_before,
        "not_after": not_after,
    }
    return cal, arguments


def _rules(arguments):
    return {k: v for k, v in arguments.items() if k not in ("first_day", "last_day")}


@PROPERTY_SETTINGS
@given(scenarios())
def test_no_slot_or_its_buffer_overlaps_busy_time(scenario):
    cal, arguments = scenario
    buffer = arguments["buffer_after"]

    for slot in free_slots(cal, **arguments):
        for busy in cal.busy:
            assert not overlaps(slot.start, slot.end + buffer, busy.start, busy.end)


@PROPERTY_SETTINGS
@given(scenarios())
def test_every_slot_lies_inside_one_working_interval_within_the_limits(scenario):
    cal, arguments = scenario
    periods = working_intervals(cal, arguments["first_day"], arguments["last_day"])

    slots = free_slots(cal, **arguments)

    assert [s.start for s in slots] == sorted({s.start for s in slots})
    for slot in slots:
        assert slot.end - slot.start == arguments["duration"]
        assert any(p.start <= slot.start and slot.end <= p.end for p in periods)
        assert arguments["not_before"] <= slot.start <= arguments["not_after"]
        assert arguments["first_day"] <= slot.start.astimezone(cal.tz).date() <= arguments["last_day"]
    for earlier, later in pairwise(periods):
        assert earlier.end <= later.start


def _spread(items, most=25):
    """At most about `most` items, spread evenly: keeps the quadratic checks fast."""
    return items[:: max(1, len(items) // most)]


@PROPERTY_SETTINGS
@given(scenarios())
def test_booking_a_slot_removes_exactly_the_slots_it_collides_with(scenario):
    cal, arguments = scenario
    buffer = arguments["buffer_after"]
    before = free_slots(cal, **arguments)

    for booked in _spread(before):
        blocked = Interval(booked.start, booked.end + buffer)
        busier = PractitionerCalendar(cal.practitioner_id, cal.tz, cal.hours, (*cal.busy, blocked), cal.closed_days)

        after = free_slots(busier, **arguments)

        assert after == [s for s in before if not overlaps(s.start, s.end + buffer, blocked.start, blocked.end)]


@PROPERTY_SETTINGS
@given(scenarios(), st.lists(st.integers(-3000, 3000), max_size=20))
def test_is_free_agrees_with_free_slots(scenario, probes):
    cal, arguments = scenario
    rules = _rules(arguments)
    # is_free knows no day range: compare on a range wide enough to hold every probe.
    wide = {
        "first_day": arguments["first_day"] - timedelta(days=3),
        "last_day": arguments["last_day"] + timedelta(days=3),
    }
    slots = free_slots(cal, **wide, **rules)
    offered = {s.start for s in slots}
    origin = local_day_bounds(arguments["first_day"], cal.tz).start
    step, blocked = rules["step"], rules["duration"] + rules["buffer_after"]
    candidates = {origin + minutes(m) for m in probes}
    for s in _spread(slots):
        candidates |= {s.start, s.start - minutes(1), s.start + minutes(1), s.start + step, s.start - step}
    for b in cal.busy:
        candidates |= {b.start, b.end, b.start - blocked, b.start - blocked + minutes(1)}

    for start in candidates:
        assert is_free(cal, start, **rules) is (start in offered)


def _reference_slots(cal, first_day, last_day, duration, buffer_after, step, not_before, not_after):
    """Brute force from the contract, for calendars with one hours entry per weekday."""
    tz = cal.tz

    def exists(wall):
        return wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall

    def to_utc(wall):
        return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)

    def boundary(wall):
        while not exists(wall):  # a gap: the period boundary moves to where the gap ends
            wall += minutes(1)
        return to_utc(wall)

    starts = []
    day = first_day
    while day <= last_day:
        for hours in cal.hours:
            if day in cal.closed_days or not hours.applies_on(day):
                continue
            pieces = [(hours.start, hours.end)]
            if hours.break_start is not None:
                pieces = [(hours.start, hours.break_start), (hours.break_end, hours.end)]
            for piece_start, piece_end in pieces:
                wall, wall_end = datetime.combine(day, piece_start), datetime.combine(day, piece_end)
                period_start, period_end = boundary(wall), boundary(wall_end)
                while wall < wall_end:
                    start = to_utc(wall)
                    if (
                        exists(wall)
                        and period_start <= start
                        and start + duration <= period_end
                        and not_before <= start <= not_after
                        and not any(overlaps(start, start + duration + buffer_after, b.start, b.end) for b in cal.busy)
                    ):
                        starts.append(start)
                    wall += step
        day += timedelta(days=1)
    return sorted(starts)


# Found by a long run of the property below: empty busy intervals strictly inside candidate slots
# on the spring-forward weekend. The engine (rightly) offered 00:00Z and 00:10Z; the reference
# then counted an empty interval as overlapping and left them out.
EMPTY_BUSY_ON_SPRING_FORWARD = (
    calendar(
        [WeeklyHours(5, time(19), time(19, 20)), WeeklyHours(6, time(1), time(4))],  # Sat 19:00 EST = 00:00Z Sun
        busy=[Interval(utc(3, 8, 0, 3), utc(3, 8, 0, 3)), Interval(utc(3, 8, 0, 12), utc(3, 8, 0, 12))],
    ),
    {
        "first_day": date(2026, 3, 7),
        "last_day": SPRING_FORWARD,
        "duration": minutes(5),
        "buffer_after": timedelta(0),
        "step": minutes(5),
        **OPEN,
    },
)


@PROPERTY_SETTINGS
@example(EMPTY_BUSY_ON_SPRING_FORWARD)
@given(scenarios(one_entry_per_weekday=True))
def test_free_slots_match_a_brute_force_reading_of_the_contract(scenario):
    cal, arguments = scenario

    assert [s.start for s in free_slots(cal, **arguments)] == _reference_slots(cal, **arguments)


# --- the database loader's fast path ---------------------------------------------------------------


def _trusted(cal: PractitionerCalendar) -> PractitionerCalendar:
    """The same calendar as slots.load_calendars builds it: busy time as UTC pairs, unchecked."""
    pairs = [(b.start.astimezone(UTC), b.end.astimezone(UTC)) for b in cal.busy]
    return PractitionerCalendar.from_trusted(cal.practitioner_id, cal.tz, cal.hours, pairs, cal.closed_days)


def test_a_trusted_calendar_equals_the_checked_one_and_builds_its_intervals_when_read():
    busy = (Interval(utc(5, 5, 15), utc(5, 5, 16)), Interval(utc(5, 5, 13), utc(5, 5, 14)))
    checked = calendar(every_day("09:00", "17:00"), busy, closed_days=[TUESDAY + timedelta(days=1)])

    trusted = _trusted(checked)

    assert "busy" not in trusted.__dict__  # not built until someone reads it
    assert trusted == checked and hash(trusted) == hash(checked) and repr(trusted) == repr(checked)
    assert trusted.busy == busy and trusted.busy is trusted.busy
    with pytest.raises(AttributeError):
        trusted.no_such_field  # noqa: B018


@PROPERTY_SETTINGS
@given(scenarios())
def test_trusted_calendars_give_the_same_slots_as_checked_ones(scenario):
    cal, arguments = scenario
    trusted = _trusted(cal)
    other = PractitionerCalendar(cal.practitioner_id + 1, cal.tz, cal.hours[:1], cal.busy[:3], cal.closed_days)

    assert free_slots(trusted, **arguments) == free_slots(cal, **arguments)
    assert free_slots_any([_trusted(other), trusted], **arguments) == free_slots_any([other, cal], **arguments)
    for slot in _spread(free_slots(cal, **arguments), 5):
        assert is_free(trusted, slot.start, **_rules(arguments))
