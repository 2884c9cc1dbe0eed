"""The nudge sweep: one text per program per local program day, at the patient's time.

:func:`plan_nudges` is run by the worker every few minutes, once across workers
(``scheduler/worker.py``, job ``nudge-sweep``), and is safe to run more often, or from two
processes at once: each nudge is an outbox row (kind ``nudge``) whose ``dedupe_key`` is
``nudge:{program_id}:{local date}``, inserted with ``ON CONFLICT DO NOTHING``, so the unique
key decides and a second sweep plans nothing.

Which days a sweep plans, for each active program (not paused, not ended, within its dates):

* **the current local day**, unless its time passed more than :data:`LATE_LIMIT` ago (a program
  assigned at 15:00 with a 09:00 time starts tomorrow; a worker down for an hour still sends);
* **the next local day** when its time is at most :data:`HORIZON` ahead (a 00:30 time is
  planned from 22:30 the evening before, so a sweep or two missed around midnight loses
  nothing).

A nudge is due at the program's ``time_of_day`` on that local date in ``Program.timezone``,
converted to UTC for that date (:func:`booking_service.messaging.rules.local_instant`: a time
in the hour skipped in spring moves forward by the gap, a time that happens twice in autumn
means its first occurrence).

It is planned only when the day is a program day, the patient has no appointment (not
cancelled, not missed) that local day, the day is not already logged done, and the patient has
``exercise_sms_consent``, a usable phone and no STOP. The worker checks all of this again at
send time (:mod:`booking_service.messaging.policy`), because a day can be logged, a visit
booked or the program paused after planning; quiet hours and the per-patient caps apply there.

The row's payload carries ``program_id``, ``day`` (local ISO date) and ``timezone`` (quiet
hours and caps count in the program's zone); the link is rebuilt from the program at render
time, so no token is stored in a pending row.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from booking_service.db import write_transaction
from booking_service.exercises.models import Program, ProgramLog
from booking_service.exercises.programs import is_program_day
from booking_service.messaging import planning, rules
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient, SmsOptOut
from booking_service.scheduling.models import Appointment

# Today's nudge is still planned this long after its time (a sweep late by a worker restart).
LATE_LIMIT = timedelta(hours=2)
# Tomorrow's nudge is planned once its time is at most this far ahead.
HORIZON = timedelta(hours=2)
# Appointments in these statuses do not count: the patient did not come, so home exercise is due.
NO_NUDGE_APPOINTMENT_EXCLUDED = ("cancelled", "no_show")
# Keys per "already planned?" query.
KEY_CHUNK = 1000


@dataclass(frozen=True)
class Candidate:
    program_id: int
    patient_id: int
    phone: str
    day: date
    due: datetime
    timezone: str


def dedupe_key(program_id: int, day: date) -> str:
    """The unique key of a program's nudge for one local day."""
    return f"nudge:{program_id}:{day.isoformat()}"


def due_at(program, day: date) -> datetime:
    """The instant (UTC) of ``program``'s nudge on local ``day`` (DST-correct)."""
    return rules.local_instant(day, program.time_of_day, ZoneInfo(program.timezone)).astimezone(UTC)


def candidate_days(program, now: datetime) -> list[tuple[date, datetime]]:
    """The local days (with due instants) a sweep at ``now`` plans for ``program``, before the
    checks on logs and appointments: today unless past :data:`LATE_LIMIT`, tomorrow within
    :data:`HORIZON`; program days only."""
    today = now.astimezone(ZoneInfo(program.timezone)).date()
    days = []
    for day, wanted in (
        (today, lambda due: due + LATE_LIMIT > now),
        (today + timedelta(days=1), lambda due: due - HORIZON <= now),
    ):
        if not is_program_day(program, day):
            continue
        due = due_at(program, day)
        if wanted(due):
            days.append((day, due))
    return days


