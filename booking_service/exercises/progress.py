"""How a program is going: adherence per week, the pain series and the PSFS series.

Pure reads over a session, shared by the program page, the practitioner's views and the API.
Adherence counts program days (the prescribed days within the program's dates, up to and
including ``today``) and the days of those that the patient logged as done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.exercises.models import FunctionScore, Program, ProgramLog

MEANINGFUL_PSFS_CHANGE = 2  # points: the smallest change in a PSFS score that matters


@dataclass(frozen=True)
class Week:
    start: date  # a Monday
    logged: int  # program days logged as done
    prescribed: int  # program days in the week, up to today

    @property
    def ratio(self) -> float | None:
        return self.logged / self.prescribed if self.prescribed else None


def program_days(program: Program, first: date, last: date) -> list[date]:
    """The program's exercise days between ``first`` and ``last`` (inclusive), within its dates."""
    first = max(first, program.start_date)
    if program.end_date is not None:
        last = min(last, program.end_date)
    days, day = [], first
    while day <= last:
        if day.weekday() in program.days:
            days.append(day)
        day += timedelta(days=1)
    return days


def logs(session: Session, program_id: int) -> list[ProgramLog]:
    return list(
        session.scalars(select(ProgramLog).where(ProgramLog.program_id == program_id).order_by(ProgramLog.local_date))
    )


def weekly_adherence(program: Program, program_logs: list[ProgramLog], *, today: date) -> list[Week]:
    """One :class:`Week` per calendar week (Monday first) from the program's start to ``today``."""
    done = {log.local_date for log in program_logs if log.done}
    weeks = []
    monday = program.start_date - timedelta(days=program.start_date.weekday())
    while monday <= today:
        days = program_days(program, monday, min(monday + timedelta(days=6), today))
        weeks.append(Week(monday, sum(1 for d in days if d in done), len(days)))
        monday += timedelta(days=7)
    return weeks


def overall_adherence(weeks: list[Week]) -> float | None:
    """Days logged over days prescribed across all weeks; None before the first program day."""
    prescribed = sum(w.prescribed for w in weeks)
    return sum(w.logged for w in weeks) / prescribed if prescribed else None


def pain_series(program_logs: list[ProgramLog]) -> list[tuple[date, int]]:
    return [(log.local_date, log.pain) for log in program_logs if log.pain is not None]


def function_series(session: Session, program_id: int) -> dict[str, list[tuple[date, int]]]:
    """PSFS scores per activity, oldest first."""
    rows = session.scalars(
        select(FunctionScore)
        .where(FunctionScore.program_id == program_id)
        .order_by(FunctionScore.position, FunctionScore.local_date)
    )
    series: dict[str, list[tuple[date, int]]] = {}
    for row in rows:
        series.setdefault(row.activity, []).append((row.local_date, row.score))
    return series
