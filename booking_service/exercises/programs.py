"""Programs: assigning a home exercise program, finding it by its link, and its local days.

Domain functions: plain values and a session, no commit. A program's days and time are local to
``Program.timezone`` (the patient's zone, else the location's); every "today" here is the local
date there, so a nudge, a log and a DST day agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service import audit
from booking_service.clinic.models import Location, Practitioner
from booking_service.errors import END_BEFORE_START, InvalidTransition, NotFound, ValidationFailed
from booking_service.exercises.models import Alert, Exercise, Program, ProgramItem, ProgramVersion
from booking_service.exercises.validation import check_program
from booking_service.patients.models import Patient
from booking_service.scheduling import tokens
from booking_service.scheduling.models import Appointment

# A program link stops working this long after the program ended (the manage-link rule).
from booking_service.scheduling.operations import TOKEN_LIFETIME_AFTER_END

LINK_NOT_VALID = "This link is not valid. Please contact the clinic."


@dataclass(frozen=True)
class ItemSpec:
    """One exercise of a program with its dose (None: the exercise's default)."""

    exercise_id: int
    reps: int | None = None
    sets: int | None = None
    hold_seconds: int | None = None
    times_per_day: int | None = None


def create_program(
    session: Session,
    *,
    patient_id: int,
    practitioner_id: int,
    location_id: int,
    items: list[ItemSpec],
    days: list[int],
    time_of_day: time,
    start: date,
    end: date | None = None,
    timezone: str | None = None,
    appointment_id: int | None = None,
    user_id: int | None = None,
    secret_key: str,
    now: datetime,
) -> Program:
    """A new active program (version 1) for the patient, with its link (see
    :func:`program_url`); flushed, not committed.

    ``days`` are weekday numbers (0 = Monday). ``timezone`` defaults to the location's. Raises
    ValidationFailed naming each field that breaks a rule (``exercises.validation``), NotFound
    for an unknown patient or location; the database's constraints are the last word.
    """
    check_program(
        session,
        items=items,
        days=days,
        time_of_day=time_of_day,
        start=start,
        end=end,
        practitioner_id=practitioner_id,
    )
    if session.get(Patient, patient_id) is None:
        raise NotFound("There is no such patient.")
    location = session.get(Location, location_id)
    if location is None:
        raise NotFound("There is no such location.")
    nonce = tokens.new_nonce()
    program = Program(
        patient_id=patient_id,
        practitioner_id=practitioner_id,
        location_id=location_id,
        status="active",
        version=1,
        days=sorted(set(days)),
        time_of_day=time_of_day,
        timezone=timezone or location.timezone,
        start_date=start,
        end_date=end,
        token_nonce=nonce,
        token_hash=tokens.token_hash(tokens.link_token(secret_key, nonce, purpose="program")),
        created_by_user_id=user_id,
        created_at=now,
        updated_at=now,
    )
    session.add(program)
    program.versions.append(
        ProgramVersion(
            version=1,
            days=program.days,
            time_of_day=time_of_day,
            start_date=start,
            end_date=end,
            appointment_id=appointment_id,
            created_by_user_id=user_id,
            created_at=now,
            items=_items(session, items),
        )
    )
    session.flush()
    audit.record(
        session, "program.create", "program", program.id, {"version": 1}, patient_id=program.patient_id, now=now
    )
    return program


def _items(session: Session, specs: list[ItemSpec]) -> list[ProgramItem]:
    """Program items in the order given; a dose left as None takes the exercise's default."""
    ids = [spec.exercise_id for spec in specs]
    exercises = {e.id: e for e in session.scalars(select(Exercise).where(Exercise.id.in_(ids)))}
    items = []
    for position, spec in enumerate(specs):
        exercise = exercises[spec.exercise_id]
        items.append(
            ProgramItem(
                exercise_id=spec.exercise_id,
                position=position,
                reps=spec.reps if spec.reps is not None else exercise.default_reps,
                sets=spec.sets if spec.sets is not None else exercise.default_sets,
                hold_seconds=spec.hold_seconds if spec.hold_seconds is not None else exercise.default_hold_seconds,
                times_per_day=spec.times_per_day or exercise.default_times_per_day or 1,
            )
        )
    return items


def default_location(session: Session, patient_id: int, practitioner_id: int) -> int | None:
    """Where a program assigned without a location belongs (its zone is the patient's): the
    location of the patient's latest visit with the practitioner, else of their latest visit,
    else the practitioner's first location, else the clinic's first active one."""
    latest = select(Appointment.location_id).where(Appointment.patient_id == patient_id)
    found = session.scalar(
        latest.where(Appointment.practitioner_id == practitioner_id).order_by(Appointment.start_at.desc()).limit(1)
    ) or session.scalar(latest.order_by(Appointment.start_at.desc()).limit(1))
    if found is None:
        practitioner = session.get(Practitioner, practitioner_id)
        locations = sorted(practitioner.locations, key=lambda loc: loc.id) if practitioner else []
        found = locations[0].id if locations else None
    if found is None:
        found = session.scalar(select(Location.id).where(Location.active.is_(True)).order_by(Location.id).limit(1))
    return found


def get_program(session: Session, program_id: int) -> Program:
    """Raises NotFound for an unknown id."""
    program = session.get(Program, program_id)
    if program is None:
        raise NotFound("There is no such program.")
    return program


def programs_of(session: Session, patient_id: int, *, practitioner_id: int | None = None) -> list[Program]:
    """The patient's programs, newest first (only one practitioner's, when given)."""
    query = select(Program).where(Program.patient_id == patient_id)
    if practitioner_id is not None:
        query = query.where(Program.practitioner_id == practitioner_id)
    return list(session.scalars(query.order_by(Program.created_at.desc(), Program.id.desc())))


def _not_ended(program: Program) -> None:
    if program.status == "ended":
        raise InvalidTransition("This program has ended; assign a new one instead.", code="program_ended")


def revise_program(
    session: Session,
    program_id: int,
    *,
    items: list[ItemSpec],
    days: list[int],
    time_of_day: time,
    start: date,
    end: date | None = None,
    appointment_id: int | None = None,
    user_id: int | None = None,
    note: str = "",
    now: datetime,
) -> Program:
    """A new version of the program with its own exercises, doses, days, time and dates, from
    ``start`` on; the older versions stay as they were (readable). The program keeps its link,
    its status and its first start (its history counts from there), unless it has not begun
    yet. Raises NotFound, ValidationFailed (fields as for a new program, ``end`` also before
    the program's first start), InvalidTransition ``program_ended`` for an ended program."""
    program = get_program(session, program_id)
    _not_ended(program)
    check_program(session, items=items, days=days, time_of_day=time_of_day, start=start, end=end)
    first_start = program.start_date if local_today(program, now) >= program.start_date else start
    first_start = min(first_start, start)
    if end is not None and end < first_start:
        raise ValidationFailed("Some details of the program need fixing.", fields={"end": END_BEFORE_START})
    number = max(v.version for v in program.versions) + 1
    program.versions.append(
        ProgramVersion(
            version=number,
            days=sorted(set(days)),
            time_of_day=time_of_day,
            start_date=start,
            end_date=end,
            note=note,
            appointment_id=appointment_id,
            created_by_user_id=user_id,
            created_at=now,
            items=_items(session, items),
        )
    )
    program.version = number
    program.days = sorted(set(days))
    program.time_of_day = time_of_day
    program.start_date = first_start
    program.end_date = end
    program.updated_at = now
    session.flush()
    audit.record(
        session,
        "program.revise",
        "program",
        program.id,
        {"version": program.version},
        patient_id=program.patient_id,
        now=now,
    )
    return program


def pause_program(session: Session, program_id: int, *, reason: str = "staff", now: datetime) -> Program:
    """Pause an active program (no nudges while paused). Raises InvalidTransition
    ``program_not_active`` when it is not active (already paused, or ended)."""
    program = get_program(session, program_id)
    if program.status != "active":
        raise InvalidTransition(f"This program is {program.status}, not active.", code="program_not_active")
    program.status = "paused"
    program.pause_reason = reason
    program.paused_at = now
    program.updated_at = now
    session.flush()
    audit.record(
        session,
        "program.pause",
        "program",
        program.id,
        {"pause_reason": reason},
        patient_id=program.patient_id,
        now=now,
    )
    return program


def open_alerts(session: Session, program_id: int) -> list[Alert]:
    return list(
        session.scalars(
            select(Alert).where(Alert.program_id == program_id, Alert.status == "open").order_by(Alert.created_at)
        )
    )


def resume_program(session: Session, program_id: int, *, now: datetime) -> Program:
    """Resume a paused program. Raises InvalidTransition ``program_not_paused`` when it is not
    paused, and ``alert_open`` while an alert on it is open (acknowledge the alert first: it is
    what paused the nudges)."""
    program = get_program(session, program_id)
    if program.status != "paused":
        raise InvalidTransition(f"This program is {program.status}, not paused.", code="program_not_paused")
    if open_alerts(session, program.id):
        raise InvalidTransition(
            "An alert on this program is open: acknowledge it first, then resume.", code="alert_open"
        )
    program.status = "active"
    program.pause_reason = None
    program.paused_at = None
    program.updated_at = now
    session.flush()
    audit.record(session, "program.resume", "program", program.id, patient_id=program.patient_id, now=now)
    return program


def end_program(session: Session, program_id: int, *, discharged: bool = False, now: datetime) -> Program:
    """End the program (``end_reason`` ``ended``, or ``discharged`` when the patient is
    discharged): no more nudges; its link keeps working 30 days, read-only for the patient's
    history. Raises InvalidTransition ``program_ended`` when it has already ended."""
    program = get_program(session, program_id)
    _not_ended(program)
    today = local_today(program, now)
    if today >= program.start_date and (program.end_date is None or program.end_date > today):
        program.end_date = today
    program.status = "ended"
    program.end_reason = "discharged" if discharged else "ended"
    program.ended_at = now
    program.pause_reason = None
    program.paused_at = None
    program.updated_at = now
    session.flush()
    audit.record(
        session,
        "program.discharge" if discharged else "program.end",
        "program",
        program.id,
        patient_id=program.patient_id,
        now=now,
    )
    return program


def program_token(program: Program, secret_key: str) -> str:
    """The program's link token, rebuilt from its nonce (the worker puts it in a nudge)."""
    return tokens.link_token(secret_key, program.token_nonce, purpose="program")


def program_url(program: Program, *, secret_key: str, base_url: str) -> str:
    return base_url.rstrip("/") + tokens.program_path(program_token(program, secret_key))


def find_by_token(session: Session, token: str, *, now: datetime) -> Program:
    """The program of a link token. Raises NotFound for an unknown token, or one whose program
    ended more than 30 days ago (the two are not told apart)."""
    if not token or len(token) > 64:
        raise NotFound(LINK_NOT_VALID)
    program = session.scalars(select(Program).where(Program.token_hash == tokens.token_hash(token))).first()
    if program is None:
        raise NotFound(LINK_NOT_VALID)
    if program.ended_at is not None and now > program.ended_at + TOKEN_LIFETIME_AFTER_END:
        raise NotFound(LINK_NOT_VALID)
    return program


def local_today(program: Program, now: datetime) -> date:
    """Today's date where the program's patient lives."""
    return now.astimezone(ZoneInfo(program.timezone)).date()


def is_program_day(program: Program, day: date) -> bool:
    """Whether ``day`` (local) is one of the program's exercise days, within its dates."""
    if day < program.start_date or (program.end_date is not None and day > program.end_date):
        return False
    return day.weekday() in program.days
