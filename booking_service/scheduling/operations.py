"""The appointment's own changes: book a slot, move, cancel, change status.

Each operation takes plain values and a session and changes appointments *without committing*
(the edge commits) and without planning messages: scheduling knows nothing of messaging or the
waitlist. The use-case layer (``booking_service.usecases.booking``) calls these and plans the
outbox rows in the same transaction; callers use that layer. The write lock
(:func:`booking_service.db.write_transaction`) is taken here.

Double booking is impossible because the database refuses it (an exclusion constraint on
PostgreSQL, a trigger under ``BEGIN IMMEDIATE`` on SQLite); the Python re-check before the insert
exists to give friendly errors (taken vs. not a slot) and alternatives.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from booking_service import errors
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service
from booking_service.clinic.queries import bookable, get_clinic
from booking_service.db import has_written, insert_instance, is_sqlite, write_transaction
from booking_service.errors import (
    InvalidTransition,
    LateCancellationBlocked,
    NotFound,
    PatientBusy,
    SlotTaken,
    SlotUnavailable,
    ValidationFailed,
)
from booking_service.patients.models import Patient
from booking_service.patients.operations import PatientDetails, clean_details, find_or_create_patient
from booking_service.scheduling import availability, slots, tokens
from booking_service.scheduling.models import ACTIVE_STATUSES, RED_FLAGS, Appointment

# Allowed status changes. Completed, no-show and cancelled are final, except that a no-show can
# be undone by checking the patient in (they arrived late).
TRANSITIONS: dict[str, frozenset[str]] = {
    "booked": frozenset({"confirmed", "checked_in", "completed", "no_show", "cancelled"}),
    "confirmed": frozenset({"checked_in", "completed", "no_show", "cancelled"}),
    "checked_in": frozenset({"completed"}),
    "no_show": frozenset({"checked_in"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}
# What staff may ask for (the API's status change).
SETTABLE_STATUSES = ("confirmed", "checked_in", "completed", "no_show", "cancelled")
# Check-in opens this long before the start; no-show and completed only once it has started.
CHECK_IN_OPENS = timedelta(hours=2)
# A manage link keeps showing the booking for this long after the visit (then: unknown link).
TOKEN_LIFETIME_AFTER_END = timedelta(days=30)
ALTERNATIVES = 5
# Why staff placed an appointment outside the free times: a short sentence, staff-only.
MAX_OUTSIDE_HOURS_REASON = 500
# PostgreSQL: deadlock detected, serialization failure.
DEADLOCK_STATES = frozenset({"40P01", "40001"})


@dataclass(frozen=True)
class BookingRequest:
    service_id: int
    location_id: int
    start: datetime
    patient: PatientDetails
    practitioner_id: int | None = None  # None: the first available practitioner
    source: str = "online"  # online, api, staff
    intake_reason: str | None = None
    red_flags: dict[str, bool] = field(default_factory=dict)
    # Recorded on each consent the booking grants (CASL ledger); None: the same as ``source``.
    consent_source: str | None = None
    # Staff only (``source="staff"``): why the start may be a time that is not one of the free
    # times (see :func:`_check_staff_start`). Ignored for other sources.
    outside_hours_reason: str | None = None


@dataclass(frozen=True)
class Booked:
    appointment: Appointment
    manage_token: str


@dataclass(frozen=True)
class Moved:
    appointment: Appointment
    old_start: datetime
    old_practitioner_id: int | None = None
    old_location_id: int | None = None


@dataclass(frozen=True)
class StatusChanged:
    appointment: Appointment
    old_status: str


def _alternatives(
    session: Session,
    *,
    clinic: ClinicSettings,
    service: Service,
    location: Location,
    practitioners: list[Practitioner],
    around: datetime,
    now: datetime,
    ignore_appointment_id: int | None = None,
    staff: bool = False,
) -> list[availability.Slot]:
    day = slots.local_date(around, location)
    found = slots.find_slots(
        session,
        clinic=clinic,
        service=service,
        location=location,
        practitioners=practitioners,
        first_day=day - timedelta(days=3),
        last_day=day + timedelta(days=7),
        now=now,
        ignore_appointment_id=ignore_appointment_id,
        staff=staff,
    )
    return slots.nearest_slots(found, around, ALTERNATIVES)


def _check_start(
    session: Session,
    *,
    clinic: ClinicSettings,
    service: Service,
    location: Location,
    candidates: list[Practitioner],
    start: datetime,
    now: datetime,
    ignore_appointment_id: int | None = None,
    staff: bool = False,
) -> Practitioner:
    """The practitioner (of ``candidates``) free at ``start``, the least busy that day first;
    ``staff``: in the window staff book in (no minimum notice: a walk-in can be booked now).

    Raises SlotTaken when ``start`` is on the grid of someone's hours but nobody is free then,
    SlotUnavailable when it is not a slot at all. Both carry nearby alternatives.
    """
    if start.tzinfo is None:
        raise ValidationFailed(errors.START_NEEDS_OFFSET, fields={"start": errors.TIME_NEEDS_ZONE})
    if not now - timedelta(days=366) < start < now + timedelta(days=3660):
        # Far outside any horizon: refuse before date arithmetic could overflow.
        raise SlotUnavailable(fields={"start": errors.START_NOT_A_SLOT}, alternatives=[])
    day = slots.local_date(start, location)
    calendars = slots.load_calendars(
        session,
        location=location,
        practitioners=candidates,
        first_day=day,
        last_day=day,
        ignore_appointment_id=ignore_appointment_id,
    )
    options = slots.engine_options(clinic, service, now, staff=staff)
    free = [c for c in calendars if availability.is_free(c, start, **options)]
    if free:
        chosen = min(free, key=lambda c: (len(c.busy), c.practitioner_id))
        return next(p for p in candidates if p.id == chosen.practitioner_id)
    on_grid = any(
        availability.is_free(
            availability.PractitionerCalendar(
                practitioner_id=c.practitioner_id, tz=c.tz, hours=c.hours, closed_days=c.closed_days
            ),
            start,
            **options,
        )
        for c in calendars
    )
    alternatives = _alternatives(
        session,
        clinic=clinic,
        service=service,
        location=location,
        practitioners=candidates,
        around=start,
        now=now,
        ignore_appointment_id=ignore_appointment_id,
        staff=staff,
    )
    if on_grid:
        raise SlotTaken(alternatives=alternatives)
    raise SlotUnavailable(fields={"start": errors.START_NOT_A_SLOT}, alternatives=alternatives)


def _clean_outside_hours_reason(raw: str | None) -> str | None:
    text = " ".join((raw or "").split())
    if len(text) > MAX_OUTSIDE_HOURS_REASON:
        raise ValidationFailed(
            errors.INVALID,
            fields={"outside_hours_reason": errors.REASON_TOO_LONG},
            field_params={"outside_hours_reason": {"limit": MAX_OUTSIDE_HOURS_REASON}},
        )
    return text or None


def _check_staff_start(
    session: Session,
    *,
    clinic: ClinicSettings,
    service: Service,
    location: Location,
    candidates: list[Practitioner],
    chosen: Practitioner | None,
    start: datetime,
    now: datetime,
    reason: str | None,
    ignore_appointment_id: int | None = None,
) -> tuple[Practitioner, str | None]:
    """Staff's check of a start: (the practitioner, the outside-hours reason to record or None).

    One of the free times is booked as for anyone, and no reason is kept. Any other time is
    staff's call: with a reason they may place the appointment off the slot grid, outside the
    practitioner's working hours or inside the minimum notice, with one chosen practitioner
    (``chosen``), but never in the past, on a day the location is closed, or over the
    practitioner's other appointments (with their buffers) or time off; the database's overlap
    guards still refuse an overlap that slips past this check.

    Raises what :func:`_check_start` raises for a start that is taken, or far outside any
    horizon; ValidationFailed for a reason too long or, with a reason, no practitioner chosen;
    SlotUnavailable (``start_in_past``, ``location_closed_that_day``, or
    ``outside_hours_reason_missing`` when the time would do but no reason was given); SlotTaken
    (``practitioner_busy_then``).
    """
    cleaned = _clean_outside_hours_reason(reason)
    try:
        found = _check_start(
            session,
            clinic=clinic,
            service=service,
            location=location,
            candidates=candidates,
            start=start,
            now=now,
            ignore_appointment_id=ignore_appointment_id,
            staff=True,
        )
        return found, None
    except SlotUnavailable as refused:
        not_a_slot = refused
    if chosen is None:
        if cleaned is None:
            raise not_a_slot
        raise ValidationFailed(errors.INVALID, fields={"practitioner_id": errors.PRACTITIONER_NEEDED})
    if not now - timedelta(days=366) < start < now + timedelta(days=3660):
        raise not_a_slot
    alternatives = not_a_slot.extra.get("alternatives", [])
    if start < now:
        raise SlotUnavailable(fields={"start": errors.START_IN_PAST}, alternatives=alternatives)
    day = slots.local_date(start, location)
    blocked_until = start + timedelta(minutes=service.duration_minutes + service.buffer_minutes)
    (calendar,) = slots.load_calendars(
        session,
        location=location,
        practitioners=[chosen],
        first_day=day - timedelta(days=1),
        last_day=day + timedelta(days=1),
        ignore_appointment_id=ignore_appointment_id,
    )
    if day in calendar.closed_days:
        raise SlotUnavailable(
            fields={"start": errors.LOCATION_CLOSED_THAT_DAY},
            field_params={"start": {"location": location.name, "day": day}},
            alternatives=alternatives,
        )
    if any(busy.start < blocked_until and start < busy.end for busy in calendar.busy):
        raise SlotTaken(
            fields={"start": errors.PRACTITIONER_BUSY_THEN},
            field_params={"start": {"name": chosen.display_name}},
            alternatives=alternatives,
        )
    if cleaned is None:
        raise SlotUnavailable(
            fields={"outside_hours_reason": errors.OUTSIDE_HOURS_REASON_MISSING},
            field_params={"outside_hours_reason": {"name": chosen.display_name}},
            alternatives=alternatives,
        )
    return chosen, cleaned


def _is_overlap_error(exc: IntegrityError | OperationalError) -> str | None:
    """'practitioner' or 'patient' when ``exc`` is the database refusing an overlap.

    A PostgreSQL deadlock between two inserts waiting on each other's exclusion-constraint check
    is the same race lost another way: it counts as the slot being taken.
    """
    if isinstance(exc, OperationalError):
        return "practitioner" if getattr(exc.orig, "sqlstate", None) in DEADLOCK_STATES else None
    text = str(exc.orig)
    if "xc_appointments_patient_overlap" in text or "patient_overlap" in text:
        return "patient"
    if "xc_appointments_practitioner_overlap" in text or "practitioner_overlap" in text:
        return "practitioner"
    return None


def _patient_busy(session: Session, patient_id: int, start: datetime, end: datetime, ignore: int | None) -> bool:
    query = select(Appointment.id).where(
        Appointment.patient_id == patient_id,
        Appointment.status != "cancelled",
        Appointment.start_at < end,
        Appointment.end_at > start,
    )
    if ignore is not None:
        query = query.where(Appointment.id != ignore)
    return session.scalars(query.limit(1)).first() is not None


def book_slot(session: Session, request: BookingRequest, *, secret_key: str, now: datetime) -> Booked:
    """Book ``request.start`` for the patient (no messages: see ``usecases.booking.book``).

    Raises ValidationFailed (bad details), NotFound (unknown service or location),
    SlotUnavailable (not a slot), SlotTaken (a slot, but just taken; also when the database
    refuses the insert because a concurrent booking won), PatientBusy (the patient already has
    a visit then). On any error nothing of the booking is written: its writes are made in a
    savepoint when the transaction already holds the caller's changes, so those stay; in a
    transaction that has written nothing yet (a booking request) no savepoint is needed, and a
    refused insert rolls the transaction back.

    The database's overlap guards are the check of both the practitioner's time (raced by
    another booking) and the patient's (another visit then); the calendar read before them
    gives the friendly errors of a start that is not a slot.
    """
    fresh = not has_written(session)
    write_transaction(session)
    clinic = get_clinic(session)
    details = clean_details(request.patient, country=clinic.country, default_language=clinic.default_language)
    unknown = set(request.red_flags) - set(RED_FLAGS)
    if unknown:
        raise ValidationFailed(
            errors.RED_FLAG_UNKNOWN,
            fields={"intake.red_flags": errors.RED_FLAG_KEYS_UNKNOWN},
            field_params={"intake.red_flags": {"keys": ", ".join(sorted(unknown))}},
        )
    staff = request.source == "staff"
    service, location, candidates = bookable(
        session,
        service_id=request.service_id,
        location_id=request.location_id,
        practitioner_id=request.practitioner_id,
        staff=staff,
    )
    outside_hours_reason = None
    if request.source == "staff":
        practitioner, outside_hours_reason = _check_staff_start(
            session,
            clinic=clinic,
            service=service,
            location=location,
            candidates=candidates,
            chosen=candidates[0] if request.practitioner_id is not None else None,
            start=request.start,
            now=now,
            reason=request.outside_hours_reason,
        )
    else:
        practitioner = _check_start(
            session,
            clinic=clinic,
            service=service,
            location=location,
            candidates=candidates,
            start=request.start,
            now=now,
        )
    start = request.start.astimezone(now.tzinfo)
    flags = {key: bool(request.red_flags.get(key, False)) for key in RED_FLAGS} if request.red_flags else None
    taken_if_refused = _taken_if_refused(
        session,
        clinic=clinic,
        service=service,
        location=location,
        candidates=candidates,
        start=start,
        now=now,
        savepoint=not fresh,
    )
    with taken_if_refused:
        patient = find_or_create_patient(
            session,
            details,
            source=request.consent_source or request.source,
            now=now,
            from_staff=request.source == "staff",
        )
        row, token = new_appointment(
            patient=patient,
            practitioner=practitioner,
            location=location,
            service=service,
            start=start,
            source=request.source,
            language=details.language or clinic.default_language,
            secret_key=secret_key,
            now=now,
            triage="urgent" if flags and any(flags.values()) else "none",
            intake_reason=(request.intake_reason or "").strip() or None,
            red_flags=flags,
            outside_hours_reason=outside_hours_reason,
        )
        appointment = insert_appointment(
            session, row, patient=patient, practitioner=practitioner, location=location, service=service
        )
    return Booked(appointment=appointment, manage_token=token)


def new_appointment(
    *,
    patient: Patient,
    practitioner: Practitioner,
    location: Location,
    service: Service,
    start: datetime,
    source: str,
    language: str,
    secret_key: str,
    now: datetime,
    triage: str = "none",
    intake_reason: str | None = None,
    red_flags: dict[str, bool] | None = None,
    plan_id: int | None = None,
    outside_hours_reason: str | None = None,
) -> tuple[dict, str]:
    """The column values of a new ``booked`` appointment (all but its id and what the database
    defaults) and its manage token: the one source of new appointments, written by
    :func:`insert_appointment` (a booking) or as ORM instances (treatment plans,
    ``scheduling.plans``, many in one flush). The caller checked the time and inserts it where
    the database may refuse an overlap."""
    start = start.astimezone(now.tzinfo)
    end = start + timedelta(minutes=service.duration_minutes)
    nonce = tokens.new_nonce()
    token = tokens.manage_token(secret_key, nonce)
    row = {
        "patient_id": patient.id,
        "practitioner_id": practitioner.id,
        "location_id": location.id,
        "service_id": service.id,
        "start_at": start,
        "end_at": end,
        "busy_until": end + timedelta(minutes=service.buffer_minutes),
        "status": "booked",
        "source": source,
        "language": language,
        "triage": triage,
        "intake_reason": intake_reason,
        "red_flags": red_flags,
        "outside_hours_reason": outside_hours_reason,
        "manage_nonce": nonce,
        "manage_token_hash": tokens.token_hash(token),
        "plan_id": plan_id,
        "created_at": now,
        "updated_at": now,
    }
    return row, token


def insert_appointment(
    session: Session, row: dict, *, patient: Patient, practitioner: Practitioner, location: Location, service: Service
) -> Appointment:
    """Write the :func:`new_appointment` row in one statement and return the appointment,
    persistent in ``session`` with its patient, practitioner, location and service set (no
    query, no flush). The database's overlap guards may refuse it: the error is raised here."""
    appointment = insert_instance(session, Appointment, row)
    related = {"patient": patient, "practitioner": practitioner, "location": location, "service": service}
    for name, instance in related.items():
        set_committed_value(appointment, name, instance)
    return appointment


