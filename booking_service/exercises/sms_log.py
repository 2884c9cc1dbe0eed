"""Writing one day's log from a text (``DONE``, a pain score).

A stand-in, with the same name and keywords, for ``exercises.logging.log_day`` (the program
page's writer, built beside this): when both are merged, callers switch their import and this
module goes.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from booking_service.exercises.models import Program, ProgramLog


def _find(session: Session, program_id: int, day: date) -> ProgramLog | None:
    return session.scalars(
        select(ProgramLog).where(ProgramLog.program_id == program_id, ProgramLog.local_date == day)
    ).first()


def log_day(
    session: Session,
    program: Program,
    day: date,
    *,
    done: bool | None = None,
    pain: int | None = None,
    note: str | None = None,
    source: str,
    now: datetime,
) -> ProgramLog:
    """The program's log for local ``day``, created or updated with the values given (None
    leaves a value as it was); flushed, no commit. One row per program per day (the unique key
    settles a race with the program page: the loser updates the winner's row)."""
    log = _find(session, program.id, day)
    if log is None:
        log = ProgramLog(
            program_id=program.id,
            patient_id=program.patient_id,
            local_date=day,
            done=False,
            note="",
            source=source,
            created_at=now,
            updated_at=now,
        )
        try:
            with session.begin_nested():
                session.add(log)
                session.flush()
        except IntegrityError:
            log = _find(session, program.id, day)
    if done is not None:
        log.done = done
    if pain is not None:
        log.pain = pain
    if note:
        log.note = (log.note + "\n" + note).strip() if log.note else note
    log.source = source
    log.updated_at = now
    session.flush()
    return log