def _programs(session: Session, now: datetime) -> list:
    """Every active program whose patient may get exercise texts: one query, plain rows with
    the columns the sweep needs (``id``, ``patient_id``, ``days``, ``time_of_day``,
    ``timezone``, ``start_date``, ``end_date``, ``phone``), not ORM objects."""
    # Local dates are within a day of the UTC date anywhere on Earth.
    utc_day = now.astimezone(UTC).date()
    query = (
        select(
            Program.id,
            Program.patient_id,
            Program.days,
            Program.time_of_day,
            Program.timezone,
            Program.start_date,
            Program.end_date,
            Patient.phone,
        )
        .join(Patient, Patient.id == Program.patient_id)
        .outerjoin(SmsOptOut, SmsOptOut.phone == Patient.phone)
        .where(
            Program.status == "active",
            Program.ended_at.is_(None),
            Program.start_date <= utc_day + timedelta(days=2),
            or_(Program.end_date.is_(None), Program.end_date >= utc_day - timedelta(days=1)),
            Patient.exercise_sms_consent.is_(True),
            Patient.phone.is_not(None),
            Patient.phone != "",
            Patient.phone_invalid_at.is_(None),
            SmsOptOut.phone.is_(None),
        )
    )
    return list(session.execute(query))


def _logged_days(session: Session, days: set[date]) -> set[tuple[int, date]]:
    rows = session.execute(
        select(ProgramLog.program_id, ProgramLog.local_date)
        .join(Program, Program.id == ProgramLog.program_id)
        .where(Program.status == "active", ProgramLog.done.is_(True), ProgramLog.local_date.in_(sorted(days)))
    )
    return {(program_id, day) for program_id, day in rows}


def _appointment_starts(session: Session, now: datetime) -> dict[int, list[datetime]]:
    """Starts of every live appointment from a day before ``now`` to two days after, by patient."""
    rows = session.execute(
        select(Appointment.patient_id, Appointment.start_at).where(
            Appointment.status.not_in(NO_NUDGE_APPOINTMENT_EXCLUDED),
            Appointment.start_at >= now - timedelta(days=2),
            Appointment.start_at < now + timedelta(days=3),
        )
    )
    starts: dict[int, list[datetime]] = defaultdict(list)
    for patient_id, start in rows:
        starts[patient_id].append(start)
    return starts


def has_appointment_on(starts: list[datetime], day: date, zone: ZoneInfo) -> bool:
    return any(start.astimezone(zone).date() == day for start in starts)


def plan_nudges(session: Session, *, now: datetime) -> int:
    """Plan the due nudges of every active program (see the module); returns how many rows
    were added (0 when another sweep planned them first). Flushes, never commits.

    Queries: the programs (one), the days logged done, the appointments around ``now``, the
    keys already planned (one per :data:`KEY_CHUNK`), and the inserts (batched multi-row).
    """
    rules.require_aware("now", now)
    # SQLite: take the write lock before reading, so a concurrent sweep waits instead of failing.
    write_transaction(session)
    candidates: list[Candidate] = []
    for program in _programs(session, now):
        for day, due in candidate_days(program, now):
            candidates.append(Candidate(program.id, program.patient_id, program.phone, day, due, program.timezone))
    if not candidates:
        return 0
    planned = _planned_keys(session, [dedupe_key(c.program_id, c.day) for c in candidates])
    candidates = [c for c in candidates if dedupe_key(c.program_id, c.day) not in planned]
    if not candidates:
        return 0
    logged = _logged_days(session, {c.day for c in candidates})
    starts = _appointment_starts(session, now)
    rows = []
    for c in candidates:
        if (c.program_id, c.day) in logged:
            continue
        if c.patient_id in starts and has_appointment_on(starts[c.patient_id], c.day, ZoneInfo(c.timezone)):
            continue
        values = planning.row_values(
            None,
            c.patient_id,
            kind="nudge",
            channel="sms",
            to=c.phone,
            due=c.due,
            key=dedupe_key(c.program_id, c.day),
            now=now,
            payload={"program_id": c.program_id, "day": c.day.isoformat(), "timezone": c.timezone},
        )
        rows.append(values)
    return planning.insert_new(session, rows)


def _planned_keys(session: Session, keys: list[str]) -> set[str]:
    """Which of ``keys`` are planned already (through the unique index, in chunks)."""
    found: set[str] = set()
    for start in range(0, len(keys), KEY_CHUNK):
        chunk = keys[start : start + KEY_CHUNK]
        found.update(session.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(chunk))))
    return found