def refused_overlap(exc: IntegrityError | OperationalError) -> str | None:
    """'practitioner' or 'patient' when ``exc`` is the database refusing an overlap (or a
    PostgreSQL deadlock between two such inserts), else None: for callers with their own
    savepoint, such as a treatment plan booked in one piece."""
    return _is_overlap_error(exc)


@contextmanager
def _taken_if_refused(
    session: Session, *, clinic, service, location, candidates, start, now, ignore=None, savepoint: bool = True
) -> Iterator[None]:
    """Run the block's writes in a savepoint (``savepoint``) or else as the transaction's only
    writes. Any error rolls back to the savepoint, so the caller's own earlier writes in the
    transaction are kept, or rolls the whole transaction back; the database refusing an overlap
    (constraint, trigger, or a PostgreSQL deadlock between two such inserts) becomes SlotTaken
    with alternatives, or PatientBusy.
    """
    try:
        if savepoint:
            with session.begin_nested():
                yield
        else:
            try:
                yield
            except BaseException:
                session.rollback()
                raise
    except (IntegrityError, OperationalError) as exc:
        who = _is_overlap_error(exc)
        if who == "patient":
            raise PatientBusy() from None
        if who is None:
            raise
        alternatives = _alternatives(
            session,
            clinic=clinic,
            service=service,
            location=location,
            practitioners=candidates,
            around=start,
            now=now,
            ignore_appointment_id=ignore,
        )
        raise SlotTaken(alternatives=alternatives) from None


