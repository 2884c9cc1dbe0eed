"""Reading the schedule for staff: the day and week boards, a patient's appointments, and the
free times staff may offer a caller.

Read-only; each function takes a session and plain values. Appointments come with their
patient, practitioner, location and service in the same query (``lazy="joined"``), so a board
costs a fixed number of queries whatever its size.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from booking_service.clinic.models import Closure, Location, Practitioner, TimeOff, WorkingHours
from booking_service.clinic.queries import bookable, get_clinic
from booking_service.clinic.reminder_rules import local_instant
from booking_service.scheduling import availability, slots
from booking_service.scheduling.availability import Slot
from booking_service.scheduling.models import ACTIVE_STATUSES, Appointment
from booking_service.scheduling.operations import appointments_on

WEEK_DAYS = 7


@dataclass(frozen=True)
class DayColumn:
    """One practitioner's appointments of the day, in time order."""

    practitioner: Practitioner
    appointments: list[Appointment]


@dataclass(frozen=True)
class WeekRow:
    """One practitioner's week: ``days[i]`` holds the active appointments of ``monday + i``."""

    practitioner: Practitioner
    days: list[list[Appointment]]

    @property
    def total(self) -> int:
        return sum(len(day) for day in self.days)


def _practitioners_working(
    session: Session, *, location_id: int, first_day: date, last_day: date, practitioner_id: int | None
) -> list[Practitioner]:
    """Active practitioners with working hours at the location on any day of the range."""
    weekdays = {(first_day + timedelta(days=i)).weekday() for i in range(min((last_day - first_day).days + 1, 7))}
    query = (
        select(Practitioner)
        .join(WorkingHours, WorkingHours.practitioner_id == Practitioner.id)
        .where(
            Practitioner.active.is_(True),
            WorkingHours.location_id == location_id,
            WorkingHours.weekday.in_(weekdays),
            or_(WorkingHours.valid_from.is_(None), WorkingHours.valid_from <= last_day),
            or_(WorkingHours.valid_until.is_(None), WorkingHours.valid_until >= first_day),
        )
        .distinct()
    )
    if practitioner_id is not None:
        query = query.where(Practitioner.id == practitioner_id)
    return list(session.scalars(query))


def _merge(working: list[Practitioner], appointments: list[Appointment]) -> list[Practitioner]:
    """Everyone working, plus anyone with an appointment anyway (hours changed since), by id."""
    people = {p.id: p for p in working}
    for appointment in appointments:
        people.setdefault(appointment.practitioner_id, appointment.practitioner)
    return [people[key] for key in sorted(people)]


def day_schedule(
    session: Session,
    day: date,
    *,
    location: Location,
    practitioner_id: int | None = None,
    include_cancelled: bool = False,
) -> list[DayColumn]:
    """The local ``day`` at ``location``: one column per practitioner working there that day or
    having an appointment there, each in time order. Cancelled appointments only on request."""
    found = appointments_on(
        session, day, location_id=location.id, practitioner_id=practitioner_id, tz_name=location.timezone
    )
    if not include_cancelled:
        found = [a for a in found if a.status != "cancelled"]
    working = _practitioners_working(
        session, location_id=location.id, first_day=day, last_day=day, practitioner_id=practitioner_id
    )
    by_practitioner: dict[int, list[Appointment]] = defaultdict(list)
    for appointment in found:
        by_practitioner[appointment.practitioner_id].append(appointment)
    return [DayColumn(p, by_practitioner[p.id]) for p in _merge(working, found)]


def appointments_between(
    session: Session,
    first_day: date,
    last_day: date,
    *,
    location: Location,
    practitioner_id: int | None = None,
    include_cancelled: bool = False,
) -> list[Appointment]:
    """Appointments at ``location`` starting on the local days first_day..last_day, in time order."""
    tz = ZoneInfo(location.timezone)
    start = availability.local_day_bounds(first_day, tz).start
    end = availability.local_day_bounds(last_day, tz).end
    query = select(Appointment).where(
        Appointment.location_id == location.id, Appointment.start_at >= start, Appointment.start_at < end
    )
    if practitioner_id is not None:
        query = query.where(Appointment.practitioner_id == practitioner_id)
    if not include_cancelled:
        query = query.where(Appointment.status != "cancelled")
    return list(session.scalars(query.order_by(Appointment.start_at, Appointment.practitioner_id)))


