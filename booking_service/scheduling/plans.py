"""Treatment plans: a series of visits checked together and booked in one piece.

"6 follow-ups, weekly, Tuesdays at 10:00": the visits are computed in the location's wall time
(:func:`occurrences`, so 10:00 stays 10:00 across a DST change), every one is checked against
the practitioners' calendars with the slot engine before anything is written (:func:`check`),
and only when none is in the way are they all inserted, with the plan, in one savepoint
(:func:`book_plan`). A visit in the way is a :class:`Conflict` with the nearest free
alternatives; :class:`~booking_service.errors.PlanConflicts` carries them all and nothing is
stored. Like ``scheduling.operations`` this module plans no messages and never commits:
``usecases.plans`` adds the one confirmation, the reminders and the audit trail.

Races: on SQLite the write lock (``BEGIN IMMEDIATE``) is held from the check to the commit, so
nothing can slip in between. On PostgreSQL the exclusion constraints have the last word: when a
concurrent booking takes a time after the check, the insert is refused, the savepoint rolls the
whole plan back, and the check runs again against what was committed; it then names the visit
in the way. Two overlapping plans booked at once therefore never overlap: one is booked whole,
the other is answered with its conflicts and leaves nothing behind.

Staff book plans, so the clinic's minimum notice (an online rule) does not apply, and a plan
may run up to :data:`PLAN_HORIZON_DAYS` ahead even when online booking opens fewer days ahead.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from booking_service import errors
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service
from booking_service.clinic.queries import bookable, get_clinic
from booking_service.db import write_transaction
from booking_service.errors import InvalidTransition, NotFound, PlanConflicts, ValidationFailed
from booking_service.patients.models import Patient
from booking_service.scheduling import availability, operations, slots
from booking_service.scheduling.availability import Interval, PractitionerCalendar, Slot
from booking_service.scheduling.models import (
    ACTIVE_STATUSES,
    PLAN_MAX_EVERY_DAYS,
    PLAN_MAX_VISITS,
    Appointment,
    TreatmentPlan,
)

# How far ahead staff may book a plan's visits (a year of weekly visits fits).
PLAN_HORIZON_DAYS = 400
# Alternatives for a visit in the way: its own day and the days after it, up to this many.
ALTERNATIVE_DAYS = 6
ALTERNATIVES = 5
# Inserts refused by a concurrent booking the check could not yet see: check and try again.
ATTEMPTS = 4
# Why a visit cannot be booked as asked (the API's codes).
TAKEN = "slot_taken"  # a time on someone's grid, but nobody is free then
UNAVAILABLE = "slot_unavailable"  # not a bookable time at all (closed, off the grid, too far)
PATIENT_BUSY = "patient_overlap"  # the patient has another visit then
# Statuses whose visits count as still to come (not done, missed or cancelled).
CANCELLABLE = ("booked", "confirmed")


@dataclass(frozen=True)
class PlanRequest:
    """What staff asked for. Either ``starts`` (every visit, as given), or ``first_start`` and
    ``count`` with ``every_days`` (default 7) or ``weekdays`` (0 = Monday: weekly on those days,
    at the time of ``first_start``). ``practitioner_id`` None: any practitioner, one free per visit.
    """

    patient_id: int
    service_id: int
    location_id: int
    practitioner_id: int | None = None
    first_start: datetime | None = None
    count: int | None = None
    every_days: int | None = None
    weekdays: tuple[int, ...] | None = None
    starts: tuple[datetime, ...] | None = None
    source: str = "staff"  # api, staff
    user_id: int | None = None


@dataclass(frozen=True)
class Visit:
    """One visit of the plan, as it would be booked."""

    index: int
    start: datetime
    end: datetime
    practitioner_id: int | None  # None when the visit is in conflict
    conflict: str | None = None  # TAKEN, UNAVAILABLE or PATIENT_BUSY
    alternatives: tuple[Slot, ...] = ()

    @property
    def ok(self) -> bool:
        return self.conflict is None


@dataclass(frozen=True)
class PlanCheck:
    """Every visit of the plan, in the order asked for, each free (with its practitioner) or in
    conflict (with alternatives)."""

    visits: tuple[Visit, ...]
    service: Service
    location: Location
    patient: Patient

    @property
    def conflicts(self) -> list[Visit]:
        return [v for v in self.visits if not v.ok]


@dataclass(frozen=True)
class BookedPlan:
    plan: TreatmentPlan
    appointments: list[Appointment]  # in time order
    manage_tokens: dict[int, str]  # appointment id -> its manage token


# --------------------------------------------------------------------------- the visits' times


def occurrences(
    first_start: datetime,
    *,
    count: int,
    tz: ZoneInfo,
    every_days: int | None = None,
    weekdays: tuple[int, ...] | None = None,
) -> list[datetime]:
    """The UTC starts of a series: ``count`` visits at the local wall time of ``first_start``,
    every ``every_days`` days from its local date, or (``weekdays``) on each of those weekdays
    from that date on (the first date counts only if it is one of them). Each local start is
    converted to UTC on its own, so the wall time holds across DST changes.
    """
    local = first_start.astimezone(tz)
    wall = local.time().replace(tzinfo=None, fold=0)
    if weekdays:
        wanted = set(weekdays)
        days: list[date] = []
        day = local.date()
        while len(days) < count:
            if day.weekday() in wanted:
                days.append(day)
            day += timedelta(days=1)
    else:
        step = every_days or 7
        days = [local.date() + timedelta(days=i * step) for i in range(count)]
    return [datetime.combine(day, wall, tzinfo=tz).astimezone(UTC) for day in days]


def requested_starts(request: PlanRequest, tz: ZoneInfo) -> list[datetime]:
    """The starts of every visit (UTC, in the order asked for). Raises ValidationFailed naming
    the field to fix: ``count``, ``every_days``, ``weekdays``, ``first_start`` or ``starts``."""
    if request.starts is not None:
        given = len(request.starts)
        if not 1 <= given <= PLAN_MAX_VISITS:
            raise _invalid("starts", errors.PLAN_COUNT_INVALID, low=1, high=PLAN_MAX_VISITS)
        if request.count is not None and request.count != given:
            raise _invalid("count", errors.PLAN_STARTS_MISMATCH, count=request.count, given=given)
        for index, start in enumerate(request.starts):
            if start.tzinfo is None:
                raise _invalid(f"starts.{index}", errors.TIME_NEEDS_ZONE)
        return [start.astimezone(UTC) for start in request.starts]
    if request.first_start is None:
        raise _invalid("first_start", errors.PLAN_FIRST_START_MISSING)
    if request.first_start.tzinfo is None:
        raise _invalid("first_start", errors.TIME_NEEDS_ZONE)
    if request.count is None or not 1 <= request.count <= PLAN_MAX_VISITS:
        raise _invalid("count", errors.PLAN_COUNT_INVALID, low=1, high=PLAN_MAX_VISITS)
    if request.weekdays is not None:
        if not request.weekdays or any(not 0 <= d <= 6 for d in request.weekdays):
            raise _invalid("weekdays", errors.PLAN_WEEKDAYS_MISSING)
        return occurrences(request.first_start, count=request.count, tz=tz, weekdays=request.weekdays)
    every = 7 if request.every_days is None else request.every_days
    if not 1 <= every <= PLAN_MAX_EVERY_DAYS:
        raise _invalid("every_days", errors.PLAN_EVERY_DAYS_INVALID, low=1, high=PLAN_MAX_EVERY_DAYS)
    return occurrences(request.first_start, count=request.count, tz=tz, every_days=every)


def _invalid(field: str, code: str, **params) -> ValidationFailed:
    return ValidationFailed(errors.PLAN_INVALID, fields={field: code}, field_params={field: params} if params else None)


def _refuse_overlapping(starts: list[datetime], duration: timedelta, *, explicit: bool) -> None:
    """One person cannot be in two visits at once: two starts closer than a visit's length."""
    ordered = sorted(range(len(starts)), key=lambda i: starts[i])
    for before, after in pairwise(ordered):
        if starts[after] < starts[before] + duration:
            raise _invalid(f"starts.{after}" if explicit else "first_start", errors.PLAN_STARTS_OVERLAP)