def find_by_token(session: Session, token: str, *, now: datetime) -> Appointment:
    """The appointment of a manage token. Raises NotFound for an unknown or expired token.

    A token expires when its appointment was cancelled or ended more than 30 days ago; the
    two cases are not told apart.
    """
    if not token or len(token) > 64:
        raise NotFound(errors.LINK_INVALID)
    appointment = session.scalars(
        select(Appointment).where(Appointment.manage_token_hash == tokens.token_hash(token))
    ).first()
    if appointment is None:
        raise NotFound(errors.LINK_INVALID)
    ended = appointment.cancelled_at if appointment.status == "cancelled" else appointment.end_at
    if ended is not None and now > ended + TOKEN_LIFETIME_AFTER_END:
        raise NotFound(errors.LINK_INVALID)
    return appointment


def manage_token_for(appointment: Appointment, secret_key: str) -> str:
    return tokens.manage_token(secret_key, appointment.manage_nonce)


def _lock(session: Session, appointment_id: int) -> Appointment:
    """The appointment, locked for update (PostgreSQL) inside a write transaction."""
    write_transaction(session)
    query = select(Appointment).where(Appointment.id == appointment_id)
    if not is_sqlite(session):
        query = query.with_for_update(of=Appointment)
    appointment = session.scalars(query.execution_options(populate_existing=True)).first()
    if appointment is None:
        raise NotFound(errors.APPOINTMENT_NOT_FOUND)
    return appointment


