"""Pure time rules for messages: when a reminder is due, when a message may go out.

No database, no Flask: plain values in, UTC instants out, so the planner, the worker and the
tests share one definition. Every function takes and returns *aware* datetimes.

The grammar of reminder rules (``ClinicSettings.reminder_rules``) and their due instants are
clinic policy: :mod:`booking_service.clinic.reminder_rules`, re-exported here.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from booking_service.clinic.reminder_rules import (  # noqa: F401  (re-exported: the planner's vocabulary)
    CHANNELS,
    ReminderRule,
    RuleError,
    local_instant,
    parse_rule,
    parse_rules,
    reminder_due,
    require_aware,
)

# A reminder due less than this before the start is not planned: it would arrive as the
# patient is already on the way (or in the waiting room).
MIN_LEAD_BEFORE_START = timedelta(hours=1)
# A reminder due less than this after a notice (confirmation or reschedule) we are sending now
# on the same channel is not planned: the patient was just told the time.
MIN_GAP_AFTER_NOTICE = timedelta(hours=6)
# Follow-up prompts ("book your next visit") go out the next local day at this time.
FOLLOW_UP_AT = time(10, 0)


def reminder_wanted(due: datetime, *, start: datetime, now: datetime, notice_at: datetime | None = None) -> bool:
    """Whether a reminder due at ``due`` is worth planning at ``now``.

    No when it is already due (``due <= now``: a booking made after the reminder time), when it
    would arrive less than :data:`MIN_LEAD_BEFORE_START` before the start, or (``notice_at``
    given: a confirmation or reschedule notice goes out on the same channel then) when it would
    follow that notice within :data:`MIN_GAP_AFTER_NOTICE`.
    """
    for name, value in (("due", due), ("start", start), ("now", now)):
        require_aware(name, value)
    if due <= now or start - due < MIN_LEAD_BEFORE_START:
        return False
    return notice_at is None or due - notice_at >= MIN_GAP_AFTER_NOTICE


def next_allowed(instant: datetime, tz: ZoneInfo, start: time, end: time) -> datetime:
    """The first instant at or after ``instant`` inside the daily sending window [start, end).

    ``start`` and ``end`` are local wall times in ``tz`` bounding when messages may go out
    (``ClinicSettings.quiet_hours_start`` = 08:00 and ``quiet_hours_end`` = 20:00 by default:
    quiet hours are the rest of the day). ``start > end`` is a window across midnight;
    ``start == end`` means no quiet hours at all. Returns ``instant`` itself (in UTC) when it
    is inside the window, else the next local ``start`` (DST-correct, see :func:`local_instant`).
    """
    require_aware("instant", instant)
    instant = instant.astimezone(UTC)
    if start == end:
        return instant
    local = instant.astimezone(tz)
    wall = local.time().replace(tzinfo=None)
    if start < end:
        if start <= wall < end:
            return instant
        day = local.date() if wall < start else local.date() + timedelta(days=1)
        return local_instant(day, start, tz)
    # Window across midnight, e.g. 20:00-08:00: closed between end and start.
    if wall >= start or wall < end:
        return instant
    return local_instant(local.date(), start, tz)


def in_quiet_hours(instant: datetime, tz: ZoneInfo, start: time, end: time) -> bool:
    """True when ``instant`` is outside the sending window [start, end) (see :func:`next_allowed`)."""
    return next_allowed(instant, tz, start, end) != instant.astimezone(UTC)


def follow_up_due(completed: datetime, tz: ZoneInfo) -> datetime:
    """When a follow-up prompt for a visit completed at ``completed`` is due: the next local day
    at :data:`FOLLOW_UP_AT`."""
    require_aware("completed", completed)
    return local_instant(completed.astimezone(tz).date() + timedelta(days=1), FOLLOW_UP_AT, tz)