def week_schedule(
    session: Session, monday: date, *, location: Location, practitioner_id: int | None = None
) -> list[WeekRow]:
    """The seven local days from ``monday`` at ``location``: one row per practitioner working
    there that week or having an appointment there; cancelled appointments are left out."""
    sunday = monday + timedelta(days=WEEK_DAYS - 1)
    found = appointments_between(session, monday, sunday, location=location, practitioner_id=practitioner_id)
    working = _practitioners_working(
        session, location_id=location.id, first_day=monday, last_day=sunday, practitioner_id=practitioner_id
    )
    tz = ZoneInfo(location.timezone)
    cells: dict[int, list[list[Appointment]]] = defaultdict(lambda: [[] for _ in range(WEEK_DAYS)])
    for appointment in found:
        index = (appointment.start_at.astimezone(tz).date() - monday).days
        cells[appointment.practitioner_id][index].append(appointment)
    return [WeekRow(p, cells[p.id]) for p in _merge(working, found)]


def appointments_of(session: Session, patient_id: int, *, practitioner_id: int | None = None) -> list[Appointment]:
    """Every appointment of the patient (with ``practitioner_id``: only with them), newest first."""
    query = select(Appointment).where(Appointment.patient_id == patient_id)
    if practitioner_id is not None:
        query = query.where(Appointment.practitioner_id == practitioner_id)
    return list(session.scalars(query.order_by(Appointment.start_at.desc(), Appointment.id.desc())).unique())


def reschedule_options(
    session: Session,
    appointment: Appointment,
    *,
    now: datetime,
    days: int = 14,
    practitioner: Practitioner | None = None,
    location: Location | None = None,
    first_day: date | None = None,
) -> list[Slot]:
    """Free times to move ``appointment`` to: same service, with ``practitioner`` at
    ``location`` (default: its own), for ``days`` local days from ``first_day`` (default and
    earliest: today). Its own current time is left out only with its own practitioner and
    location: the same time with a colleague is a move (a practitioner's day handed over)."""
    location = location or appointment.location
    practitioner = practitioner or appointment.practitioner
    today = slots.local_date(now, location)
    first = max(first_day or today, today)
    found = slots.find_slots(
        session,
        clinic=get_clinic(session),
        service=appointment.service,
        location=location,
        practitioners=[practitioner],
        first_day=first,
        last_day=first + timedelta(days=days - 1),
        now=now,
        ignore_appointment_id=appointment.id,
        staff=True,
    )
    if (practitioner.id, location.id) != (appointment.practitioner_id, appointment.location_id):
        return found
    return [slot for slot in found if slot.start != appointment.start_at]


def staff_slots(
    session: Session,
    *,
    service_id: int,
    location_id: int,
    practitioner_id: int | None,
    first_day: date,
    days: int,
    now: datetime,
) -> list[Slot]:
    """Free times a staff member may book for a caller: any active service (staff-only ones
    too) at the location, with one practitioner or anyone, for ``days`` local days from
    ``first_day``, from now on (no minimum notice: walk-ins; see ``slots.booking_window``).
    "Anyone" gives one slot per start (the first practitioner free then).

    Raises NotFound (unknown service or location) or ValidationFailed (that practitioner does
    not offer the service there), like :func:`booking_service.clinic.queries.bookable`.
    """
    service, location, candidates = bookable(
        session, service_id=service_id, location_id=location_id, practitioner_id=practitioner_id, staff=True
    )
    found = slots.find_slots(
        session,
        clinic=get_clinic(session),
        service=service,
        location=location,
        practitioners=candidates,
        first_day=first_day,
        last_day=first_day + timedelta(days=days - 1),
        now=now,
        staff=True,
    )
    unique: dict[datetime, Slot] = {}
    for slot in found:
        unique.setdefault(slot.start, slot)
    return list(unique.values())


