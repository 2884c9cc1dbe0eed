"""The patient's home exercise program page at ``/p/<token>`` (the path is in every nudge).

No login: the token is the credential (the manage-link rules: an unknown token, or one for a
program ended more than 30 days ago, shows the same 404 page). The page shows only what its
holder needs, is never cached and sends no Referer. GET changes nothing; every change is a
POST with a CSRF token answered by a redirect back to the page, so it works without
JavaScript. The domain writes are :mod:`booking_service.exercises.logging`.
"""

from __future__ import annotations

from datetime import date, timedelta

from flask import Response, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import refresh
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from booking_service.context import db_session
from booking_service.errors import DomainError, NotFound, ValidationFailed
from booking_service.exercises import logging as logs
from booking_service.exercises.models import Program, ProgramItem, ProgramLog, ProgramVersion
from booking_service.exercises.programs import find_by_token, is_program_day, local_today
from booking_service.exercises.progress import program_days
from booking_service.web import i18n
from booking_service.web.common import now, page, private


def _load(token: str) -> Program | Response:
    try:
        program = find_by_token(db_session(), token, now=now())
    except NotFound:
        return private(page("pages/not_found.html", 404))
    g.subject_language = program_patient_language(program)
    refresh()
    return program


def program_patient_language(program: Program) -> str:
    from booking_service.patients.models import Patient

    patient = db_session().get(Patient, program.patient_id)
    return patient.language if patient is not None else "en"


def dose(item) -> str:
    """``12 reps × 2 sets · hold 20 s · twice a day`` in the page's language."""
    exercise = item.exercise
    reps = item.reps if item.reps is not None else exercise.default_reps
    sets = item.sets if item.sets is not None else exercise.default_sets
    hold = item.hold_seconds if item.hold_seconds is not None else exercise.default_hold_seconds
    parts = []
    if reps:
        parts.append(_("%(num)d repetitions", num=reps) if reps != 1 else _("1 repetition"))
    if sets:
        parts.append(_("%(num)d sets", num=sets) if sets != 1 else _("1 set"))
    if hold:
        parts.append(_("hold %(num)d seconds", num=hold))
    if item.times_per_day and item.times_per_day > 1:
        parts.append(_("%(num)d times a day", num=item.times_per_day))
    return " · ".join(parts)


def _week(program: Program, today: date, log_rows: list[ProgramLog]) -> list[dict]:
    done = {log.local_date for log in log_rows if log.done}
    monday = today - timedelta(days=today.weekday())
    days = []
    prescribed = set(program_days(program, monday, monday + timedelta(days=6)))
    for offset in range(7):
        day = monday + timedelta(days=offset)
        if day in done:
            state = "done"
        elif day not in prescribed:
            state = "rest"
        elif day > today:
            state = "upcoming"
        elif day == today:
            state = "today"
        else:
            state = "missed"
        days.append({"date": day, "label": i18n.format_day(day, short=True), "state": state, "today": day == today})
    return days


def _context(token: str, program: Program, *, errors: dict | None = None, values: dict | None = None) -> dict:
    session = db_session()
    today = local_today(program, now())
    # One query for the version, its items and their exercises (not one per exercise).
    version = session.scalars(
        select(ProgramVersion)
        .where(ProgramVersion.program_id == program.id, ProgramVersion.version == program.version)
        .options(selectinload(ProgramVersion.items).joinedload(ProgramItem.exercise))
    ).one()
    monday = today - timedelta(days=today.weekday())
    log_rows = list(
        session.scalars(
            select(ProgramLog).where(
                ProgramLog.program_id == program.id, ProgramLog.local_date >= monday, ProgramLog.local_date <= today
            )
        )
    )
    todays = next((log for log in log_rows if log.local_date == today), None)
    done_ids = logs.done_items(session, todays)
    day_done = bool(todays and todays.done)
    lang = i18n.language()
    items = [
        {
            "id": item.id,
            "name": item.exercise.name(lang),
            "instructions": item.exercise.instructions(lang),
            "cautions": item.exercise.cautions(lang),
            "dose": dose(item),
            "media_url": item.exercise.media_url,
            "done": day_done or item.id in done_ids,
        }
        for item in version.items
    ]
    last_scores_day, scores = logs.latest_function_scores(session, program)
    active = program.status == "active"
    started = today >= program.start_date
    next_day = None
    if active and not is_program_day(program, today):
        upcoming = program_days(program, today + timedelta(days=1), today + timedelta(days=14))
        next_day = i18n.format_day(upcoming[0]) if upcoming else None
    return {
        "token": token,
        "program": program,
        "today_label": i18n.format_day(today),
        "start_label": i18n.format_day(program.start_date),
        "items": items,
        "all_done": day_done or (items and all(item["done"] for item in items)),
        "log": todays,
        "week": _week(program, today, log_rows),
        "can_log": active and started,
        "started": started,
        "rest_day": active and started and not is_program_day(program, today),
        "next_day": next_day,
        "psfs_due": active and started and logs.function_scores_due(program, last_scores_day, today),
        "scores": scores,
        "scores_label": i18n.format_day(last_scores_day) if last_scores_day else None,
        "errors": errors or {},
        "values": values or {},
    }