def _require_changeable(appointment: Appointment, now: datetime) -> None:
    if appointment.status not in ("booked", "confirmed"):
        raise InvalidTransition(errors.APPOINTMENT_CLOSED, params={"status": appointment.status})
    if appointment.start_at <= now:
        raise InvalidTransition(errors.APPOINTMENT_STARTED)


def inside_cancellation_window(clinic: ClinicSettings, appointment: Appointment, now: datetime) -> bool:
    return appointment.start_at - now < timedelta(hours=clinic.cancellation_window_hours)


def move(
    session: Session,
    appointment_id: int,
    new_start: datetime,
    *,
    now: datetime,
    by_patient: bool,
    practitioner_id: int | None = None,
    location_id: int | None = None,
    outside_hours_reason: str | None = None,
) -> Moved:
    """Move an appointment to ``new_start``, same service; staff may also hand it to another
    practitioner (``practitioner_id``) and/or another location (``location_id``; None: keep
    the current one), and place it outside the free times with ``outside_hours_reason`` (see
    :func:`_check_staff_start`; a move to an ordinary free time clears an earlier reason).

    The manage link keeps working; pending reminders are superseded and re-planned, and the
    calendar invitation's SEQUENCE rises. Raises InvalidTransition (cancelled, finished or
    started), LateCancellationBlocked (inside the window under the "block" policy, patients
    only), NotFound or ValidationFailed (a practitioner or location that does not offer the
    service), SlotUnavailable, SlotTaken or PatientBusy.
    """
    if by_patient and (practitioner_id, location_id, outside_hours_reason) != (None, None, None):
        raise ValueError("only staff move to another practitioner or location, or outside the free times")
    appointment = _lock(session, appointment_id)
    clinic = get_clinic(session)
    _require_changeable(appointment, now)
    if (
        by_patient
        and clinic.late_cancellation_policy == "block"
        and inside_cancellation_window(clinic, appointment, now)
    ):
        raise LateCancellationBlocked(
            errors.LATE_CHANGE, params={"hours": clinic.cancellation_window_hours}, phone=clinic.phone
        )
    service, location, practitioner = appointment.service, appointment.location, appointment.practitioner
    if (practitioner_id or practitioner.id, location_id or location.id) != (practitioner.id, location.id):
        service, location, candidates = bookable(
            session,
            service_id=appointment.service_id,
            location_id=location_id or location.id,
            practitioner_id=practitioner_id or practitioner.id,
            staff=True,
        )
        practitioner = candidates[0]
    reason = None
    if by_patient:
        _check_start(
            session,
            clinic=clinic,
            service=service,
            location=location,
            candidates=[practitioner],
            start=new_start,
            now=now,
            ignore_appointment_id=appointment.id,
        )
    else:
        practitioner, reason = _check_staff_start(
            session,
            clinic=clinic,
            service=service,
            location=location,
            candidates=[practitioner],
            chosen=practitioner,
            start=new_start,
            now=now,
            reason=outside_hours_reason,
            ignore_appointment_id=appointment.id,
        )
    new_end = new_start + (appointment.end_at - appointment.start_at)
    if _patient_busy(session, appointment.patient_id, new_start, new_end, appointment.id):
        raise PatientBusy()
    old_start, old_practitioner_id, old_location_id = (
        appointment.start_at,
        appointment.practitioner_id,
        appointment.location_id,
    )
    duration = appointment.end_at - appointment.start_at
    buffer = appointment.busy_until - appointment.end_at
    with _taken_if_refused(
        session,
        clinic=clinic,
        service=service,
        location=location,
        candidates=[practitioner],
        start=new_start,
        now=now,
        ignore=appointment_id,
    ):
        appointment.practitioner = practitioner
        appointment.location = location
        appointment.start_at = new_start.astimezone(now.tzinfo)
        appointment.end_at = appointment.start_at + duration
        appointment.busy_until = appointment.end_at + buffer
        appointment.status = "booked"
        appointment.confirmed_at = None
        appointment.outside_hours_reason = reason
        appointment.ics_sequence += 1
        appointment.updated_at = now
        session.flush()
    return Moved(
        appointment=appointment,
        old_start=old_start,
        old_practitioner_id=old_practitioner_id,
        old_location_id=old_location_id,
    )


