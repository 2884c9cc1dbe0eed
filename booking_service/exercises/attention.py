"""Who needs attention: a practitioner's patients with a program, most urgent first.

Order: open alerts (oldest first), then no log for :data:`MISSED_DAYS` or more program days,
then rising pain, then the rest by name. **Missed days** are the program days before today
(local) since the last day anything was logged. **Rising pain**: among the last
:data:`RISING_WINDOW` pain scores, the latest is at least :data:`RISING_POINTS` above the first.
A pure read over a session.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.exercises import progress
from booking_service.exercises.models import Alert, Program, ProgramLog
from booking_service.exercises.programs import local_today
from booking_service.patients.models import Patient

MISSED_DAYS = 3
RISING_WINDOW = 4
RISING_POINTS = 2


@dataclass(frozen=True)
class Summary:
    program: Program
    patient: Patient
    today: date
    open_alerts: list[Alert]
    missed_days: int
    rising_pain: bool
    last_pain: int | None
    last_logged: date | None
    this_week: progress.Week | None

    @property
    def sort_key(self):
        oldest = self.open_alerts[0].created_at.timestamp() if self.open_alerts else 0.0
        return (
            0 if self.open_alerts else 1,
            oldest,
            0 if self.missed_days >= MISSED_DAYS else 1,
            0 if self.rising_pain else 1,
            self.patient.last_name.casefold(),
            self.patient.first_name.casefold(),
        )


def missed_days(program: Program, program_logs: list[ProgramLog], today: date) -> int:
    last = max((log.local_date for log in program_logs), default=None)
    first = last + timedelta(days=1) if last is not None else program.start_date
    return len(progress.program_days(program, first, today - timedelta(days=1)))


def rising(pains: list[int]) -> bool:
    window = pains[-RISING_WINDOW:]
    return len(window) >= 2 and window[-1] - window[0] >= RISING_POINTS


def summarize(session: Session, program: Program, *, now: datetime) -> Summary:
    """One program's :class:`Summary` (the appointment page, the program's progress page)."""
    open_alerts = session.scalars(
        select(Alert)
        .where(Alert.patient_id == program.patient_id, Alert.status == "open")
        .order_by(Alert.created_at, Alert.id)
    )
    return _summary(
        program, session.get(Patient, program.patient_id), progress.logs(session, program.id), list(open_alerts), now
    )


def _summary(
    program: Program, patient: Patient, program_logs: list, open_alerts: list[Alert], now: datetime
) -> Summary:
    today = local_today(program, now)
    pains = [pain for _day, pain in progress.pain_series(program_logs)]
    weeks = progress.weekly_adherence(program, program_logs, today=today)
    return Summary(
        program=program,
        patient=patient,
        today=today,
        open_alerts=open_alerts,
        missed_days=missed_days(program, program_logs, today),
        rising_pain=rising(pains),
        last_pain=pains[-1] if pains else None,
        last_logged=program_logs[-1].local_date if program_logs else None,
        this_week=weeks[-1] if weeks else None,
    )


def needing_attention(session: Session, *, practitioner_id: int | None, now: datetime) -> list[Summary]:
    """Programs not ended (of ``practitioner_id``; None: everyone's), most urgent first. Four
    queries whatever the number of programs (programs, their patients, logs and open alerts)."""
    query = select(Program).where(Program.status != "ended")
    if practitioner_id is not None:
        query = query.where(Program.practitioner_id == practitioner_id)
    programs = list(session.scalars(query))
    if not programs:
        return []
    patient_ids = {p.patient_id for p in programs}
    patients = {p.id: p for p in session.scalars(select(Patient).where(Patient.id.in_(patient_ids)))}
    logs_of: dict[int, list[ProgramLog]] = defaultdict(list)
    for log in session.scalars(
        select(ProgramLog).where(ProgramLog.program_id.in_([p.id for p in programs])).order_by(ProgramLog.local_date)
    ):
        logs_of[log.program_id].append(log)
    alerts_of: dict[int, list[Alert]] = defaultdict(list)
    for alert in session.scalars(
        select(Alert)
        .where(Alert.patient_id.in_(patient_ids), Alert.status == "open")
        .order_by(Alert.created_at, Alert.id)
    ):
        alerts_of[alert.patient_id].append(alert)
    summaries = [_summary(p, patients[p.patient_id], logs_of[p.id], alerts_of[p.patient_id], now) for p in programs]
    return sorted(summaries, key=lambda s: s.sort_key)


def current_program(session: Session, patient_id: int) -> Program | None:
    """The patient's newest program that has not ended, else their newest."""
    query = select(Program).where(Program.patient_id == patient_id).order_by(Program.id.desc())
    programs = list(session.scalars(query))
    return next((p for p in programs if p.status != "ended"), programs[0] if programs else None)