def show(token: str):
    program = _load(token)
    if isinstance(program, Response):
        return program
    return private(page("pages/program.html", **_context(token, program)))


def _render_errors(token: str, program: Program, exc: DomainError, values: dict):
    status = exc.status
    errors = {field: _field_words(code) for field, code in exc.fields.items()} or {"form": _message(exc)}
    return private(page("pages/program.html", status, **_context(token, program, errors=errors, values=values)))


def _field_words(code: str) -> str:
    return {
        logs.PAIN_INVALID: _("Choose a number from 0 to 10."),
        logs.NOTE_TOO_LONG: _("Keep the note to %(count)d characters or fewer.", count=logs.NOTE_MAX),
        logs.SCORE_INVALID: _("Choose a score from 0 to 10."),
        logs.ACTIVITY_MISSING: _("Name at least one activity."),
        logs.ACTIVITY_TOO_LONG: _("Keep this to %(count)d characters or fewer.", count=logs.PSFS_ACTIVITY_MAX),
    }.get(code, _("Check this answer."))


def _message(exc: DomainError) -> str:
    if isinstance(exc, logs.ProgramNotActive):
        return _("This program is not active, so nothing can be logged.")
    return _("That could not be saved. Please try again.")


def _log(token: str, **changes):
    """One log_day call for today, then back to the page (or the page with its errors)."""
    program = _load(token)
    if isinstance(program, Response):
        return program, None
    try:
        result = logs.log_day(db_session(), program, local_today(program, now()), source="page", now=now(), **changes)
    except NotFound:
        return private(page("pages/not_found.html", 404)), None
    except DomainError as exc:
        return _render_errors(token, program, exc, dict(request.form)), None
    return None, result


def mark_item(token: str, item_id: int):
    failed, result = _log(token, item_id=item_id)
    if failed is not None:
        return failed
    flash(_("Well done! All of today's exercises are done.") if result.newly_done else _("Marked as done."), "success")
    return redirect(url_for("web.program", token=token) + "#exercises")


def mark_all(token: str):
    failed, _result = _log(token, done=True)
    if failed is not None:
        return failed
    flash(_("Well done! All of today's exercises are done."), "success")
    return redirect(url_for("web.program", token=token) + "#exercises")


def save_pain(token: str):
    raw_pain = request.form.get("pain", "")
    note = request.form.get("note")
    try:
        pain = logs.parse_pain(raw_pain) if raw_pain.strip() else None
    except ValidationFailed as exc:
        program = _load(token)
        if isinstance(program, Response):
            return program
        return _render_errors(token, program, exc, dict(request.form))
    failed, result = _log(token, pain=pain, note=note if note is not None else None)
    if failed is not None:
        return failed
    if result.pain_jump is not None:
        flash(
            _(
                "Thank you. Your physiotherapist will see this. If your pain is severe or you have new numbness "
                "or weakness, stop the exercises and call the clinic."
            ),
            "success",
        )
    else:
        flash(_("Thank you, saved."), "success")
    return redirect(url_for("web.program", token=token) + "#pain")


def save_function(token: str):
    program = _load(token)
    if isinstance(program, Response):
        return program
    pairs = [(request.form.get(f"activity_{n}", ""), request.form.get(f"score_{n}", "")) for n in (1, 2, 3)]
    try:
        logs.record_function_scores(db_session(), program, local_today(program, now()), pairs, now=now())
    except DomainError as exc:
        return _render_errors(token, program, exc, dict(request.form))
    flash(_("Thank you, saved."), "success")
    return redirect(url_for("web.program", token=token) + "#function")
