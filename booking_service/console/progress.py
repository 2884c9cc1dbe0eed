"""The practitioner's view of home exercise programs: who needs attention, and one program's
adherence, pain and function with its log and alerts. Desk roles see every program; a
practitioner sees their own (another's answers 404)."""

from __future__ import annotations

from flask import abort, render_template

from booking_service.console import charts
from booking_service.console.alerts import KIND_LABELS
from booking_service.console.auth import practitioner_scope
from booking_service.context import db_session, utcnow
from booking_service.exercises import alerts, attention, progress
from booking_service.exercises.models import Program


def index():
    summaries = attention.needing_attention(db_session(), practitioner_id=practitioner_scope(), now=utcnow())
    return render_template("staff/progress.html", nav="progress", summaries=summaries, missed=attention.MISSED_DAYS)


def show(program_id: int):
    session = db_session()
    program = session.get(Program, program_id)
    scope = practitioner_scope()
    if program is None or (scope is not None and program.practitioner_id != scope):
        abort(404)
    summary = attention.summarize(session, program, now=utcnow())
    program_logs = progress.logs(session, program.id)
    weeks = progress.weekly_adherence(program, program_logs, today=summary.today)
    pains = progress.pain_series(program_logs)
    function = progress.function_series(session, program.id)
    return render_template(
        "staff/program_progress.html",
        nav="progress",
        s=summary,
        weeks=weeks,
        overall=progress.overall_adherence(weeks),
        logs=list(reversed(program_logs)),
        pains=pains,
        function=function,
        change_days={name: charts.change_reached(points) for name, points in function.items()},
        pain_chart=charts.pain_chart(pains),
        function_chart=charts.function_chart(function),
        patient_alerts=alerts.alerts(session, status=None, patient_id=program.patient_id)[::-1],
        kind_labels=KIND_LABELS,
        tz=program.timezone,
    )


def summary_for_patient(patient_id: int) -> attention.Summary | None:
    """The appointment page's summary: the patient's current program, if they have one."""
    session = db_session()
    program = attention.current_program(session, patient_id)
    return attention.summarize(session, program, now=utcnow()) if program is not None else None
