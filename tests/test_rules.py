"""Pure time rules of messaging: reminder due instants, quiet hours, follow-ups. No database."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_service.messaging import rules
from booking_service.messaging.rules import RuleError, parse_rule, parse_rules

TORONTO = ZoneInfo("America/Toronto")


def local(day: str, hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=TORONTO)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# 2026 in Toronto: DST starts Sunday 2026-03-08 at 02:00 (-> 03:00 EDT), ends Sunday
# 2026-11-01 at 02:00 (-> 01:00 EST).
@pytest.mark.parametrize(
    ("rule", "start", "due"),
    [
        # wall-clock rules: local time on the local day N days before
        ({"days_before": 1, "at": "09:00"}, local("2026-03-09", "10:00"), "2026-03-08T13:00Z"),  # 09:00 EDT
        ({"days_before": 1, "at": "01:30"}, local("2026-03-09", "10:00"), "2026-03-08T06:30Z"),  # 01:30 EST
        ({"days_before": 1, "at": "02:30"}, local("2026-03-09", "10:00"), "2026-03-08T07:30Z"),  # gap: 03:30 EDT
        ({"days_before": 2, "at": "09:00"}, local("2026-03-09", "10:00"), "2026-03-07T14:00Z"),  # 09:00 EST
        ({"days_before": 0, "at": "08:00"}, local("2026-03-08", "10:00"), "2026-03-08T12:00Z"),  # same day, EDT
        ({"days_before": 1, "at": "09:00"}, local("2026-11-02", "10:00"), "2026-11-01T14:00Z"),  # 09:00 EST
        ({"days_before": 1, "at": "01:30"}, local("2026-11-02", "10:00"), "2026-11-01T05:30Z"),  # twice: the first
        ({"days_before": 2, "at": "09:00"}, local("2026-11-02", "10:00"), "2026-10-31T13:00Z"),  # 09:00 EDT
        # the local day counts, not the UTC day: 20:00 EST on the 24th is already the 25th in UTC
        ({"days_before": 1, "at": "09:00"}, local("2026-11-24", "20:00"), "2026-11-23T14:00Z"),
        ({"days_before": 1, "at": "09:00"}, local("2026-11-24", "00:30"), "2026-11-23T14:00Z"),
        # elapsed rules: real hours, whatever the wall clock does
        ({"hours_before": 24}, local("2026-03-08", "10:00"), "2026-03-07T14:00Z"),  # 09:00 EST the day before
        ({"hours_before": 24}, local("2026-03-09", "10:00"), "2026-03-08T14:00Z"),  # 10:00 EDT
        ({"hours_before": 24}, local("2026-11-01", "10:00"), "2026-10-31T15:00Z"),  # 11:00 EDT the day before
        ({"hours_before": 2}, local("2026-03-08", "03:30"), "2026-03-08T05:30Z"),  # 00:30 EST: 2 h, not 3
        ({"hours_before": 2}, local("2026-11-01", "01:30"), "2026-11-01T03:30Z"),  # first 01:30 is EDT
        ({"hours_before": 1.5}, local("2026-11-24", "10:00"), "2026-11-24T13:30Z"),
    ],
)
def test_reminder_due_instants_follow_the_rule_across_dst(rule, start, due):
    parsed = parse_rule({"channel": "sms", **rule})
    assert parsed.due(start, TORONTO) == utc(due)
    assert parsed.due(start, TORONTO).tzinfo is UTC


def test_24_hours_before_is_elapsed_time_not_wall_clock_across_the_change():
    rule = parse_rule({"channel": "sms", "hours_before": 24})
    start = local("2026-03-08", "10:00")
    due = rule.due(start, TORONTO)
    assert start - due == timedelta(hours=24)
    assert due.astimezone(TORONTO).hour == 9  # the wall clock says 23 hours


def test_days_before_is_wall_clock_so_its_elapsed_time_varies_across_the_change():
    rule = parse_rule({"channel": "email", "days_before": 1, "at": "10:00"})
    start = local("2026-03-08", "10:00")
    assert start - rule.due(start, TORONTO) == timedelta(hours=23)
    start = local("2026-11-01", "10:00")
    assert start - rule.due(start, TORONTO) == timedelta(hours=25)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"channel": "sms", "hours_before": 24}, "h24"),
        ({"channel": "sms", "hours_before": 1.5}, "h1.5"),
        ({"channel": "email", "days_before": 2, "at": "09:00"}, "d2@0900"),
        ({"channel": "email", "days_before": 0, "at": "7:05"}, "d0@0705"),
    ],
)
def test_rule_keys_are_short_and_stable(raw, key):
    assert parse_rule(raw).key == key


@pytest.mark.parametrize(
    "raw",
    [
        "24h",
        {"hours_before": 24},
        {"channel": "fax", "hours_before": 24},
        {"channel": "sms"},
        {"channel": "sms", "hours_before": 24, "days_before": 1, "at": "09:00"},
        {"channel": "sms", "hours_before": 0},
        {"channel": "sms", "hours_before": -3},
        {"channel": "sms", "hours_before": "24"},
        {"channel": "sms", "hours_before": True},
        {"channel": "sms", "hours_before": 24, "at": "09:00"},
        {"channel": "email", "days_before": 1},
        {"channel": "email", "days_before": 1, "at": "25:00"},
        {"channel": "email", "days_before": 1, "at": "nine"},
        {"channel": "email", "days_before": 1.5, "at": "09:00"},
        {"channel": "email", "days_before": -1, "at": "09:00"},
    ],
)
def test_malformed_rules_are_refused_with_a_reason(raw):
    with pytest.raises(RuleError):
        parse_rule(raw)


def test_the_default_rules_parse():
    from booking_service.clinic.models import DEFAULT_REMINDER_RULES

    assert [r.key for r in parse_rules(DEFAULT_REMINDER_RULES)] == ["d2@0900", "h24"]
    assert parse_rules(None) == []
    with pytest.raises(RuleError):
        parse_rules({"channel": "sms"})


NOW = utc("2026-11-23T13:00Z")


@pytest.mark.parametrize(
    ("due", "start", "notice_at", "wanted"),
    [
        ("2026-11-25T15:00Z", "2026-11-26T15:00Z", None, True),
        ("2026-11-23T12:59Z", "2026-11-26T15:00Z", None, False),  # already due
        ("2026-11-23T13:00Z", "2026-11-26T15:00Z", None, False),  # due this instant: the notice covers it
        ("2026-11-26T14:00Z", "2026-11-26T15:00Z", None, True),  # exactly an hour before
        ("2026-11-26T14:01Z", "2026-11-26T15:00Z", None, False),  # less than an hour before
        ("2026-11-23T18:59Z", "2026-11-24T18:59Z", "2026-11-23T13:00Z", False),  # right after a notice
        ("2026-11-23T19:00Z", "2026-11-24T19:00Z", "2026-11-23T13:00Z", True),  # six hours after it
        ("2026-11-23T18:59Z", "2026-11-24T18:59Z", None, True),  # no notice on that channel
    ],
)
def test_reminders_already_due_too_close_to_the_start_or_right_after_a_notice_are_not_wanted(
    due, start, notice_at, wanted
):
    notice = utc(notice_at) if notice_at else None
    assert rules.reminder_wanted(utc(due), start=utc(start), now=NOW, notice_at=notice) is wanted


EIGHT, EIGHT_PM = time(8), time(20)


@pytest.mark.parametrize(
    ("instant", "window", "allowed"),
    [
        (local("2026-11-24", "07:00"), (EIGHT, EIGHT_PM), "2026-11-24T13:00Z"),
        (local("2026-11-24", "08:00"), (EIGHT, EIGHT_PM), "2026-11-24T13:00Z"),
        (local("2026-11-24", "12:34"), (EIGHT, EIGHT_PM), "2026-11-24T17:34Z"),
        (local("2026-11-24", "19:59"), (EIGHT, EIGHT_PM), "2026-11-25T00:59Z"),
        (local("2026-11-24", "20:00"), (EIGHT, EIGHT_PM), "2026-11-25T13:00Z"),
        (local("2026-11-24", "23:30"), (EIGHT, EIGHT_PM), "2026-11-25T13:00Z"),
        # the next morning is on the other side of a DST change
        (local("2026-03-07", "21:00"), (EIGHT, EIGHT_PM), "2026-03-08T12:00Z"),  # 08:00 EDT
        (local("2026-10-31", "22:00"), (EIGHT, EIGHT_PM), "2026-11-01T13:00Z"),  # 08:00 EST
        (local("2026-03-08", "01:00"), (time(2, 30), EIGHT_PM), "2026-03-08T07:30Z"),  # 02:30 skipped: 03:30
        # a window across midnight, and no quiet hours at all
        (local("2026-11-24", "23:00"), (time(22), time(6)), "2026-11-25T04:00Z"),
        (local("2026-11-24", "03:00"), (time(22), time(6)), "2026-11-24T08:00Z"),
        (local("2026-11-24", "07:00"), (time(22), time(6)), "2026-11-25T03:00Z"),
        (local("2026-11-24", "03:00"), (EIGHT, EIGHT), "2026-11-24T08:00Z"),
    ],
)
def test_next_allowed_moves_quiet_hour_instants_to_the_next_local_window_start(instant, window, allowed):
    assert rules.next_allowed(instant, TORONTO, *window) == utc(allowed)
    assert rules.in_quiet_hours(instant, TORONTO, *window) is (utc(allowed) != instant)


@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.integers(min_value=0, max_value=23),
    # At least two hours: a one-hour window inside a DST gap (02:00-03:00 on a spring-forward
    # day) does not exist that day, and the answer is then the instant the gap ends.
    st.integers(min_value=2, max_value=22),
)
def test_next_allowed_is_never_earlier_and_always_inside_the_window(instant, start_hour, length):
    start, end = time(start_hour), time((start_hour + length) % 24)
    allowed = rules.next_allowed(instant, TORONTO, start, end)
    assert allowed >= instant
    assert allowed - instant <= timedelta(hours=25)
    assert rules.next_allowed(allowed, TORONTO, start, end) == allowed  # inside: unchanged


@pytest.mark.parametrize(
    ("completed", "due"),
    [
        (local("2026-11-24", "16:00"), "2026-11-25T15:00Z"),
        (local("2026-10-31", "16:00"), "2026-11-01T15:00Z"),  # 10:00 EST, the day DST ends
        (local("2026-03-07", "16:00"), "2026-03-08T14:00Z"),  # 10:00 EDT, the day DST starts
    ],
)
def test_follow_up_is_due_the_next_local_day_at_ten(completed, due):
    assert rules.follow_up_due(completed, TORONTO) == utc(due)


def test_naive_datetimes_are_refused():
    rule = parse_rule({"channel": "sms", "hours_before": 24})
    with pytest.raises(ValueError):
        rule.due(datetime(2026, 11, 24, 10), TORONTO)
    with pytest.raises(ValueError):
        rules.next_allowed(datetime(2026, 11, 24, 10), TORONTO, EIGHT, EIGHT_PM)