def patients_of(practitioner_id: int) -> Select:
    """The ids of the patients who have (or had) an appointment with the practitioner (a
    subquery for ``patients.queries.search_patients(among=...)``)."""
    return select(Appointment.patient_id).where(Appointment.practitioner_id == practitioner_id)


def is_patient_of(session: Session, patient_id: int, practitioner_id: int) -> bool:
    """True when the patient has (or had) any appointment with the practitioner."""
    query = select(Appointment.id).where(
        Appointment.patient_id == patient_id, Appointment.practitioner_id == practitioner_id
    )
    return session.scalars(query.limit(1)).first() is not None


# --- appointments in the way of time off and closures -------------------------------------------


def _active_appointments():
    return select(Appointment).where(Appointment.status.in_(ACTIVE_STATUSES)).order_by(Appointment.start_at)


def time_off_conflicts(session: Session, time_off: TimeOff) -> list[Appointment]:
    """The practitioner's active appointments (any location) whose visit overlaps the time off."""
    return list(
        session.scalars(
            _active_appointments().where(
                Appointment.practitioner_id == time_off.practitioner_id,
                Appointment.start_at < time_off.end_at,
                Appointment.end_at > time_off.start_at,
            )
        )
    )


def outside_weekly_hours(
    session: Session, practitioner_id: int, location_id: int, *, now: datetime
) -> list[Appointment]:
    """The practitioner's upcoming active appointments at the location that their weekly hours
    there do not cover: the visit (not its buffer) lies outside every working period of its
    local day, breaks and validity dates counted. For the desk to move after the hours change:
    changing hours never moves a booking. Visits staff placed outside the hours on purpose (with
    a reason) are left out, and so are closed days and time off, which list their own."""
    location = session.get(Location, location_id)
    upcoming = session.scalars(
        _active_appointments().where(
            Appointment.practitioner_id == practitioner_id,
            Appointment.location_id == location_id,
            Appointment.start_at > now,
            Appointment.outside_hours_reason.is_(None),
        )
    ).all()
    if location is None or not upcoming:
        return []
    tz = ZoneInfo(location.timezone)
    first, last = upcoming[0].start_at.astimezone(tz).date(), upcoming[-1].start_at.astimezone(tz).date()
    hours = slots.stored_weekly_hours(
        session, location_id=location_id, practitioner_ids=[practitioner_id], first_day=first, last_day=last
    )
    calendar = availability.PractitionerCalendar(practitioner_id, tz, hours[practitioner_id])
    periods = availability.working_intervals(calendar, first, last)
    starts = [period.start for period in periods]

    def covered(appointment: Appointment) -> bool:
        index = bisect.bisect_right(starts, appointment.start_at) - 1  # the last period starting by then
        return index >= 0 and periods[index].end >= appointment.end_at

    return [appointment for appointment in upcoming if not covered(appointment)]


def closure_conflicts(session: Session, closure: Closure) -> list[Appointment]:
    """Active appointments on the closed local day at the closed location (every location
    when the closure is clinic-wide), each location's day in its own zone."""
    locations = (
        [session.get(Location, closure.location_id)]
        if closure.location_id is not None
        else session.scalars(select(Location)).all()
    )
    conditions = []
    for location in locations:
        tz = ZoneInfo(location.timezone)
        day_start = local_instant(closure.day, time(0), tz)
        day_end = local_instant(closure.day + timedelta(days=1), time(0), tz)
        conditions.append(
            (Appointment.location_id == location.id)
            & (Appointment.start_at < day_end)
            & (Appointment.end_at > day_start)
        )
    if not conditions:
        return []
    return list(session.scalars(_active_appointments().where(or_(*conditions))))
