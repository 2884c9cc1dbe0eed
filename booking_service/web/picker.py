"""The slot picker's page model: a week of free times at one location, grouped by local day.

It opens on the first day that has a free time (searching forward up to the booking horizon)
and moves by whole weeks; "Earlier week" appears only when days before the week shown may hold
a free time (never on the week it opened on). The slot search itself is the domain's (``scheduling.slots``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service
from booking_service.scheduling import slots as slot_search
from booking_service.scheduling.availability import Slot
from booking_service.web import i18n
from booking_service.web.common import slot_value

WEEK = 7
# The first search covers this many days from today: a week, plus three so that a week opening
# up to three days ahead still needs a single search (on a Friday after hours the first free day
# is Monday, three days ahead: with two, every such page made a second search for one Sunday).
FIRST_SEARCH = WEEK + 3
# Beyond that, the first-free-day search looks this many days ahead per query.
SEARCH_CHUNK = 14


@dataclass
class SlotChoice:
    value: str  # the start as it travels in forms
    label: str  # 9:00 a.m.
    dom_id: str  # the radio's id
    start: datetime
    practitioner_id: int
    period: str  # morning, afternoon, evening (for grouping on the page)


@dataclass
class DayColumn:
    day: date
    label: str
    short_label: str
    slots: list[SlotChoice] = field(default_factory=list)


@dataclass
class Week:
    first_day: date
    last_day: date
    days: list[DayColumn]
    zone_label: str
    previous_from: date | None
    next_from: date | None
    nothing_until_horizon: bool = False

    @property
    def slot_count(self) -> int:
        return sum(len(d.slots) for d in self.days)

    def day_to_open(self, chosen: str | None) -> DayColumn | None:
        """The day shown unfolded: the one holding the chosen time, else the first with any."""
        for day in self.days:
            if chosen and any(slot.value == chosen for slot in day.slots):
                return day
        return next((d for d in self.days if d.slots), None)


def _period(local_start: datetime) -> str:
    if local_start.hour < 12:
        return "morning"
    if local_start.hour < 17:
        return "afternoon"
    return "evening"


def week_of_slots(
    session: Session,
    *,
    clinic: ClinicSettings,
    service: Service,
    location: Location,
    practitioners: list[Practitioner],
    from_day: date | None,
    now: datetime,
    ignore_appointment_id: int | None = None,
    exclude_starts: frozenset[datetime] = frozenset(),
) -> Week:
    """Free times for the 7 local days from ``from_day`` (or from the first day with any),
    leaving out ``exclude_starts`` (a rescheduled appointment's own time)."""
    tz = ZoneInfo(location.timezone)
    today = slot_search.local_date(now, location)
    horizon_day = slot_search.local_date(slot_search.booking_window(clinic, now)[1], location)

    def search(first: date, last: date) -> list[Slot]:
        return slot_search.find_slots(
            session,
            clinic=clinic,
            service=service,
            location=location,
            practitioners=practitioners,
            first_day=first,
            last_day=last,
            now=now,
            ignore_appointment_id=ignore_appointment_id,
        )

    found: list[Slot] | None = None
    nothing = False
    # Whether the days before the week shown may hold free times (the "Earlier week" link).
    # Opened on the first day with any, they hold none.
    earlier = from_day is not None
    if from_day is None:
        # Open on the first day with a free time. The common case costs one search; otherwise
        # only the days the week then reaches past the first search are searched again.
        chunk_start, chunk_end = today, min(today + timedelta(days=FIRST_SEARCH - 1), horizon_day)
        while chunk_start <= horizon_day:
            chunk = search(chunk_start, chunk_end)
            if chunk:
                from_day = chunk[0].start.astimezone(tz).date()
                week_end = min(from_day + timedelta(days=WEEK - 1), horizon_day)
                found = chunk if week_end <= chunk_end else chunk + search(chunk_end + timedelta(days=1), week_end)
                break
            chunk_start = chunk_end + timedelta(days=1)
            chunk_end = min(chunk_start + timedelta(days=SEARCH_CHUNK - 1), horizon_day)
        if from_day is None:
            from_day, nothing = today, True
            found = []
    from_day = max(today, min(from_day, horizon_day))
    last_day = from_day + timedelta(days=WEEK - 1)
    if found is None:
        if earlier and today < from_day < today + timedelta(days=WEEK):
            # Less than a week from today: whether those few days have a free time decides the
            # link, so search from today (the same one search).
            found = search(today, last_day)
            earlier = any(slot.start.astimezone(tz).date() < from_day for slot in found)
        else:
            found = search(from_day, last_day)

    columns = {
        from_day + timedelta(days=i): DayColumn(
            day=from_day + timedelta(days=i),
            label=i18n.format_day(from_day + timedelta(days=i)),
            short_label=i18n.format_day(from_day + timedelta(days=i), short=True),
        )
        for i in range(WEEK)
    }
    seen: set[datetime] = set()
    instants: list[datetime] = []
    clock = i18n.clock_formatter(location.timezone)
    for slot in found:
        local_start = slot.start.astimezone(tz)
        column = columns.get(local_start.date())
        if column is None or slot.start in seen or slot.start in exclude_starts:
            continue  # outside the week, or a second practitioner free at the same time
        seen.add(slot.start)
        instants.append(slot.start)
        value = slot_value(slot.start)
        column.slots.append(
            SlotChoice(
                value=value,
                label=clock(slot.start),
                dom_id=f"slot-{value}",
                start=slot.start,
                practitioner_id=slot.practitioner_id,
                period=_period(local_start),
            )
        )
    previous_from = None
    if earlier and from_day > today:
        previous_from = max(today, from_day - timedelta(days=WEEK))
    next_from = from_day + timedelta(days=WEEK)
    if next_from > horizon_day:
        next_from = None
    label_moments = instants[:1] + instants[-1:] if instants else [datetime.combine(from_day, datetime.min.time(), tz)]
    return Week(
        first_day=from_day,
        last_day=last_day,
        days=list(columns.values()),
        zone_label=i18n.zone_label(location.timezone, label_moments),
        previous_from=previous_from,
        next_from=next_from,
        nothing_until_horizon=nothing,
    )