def cancel_appointment(
    session: Session, appointment_id: int, *, now: datetime, by_patient: bool, reason: str | None = None
) -> Appointment:
    """Cancel: frees the time (the use case then stops its messages and offers the time).

    Inside the clinic's cancellation window a patient's cancellation is refused with
    LateCancellationBlocked under the "block" policy, or recorded as late under "record".
    Raises InvalidTransition when already cancelled, finished or started.
    """
    appointment = _lock(session, appointment_id)
    clinic = get_clinic(session)
    _require_changeable(appointment, now)
    late = inside_cancellation_window(clinic, appointment, now)
    if by_patient and late and clinic.late_cancellation_policy == "block":
        raise LateCancellationBlocked(
            errors.LATE_CANCELLATION, params={"hours": clinic.cancellation_window_hours}, phone=clinic.phone
        )
    appointment.status = "cancelled"
    appointment.cancelled_at = now
    appointment.cancelled_by = "patient" if by_patient else "staff"
    appointment.cancel_reason = (reason or "").strip()[:500] or None
    appointment.late_cancellation = late
    appointment.updated_at = now
    session.flush()
    return appointment


def change_status(session: Session, appointment_id: int, status: str, *, now: datetime) -> StatusChanged:
    """Staff (or a patient's C reply) move an appointment along its lifecycle.

    ``cancelled`` is not handled here: the use case cancels by staff. Raises InvalidTransition for a change the current
    status does not allow (see TRANSITIONS) or that is too early (checking in more than two hours
    ahead, marking completed or no-show before the start).
    """
    if status not in TRANSITIONS:
        raise ValidationFailed(
            errors.STATUS_UNKNOWN,
            fields={"status": errors.STATUS_INVALID},
            field_params={"status": {"choices": ", ".join(SETTABLE_STATUSES)}},
        )
    if status == "cancelled":
        raise ValueError("cancel with cancel_appointment()")
    appointment = _lock(session, appointment_id)
    old = appointment.status
    if status == old:
        return StatusChanged(appointment=appointment, old_status=old)
    if status not in TRANSITIONS[old]:
        raise InvalidTransition(errors.STATUS_CHANGE_NOT_ALLOWED, params={"old": old, "new": status})
    if (too_early := _too_early(appointment, status, now)) is not None:
        raise InvalidTransition(too_early, params={"status": status, "hours": _hours(CHECK_IN_OPENS)})
    appointment.status = status
    setattr(appointment, f"{status}_at", now)
    appointment.updated_at = now
    session.flush()
    return StatusChanged(appointment=appointment, old_status=old)