# --------------------------------------------------------------------------- checking


def engine_options(clinic: ClinicSettings, service: Service, now: datetime) -> dict:
    """The slot engine's rules for a plan: the clinic's grid and buffers, from now (staff book
    without the online minimum notice) to the plan horizon (or the online one, if longer)."""
    options = slots.engine_options(clinic, service, now)
    options["not_before"] = now
    options["not_after"] = max(options["not_after"], now + timedelta(days=PLAN_HORIZON_DAYS))
    return options


def check(session: Session, request: PlanRequest, *, now: datetime) -> PlanCheck:
    """Every visit of ``request`` checked against the calendars as they stand, writing nothing.

    A visit is free when its practitioner (or, for "any", one of the practitioners offering the
    service there) is free at its start by the slot engine's rules and the patient has no other
    visit then; visits of the plan count as busy for the ones after them. With "any", the
    practitioner free for the most visits is kept for each visit they can take (continuity of
    care), another free one otherwise. Visits in conflict carry up to five alternatives: the
    same practitioner first, then the same day and the days after it, nearest first.

    Raises NotFound (service, location or patient unknown), ValidationFailed (a practitioner
    who does not offer the service there, an erased patient, or the request's own fields).
    """
    clinic = get_clinic(session)
    service, location, candidates = bookable(
        session,
        service_id=request.service_id,
        location_id=request.location_id,
        practitioner_id=request.practitioner_id,
        staff=True,
    )
    patient = session.get(Patient, request.patient_id)
    if patient is None:
        raise NotFound(errors.PATIENT_NOT_FOUND, fields={"patient_id": errors.PATIENT_NOT_FOUND})
    if patient.erased_at is not None:
        raise _invalid("patient_id", errors.PLAN_PATIENT_ERASED)
    tz = ZoneInfo(location.timezone)
    starts = requested_starts(request, tz)
    duration = timedelta(minutes=service.duration_minutes)
    _refuse_overlapping(starts, duration, explicit=request.starts is not None)
    options = engine_options(clinic, service, now)
    buffer = options["buffer_after"]

    bookable_starts = [s for s in starts if options["not_before"] <= s <= options["not_after"]]
    calendars: list[PractitionerCalendar] = []
    patient_busy: list[tuple[datetime, datetime]] = []
    if bookable_starts and candidates:
        # Every visit's day (kept between today and the horizon) and the days after it where
        # alternatives are looked for: busy time outside the loaded days would look free.
        today, horizon = now.astimezone(tz).date(), options["not_after"].astimezone(tz).date()
        days = [min(max(s.astimezone(tz).date(), today), horizon) for s in starts]
        first_day, last_day = min(days), max(days) + timedelta(days=ALTERNATIVE_DAYS)
        calendars = slots.load_calendars(
            session, location=location, practitioners=candidates, first_day=first_day, last_day=last_day
        )
        span = availability.local_day_bounds(first_day, tz).start, availability.local_day_bounds(last_day, tz).end
        patient_busy = _patient_busy(session, patient.id, *span)

    preferred = _preferred(calendars, bookable_starts, options)
    tentative: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    decided: dict[int, Visit] = {}
    for index in sorted(range(len(starts)), key=lambda i: starts[i]):
        start = starts[index]
        end = start + duration
        if any(b_start < end and start < b_end for b_start, b_end in patient_busy):
            decided[index] = Visit(index, start, end, None, PATIENT_BUSY)
            continue
        if not options["not_before"] <= start <= options["not_after"] or not calendars:
            decided[index] = Visit(index, start, end, None, UNAVAILABLE)
            continue
        free = [c for c in calendars if availability.is_free(_with(c, tentative), start, **options)]
        if not free:
            on_grid = any(availability.is_free(_bare(c), start, **options) for c in calendars)
            decided[index] = Visit(index, start, end, None, TAKEN if on_grid else UNAVAILABLE)
            continue
        day = start.astimezone(tz).date()
        chosen = next((c for c in free if c.practitioner_id == preferred), None) or min(
            free, key=lambda c: (_busy_on(c, day, tz), c.practitioner_id)
        )
        tentative[chosen.practitioner_id].append((start, end + buffer))
        decided[index] = Visit(index, start, end, chosen.practitioner_id)

    visits = [decided[i] for i in range(len(starts))]
    if any(not v.ok for v in visits):
        booked_times = [(v.start, v.end) for v in visits if v.ok]
        visits = [
            v
            if v.ok
            else replace(
                v,
                alternatives=_alternatives(
                    calendars,
                    tentative,
                    around=v.start,
                    tz=tz,
                    preferred=preferred,
                    options=options,
                    busy=patient_busy + booked_times,
                    duration=duration,
                ),
            )
            for v in visits
        ]
    return PlanCheck(visits=tuple(visits), service=service, location=location, patient=patient)


