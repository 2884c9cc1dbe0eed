"""Free slots from the database: load each practitioner's calendar, hand it to the pure engine.

The engine (``availability``) knows nothing of the database; this module knows nothing of slot
maths. Three queries per search whatever its size: hours, busy time, closures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from booking_service.clinic.models import ClinicSettings, Closure, Location, Practitioner, Service, TimeOff, WorkingHours
from booking_service.scheduling import availability
from booking_service.scheduling.availability import Interval, PractitionerCalendar, Slot, WeeklyHours
from booking_service.scheduling.models import Appointment

MAX_RANGE_DAYS = 62


def booking_window(clinic: ClinicSettings, now: datetime) -> tuple[datetime, datetime]:
    """(not_before, not_after): minimum notice and booking horizon as instants."""
    return now + timedelta(minutes=clinic.min_notice_minutes), now + timedelta(days=clinic.horizon_days)


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

    hours: dict[int, list[WeeklyHours]] = defaultdict(list)
    for row in session.scalars(
        select(WorkingHours).where(
            WorkingHours.practitioner_id.in_(ids),
            WorkingHours.location_id == location.id,
            or_(WorkingHours.valid_from.is_(None), WorkingHours.valid_from <= last_day),
            or_(WorkingHours.valid_until.is_(None), WorkingHours.valid_until >= first_day),
        )
    ):
        hours[row.practitioner_id].append(
            WeeklyHours(
                weekday=row.weekday,
                start=row.start_time,
                end=row.end_time,
                break_start=row.break_start,
                break_end=row.break_end,
                valid_from=row.valid_from,
                valid_until=row.valid_until,
            )
        )

    busy: dict[int, list[Interval]] = defaultdict(list)
    appointment_query = select(Appointment.practitioner_id, Appointment.start_at, Appointment.busy_until).where(
        Appointment.practitioner_id.in_(ids),
        Appointment.status != "cancelled",
        Appointment.start_at < span[1],
        Appointment.busy_until > span[0],
    )
    if ignore_appointment_id is not None:
        appointment_query = appointment_query.where(Appointment.id != ignore_appointment_id)
    for practitioner_id, start, end in session.execute(appointment_query):
        busy[practitioner_id].append(Interval(start, end))
    for practitioner_id, start, end in session.execute(
        select(TimeOff.practitioner_id, TimeOff.start_at, TimeOff.end_at).where(
            TimeOff.practitioner_id.in_(ids), TimeOff.start_at < span[1], TimeOff.end_at > span[0]
        )
    ):
        busy[practitioner_id].append(Interval(start, end))

    closed = frozenset(
        session.scalars(
            select(Closure.day).where(
                or_(Closure.location_id.is_(None), Closure.location_id == location.id),
                Closure.day >= first_day,
                Closure.day <= last_day,
            )
        )
    )
    return [
        PractitionerCalendar(
            practitioner_id=p.id,
            tz=tz,
            hours=tuple(hours[p.id]),
            busy=tuple(busy[p.id]),
            closed_days=closed,
        )
        for p in practitioners
    ]


def engine_options(clinic: ClinicSettings, service: Service, now: datetime) -> dict:
    not_before, not_after = booking_window(clinic, now)
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
) -> list[Slot]:
    """Free slots of ``practitioners`` (merged: "anyone") at ``location`` for those local days."""
    calendars = load_calendars(
        session,
        location=location,
        practitioners=practitioners,
        first_day=first_day,
        last_day=last_day,
        ignore_appointment_id=ignore_appointment_id,
    )
    return availability.free_slots_any(
        calendars, first_day=first_day, last_day=last_day, **engine_options(clinic, service, now)
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