def _hours(delta: timedelta) -> int:
    return int(delta.total_seconds() // 3600)


def _too_early(appointment: Appointment, status: str, now: datetime) -> str | None:
    """Why ``status`` cannot be set yet (a reason code), or None: check-in opens two hours ahead; completed and
    no-show wait for the start."""
    if status == "checked_in" and now < appointment.start_at - CHECK_IN_OPENS:
        return errors.CHECK_IN_TOO_EARLY
    if status in ("completed", "no_show") and now < appointment.start_at:
        return errors.NOT_STARTED_YET
    return None


def statuses_allowed_now(appointment: Appointment, now: datetime) -> frozenset[str]:
    """The statuses :func:`change_status` (or cancelling) would accept for this appointment at ``now``."""
    return frozenset(s for s in TRANSITIONS[appointment.status] if _too_early(appointment, s, now) is None)


def next_appointment_for_phone(session: Session, phone: str, *, now: datetime) -> Appointment | None:
    """The soonest upcoming active appointment of any patient with this phone (for SMS replies)."""
    from booking_service.patients.models import Patient

    return session.scalars(
        select(Appointment)
        .join(Patient, Appointment.patient_id == Patient.id)
        .where(Patient.phone == phone, Appointment.status.in_(ACTIVE_STATUSES), Appointment.start_at > now)
        .order_by(Appointment.start_at)
        .limit(1)
    ).first()


def appointments_on(
    session: Session,
    day: date,
    *,
    location_id: int | None = None,
    practitioner_id: int | None = None,
    tz_name: str,
) -> list[Appointment]:
    """Appointments starting on the local ``day`` (in ``tz_name``), in time order."""
    from zoneinfo import ZoneInfo

    bounds = availability.local_day_bounds(day, ZoneInfo(tz_name))
    query = select(Appointment).where(Appointment.start_at >= bounds.start, Appointment.start_at < bounds.end)
    if location_id is not None:
        query = query.where(Appointment.location_id == location_id)
    if practitioner_id is not None:
        query = query.where(Appointment.practitioner_id == practitioner_id)
    return list(session.scalars(query.order_by(Appointment.start_at, Appointment.practitioner_id)))