def _patient_busy(session: Session, patient_id: int, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    rows = session.execute(
        select(Appointment.start_at, Appointment.end_at).where(
            Appointment.patient_id == patient_id,
            Appointment.status != "cancelled",
            Appointment.start_at < end,
            Appointment.end_at > start,
        )
    )
    return [(row.start_at, row.end_at) for row in rows]


def _with(
    calendar: PractitionerCalendar, tentative: dict[int, list[tuple[datetime, datetime]]]
) -> PractitionerCalendar:
    """The calendar with the plan's own visits decided so far as busy time."""
    extra = tentative.get(calendar.practitioner_id)
    if not extra:
        return calendar
    return replace(calendar, busy=calendar.busy + tuple(Interval(s, e) for s, e in extra))


def _bare(calendar: PractitionerCalendar) -> PractitionerCalendar:
    """The calendar without any busy time: to tell a taken time from one that is not a slot."""
    return PractitionerCalendar(
        practitioner_id=calendar.practitioner_id, tz=calendar.tz, hours=calendar.hours, closed_days=calendar.closed_days
    )


def _busy_on(calendar: PractitionerCalendar, day: date, tz: ZoneInfo) -> int:
    bounds = availability.local_day_bounds(day, tz)
    return sum(1 for b in calendar.busy if b.start < bounds.end and bounds.start < b.end)


def _preferred(calendars: list[PractitionerCalendar], starts: list[datetime], options: dict) -> int | None:
    """The practitioner free for the most of the plan's starts (ties: the lowest id)."""
    if not calendars:
        return None
    if len(calendars) == 1:
        return calendars[0].practitioner_id
    scores = {c.practitioner_id: sum(availability.is_free(c, s, **options) for s in starts) for c in calendars}
    return min(scores, key=lambda pid: (-scores[pid], pid))


def _alternatives(
    calendars: list[PractitionerCalendar],
    tentative: dict[int, list[tuple[datetime, datetime]]],
    *,
    around: datetime,
    tz: ZoneInfo,
    preferred: int | None,
    options: dict,
    busy: list[tuple[datetime, datetime]],
    duration: timedelta,
) -> tuple[Slot, ...]:
    """Up to :data:`ALTERNATIVES` free starts for a visit in conflict at ``around``: on its own
    day or the days after it, where neither the patient (``busy``: their other visits and the
    plan's own) nor the plan's practitioners are taken; the preferred practitioner's first, then
    the nearest day, then the nearest time. Returned in that order."""
    if not calendars:
        return ()
    day = around.astimezone(tz).date()
    found = availability.free_slots_any(
        [_with(c, tentative) for c in calendars],
        first_day=day,
        last_day=day + timedelta(days=ALTERNATIVE_DAYS),
        **options,
    )
    usable = [
        s
        for s in found
        if s.start != around and not any(b_start < s.start + duration and s.start < b_end for b_start, b_end in busy)
    ]

    def rank(s: Slot) -> tuple:
        return (
            s.practitioner_id != preferred,
            (s.start.astimezone(tz).date() - day).days,
            abs((s.start - around).total_seconds()),
        )

    chosen: dict[datetime, Slot] = {}
    for s in sorted(usable, key=rank):
        if s.start not in chosen:
            chosen[s.start] = s
        if len(chosen) == ALTERNATIVES:
            break
    return tuple(sorted(chosen.values(), key=lambda s: (s.practitioner_id != preferred, s.start)))


# --------------------------------------------------------------------------- booking


def book_plan(session: Session, request: PlanRequest, *, secret_key: str, now: datetime) -> BookedPlan:
    """Check every visit, then book them all with the plan, in one piece (no messages: see
    ``usecases.plans.book_plan``).

    Raises PlanConflicts (with every visit in the way and its alternatives) and nothing of the
    plan is written; also the errors of :func:`check`. The writes are made in a savepoint, so
    the caller's earlier writes in the same transaction stay whatever happens.
    """
    write_transaction(session)
    last: PlanCheck | None = None
    for _attempt in range(ATTEMPTS):
        last = check(session, request, now=now)
        if last.conflicts:
            raise PlanConflicts(errors.PLAN_CONFLICTS, conflicts=last.conflicts)
        try:
            return _insert(session, request, last, secret_key=secret_key, now=now)
        except (IntegrityError, OperationalError) as exc:
            if operations.refused_overlap(exc) is None:
                raise
            # A concurrent booking won a time after the check: check again against it.
    assert last is not None
    raise PlanConflicts(
        errors.PLAN_CONFLICTS,
        conflicts=[replace(v, practitioner_id=None, conflict=TAKEN) for v in last.visits],
    )


def _insert(
    session: Session, request: PlanRequest, checked: PlanCheck, *, secret_key: str, now: datetime
) -> BookedPlan:
    chosen = {v.practitioner_id for v in checked.visits}
    practitioners = {p.id: p for p in session.scalars(select(Practitioner).where(Practitioner.id.in_(chosen)))}
    patient = checked.patient
    with session.begin_nested():
        plan = TreatmentPlan(
            patient_id=patient.id,
            service_id=checked.service.id,
            location_id=checked.location.id,
            practitioner_id=request.practitioner_id,
            count=len(checked.visits),
            every_days=_every_days(request),
            weekdays=sorted(set(request.weekdays)) if request.weekdays else None,
            source=request.source,
            created_by_user_id=request.user_id,
            created_at=now,
        )
        session.add(plan)
        session.flush()
        booked: list[Appointment] = []
        manage_tokens: dict[int, str] = {}
        pending: list[tuple[Appointment, str]] = []
        for visit in sorted(checked.visits, key=lambda v: v.start):
            practitioner = practitioners[visit.practitioner_id]
            row, token = operations.new_appointment(
                patient=patient,
                practitioner=practitioner,
                location=checked.location,
                service=checked.service,
                start=visit.start,
                source=request.source,
                language=patient.language,
                secret_key=secret_key,
                now=now,
                plan_id=plan.id,
            )
            appointment = Appointment(
                **row,
                patient=patient,
                practitioner=practitioner,
                location=checked.location,
                service=checked.service,
            )
            session.add(appointment)
            pending.append((appointment, token))
        session.flush()
        for appointment, token in pending:
            booked.append(appointment)
            manage_tokens[appointment.id] = token
    return BookedPlan(plan=plan, appointments=booked, manage_tokens=manage_tokens)


def _every_days(request: PlanRequest) -> int | None:
    """The pattern asked for, kept also when the starts were given (some moved off it)."""
    if request.weekdays:
        return None
    if request.starts is None:
        return request.every_days or 7
    return request.every_days


# --------------------------------------------------------------------------- reading and ending


@dataclass(frozen=True)
class PlanProgress:
    """Where a plan stands: visits done (completed), left (still to come), missed (no-show),
    cancelled; ``status`` is ``active``, ``finished`` (nothing left) or ``cancelled``."""

    done: int
    left: int
    missed: int
    cancelled: int
    status: str


def get_plan(session: Session, plan_id: int) -> TreatmentPlan:
    """Raises NotFound for an unknown id."""
    plan = session.get(TreatmentPlan, plan_id)
    if plan is None:
        raise NotFound(errors.PLAN_NOT_FOUND)
    return plan


def progress(plan: TreatmentPlan) -> PlanProgress:
    statuses = [a.status for a in plan.appointments]
    left = sum(s in ACTIVE_STATUSES for s in statuses)
    status = "cancelled" if plan.cancelled_at is not None else ("active" if left else "finished")
    return PlanProgress(
        done=statuses.count("completed"),
        left=left,
        missed=statuses.count("no_show"),
        cancelled=statuses.count("cancelled"),
        status=status,
    )


def plans_of(session: Session, patient_id: int, *, practitioner_id: int | None = None) -> list[TreatmentPlan]:
    """The patient's plans, newest first; with ``practitioner_id``, only those booked with that
    practitioner or holding a visit with them."""
    query = select(TreatmentPlan).where(TreatmentPlan.patient_id == patient_id)
    if practitioner_id is not None:
        query = query.where(is_plan_of(practitioner_id))
    return list(session.scalars(query.order_by(TreatmentPlan.created_at.desc(), TreatmentPlan.id.desc())))


def is_plan_of(practitioner_id: int):
    """SQL condition: the plan is the practitioner's (booked with them, or a visit with them)."""
    return (TreatmentPlan.practitioner_id == practitioner_id) | TreatmentPlan.id.in_(
        select(Appointment.plan_id).where(Appointment.practitioner_id == practitioner_id)
    )


def plan_belongs_to(session: Session, plan_id: int, practitioner_id: int) -> bool:
    query = select(TreatmentPlan.id).where(TreatmentPlan.id == plan_id, is_plan_of(practitioner_id))
    return session.scalars(query).first() is not None


def upcoming(session: Session, plan_id: int, *, now: datetime) -> list[Appointment]:
    """The plan's visits still to come that can be cancelled (booked or confirmed, not started)."""
    return list(
        session.scalars(
            select(Appointment)
            .where(Appointment.plan_id == plan_id, Appointment.status.in_(CANCELLABLE), Appointment.start_at > now)
            .order_by(Appointment.start_at)
        )
    )


def end_plan(session: Session, plan_id: int, *, now: datetime, user_id: int | None) -> tuple[TreatmentPlan, list[int]]:
    """Mark the plan cancelled and return the ids of its visits still to come, for the use case
    to cancel one by one (``usecases.plans.cancel_rest``). Raises NotFound, or InvalidTransition
    when no visit is left to cancel."""
    write_transaction(session)
    plan = get_plan(session, plan_id)
    ids = [a.id for a in upcoming(session, plan_id, now=now)]
    if not ids:
        raise InvalidTransition(errors.PLAN_NOTHING_LEFT)
    plan.cancelled_at = now
    plan.cancelled_by_user_id = user_id
    session.flush()
    return plan, ids
