"""Reminder rules: the grammar of ``ClinicSettings.reminder_rules`` and when each is due.

Pure (no database, no Flask), and part of clinic policy, so the clinic's settings check a rule
with the same parser the message planner uses (``messaging.rules`` re-exports these names).

Reminder rules (``ClinicSettings.reminder_rules``, a JSON list) come in two shapes:

* ``{"channel": "sms", "hours_before": 24}``: elapsed time. The reminder is due exactly that
  many hours of real time before the start, whatever the clock on the wall does in between
  (across a DST change "24 hours before" is 23 or 25 hours of wall clock).
* ``{"channel": "email", "days_before": 2, "at": "09:00"}``: wall clock. The reminder is due at
  ``at`` local time (the location's IANA zone) on the local calendar day ``days_before`` days
  before the local day of the start. On a DST day a wall time that does not exist (02:30 on a
  spring-forward day) is moved forward by the gap (03:30), and one that happens twice (01:30
  on a fall-back day) means its first occurrence (daylight time).

Rule keys (``rule_key``) are short, stable and go into outbox dedupe keys: ``h24``, ``d2@0900``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from booking_service import errors

CHANNELS = ("sms", "email")

_HHMM = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


class RuleError(ValueError):
    """A reminder rule that cannot be understood. ``code`` is a field code of
    :mod:`booking_service.errors` (``RULE_*``), ``value`` the part that is wrong (for the words
    of each surface); the message is English for logs."""

    def __init__(self, code: str, message: str, value: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.value = value if value is None or isinstance(value, str | int | float) else repr(value)


@dataclass(frozen=True)
class ReminderRule:
    channel: str
    hours_before: float | None = None
    days_before: int | None = None
    at: time | None = None

    @property
    def key(self) -> str:
        """Short and stable, for dedupe keys: ``h24``, ``h1.5``, ``d2@0900``."""
        if self.hours_before is not None:
            hours = self.hours_before
            return f"h{int(hours)}" if float(hours).is_integer() else f"h{hours:g}"
        assert self.days_before is not None and self.at is not None
        return f"d{self.days_before}@{self.at:%H%M}"

    def due(self, start: datetime, tz: ZoneInfo) -> datetime:
        """The instant (UTC) this rule's reminder is due for an appointment at ``start``."""
        return reminder_due(self, start, tz)


def parse_rule(raw: object) -> ReminderRule:
    """A :class:`ReminderRule` from one JSON rule. Raises :class:`RuleError` when malformed."""
    if not isinstance(raw, dict):
        raise RuleError(errors.RULE_NOT_OBJECT, f"a reminder rule must be an object, not {raw!r}", raw)
    channel = raw.get("channel")
    if channel not in CHANNELS:
        raise RuleError(
            errors.RULE_CHANNEL_INVALID, f"reminder rule channel must be sms or email, not {channel!r}", channel
        )
    has_hours, has_days = "hours_before" in raw, "days_before" in raw
    if has_hours == has_days:
        raise RuleError(
            errors.RULE_NEEDS_ONE_OFFSET, f"a reminder rule needs exactly one of hours_before or days_before: {raw!r}"
        )
    if has_hours:
        hours = raw["hours_before"]
        if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= 24 * 31:
            raise RuleError(
                errors.RULE_HOURS_INVALID,
                f"hours_before must be a number of hours between 0 and 744, not {hours!r}",
                hours,
            )
        if "at" in raw:
            raise RuleError(errors.RULE_AT_WITH_HOURS, f"'at' only goes with days_before: {raw!r}")
        return ReminderRule(channel=channel, hours_before=hours)
    days = raw["days_before"]
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 31:
        raise RuleError(
            errors.RULE_DAYS_INVALID, f"days_before must be a whole number of days between 0 and 31, not {days!r}", days
        )
    at_raw = raw.get("at")
    match = _HHMM.match(at_raw) if isinstance(at_raw, str) else None
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise RuleError(errors.RULE_AT_INVALID, f"'at' must be a local time HH:MM, not {at_raw!r}", at_raw)
    return ReminderRule(channel=channel, days_before=days, at=time(int(match[1]), int(match[2])))


def parse_rules(raw: object) -> list[ReminderRule]:
    """Every rule of a clinic's ``reminder_rules``; raises :class:`RuleError` on the first bad one."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RuleError(errors.RULES_NOT_LIST, f"reminder_rules must be a list, not {raw!r}", raw)
    return [parse_rule(item) for item in raw]


def require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, not {value!r}")


def local_instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall time ``wall`` on local ``day`` in ``tz``.

    A wall time skipped by a spring-forward change is moved forward by the gap; a wall time
    that occurs twice (fall back) is its first occurrence.
    """
    naive = datetime.combine(day, wall.replace(tzinfo=None))
    # fold=0 on a skipped time uses the offset from before the change, which lands after the
    # gap (02:30 EST = 03:30 EDT); on a repeated time it picks the first (daylight) one.
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def reminder_due(rule: ReminderRule, start: datetime, tz: ZoneInfo) -> datetime:
    """The instant (UTC) ``rule``'s reminder is due for an appointment starting at ``start``."""
    require_aware("start", start)
    if rule.hours_before is not None:
        # Elapsed time: arithmetic on UTC instants, never on wall clock.
        return start.astimezone(UTC) - timedelta(hours=rule.hours_before)
    assert rule.days_before is not None and rule.at is not None
    local_day = start.astimezone(tz).date()
    return local_instant(local_day - timedelta(days=rule.days_before), rule.at, tz)
