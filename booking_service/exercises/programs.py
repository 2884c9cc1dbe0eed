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

from booking_service.clinic.models import Location
from booking_service.errors import NotFound
from booking_service.exercises.models import Program, ProgramItem, ProgramVersion
from booking_service.scheduling import tokens

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
    times_per_day: int = 1


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

    ``days`` are weekday numbers (0 = Monday). ``timezone`` defaults to the location's. Input
    is taken as checked by the caller's validation (``exercises.validation``); the database's
    constraints are the last word.
    """
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
            items=[
                ProgramItem(
                    exercise_id=spec.exercise_id,
                    position=position,
                    reps=spec.reps,
                    sets=spec.sets,
                    hold_seconds=spec.hold_seconds,
                    times_per_day=spec.times_per_day,
                )
                for position, spec in enumerate(items)
            ],
        )
    )
    session.flush()
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
