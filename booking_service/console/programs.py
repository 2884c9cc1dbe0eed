"""The exercise library (list, search, add, edit) and home exercise programs (assign from an
appointment or the patient record, view with every version, revise, pause, resume, end,
discharge).

Admins and practitioners edit the library; the front desk may read it. A practitioner assigns
and changes programs for their own patients only; the desk for anyone.
"""

from __future__ import annotations

from datetime import time

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from booking_service.clinic.models import Location, Practitioner
from booking_service.console.auth import practitioner_scope
from booking_service.console.common import local_today as clinic_today
from booking_service.console.common import parse_date, parse_int, run, staff_field_errors, staff_message
from booking_service.context import db_session, settings, utcnow
from booking_service.errors import DomainError
from booking_service.exercises import progress
from booking_service.exercises.catalogue import EDITABLE, get_exercise, list_exercises, save_exercise
from booking_service.exercises.models import WEEKDAYS
from booking_service.exercises.programs import (
    ItemSpec,
    create_program,
    default_location,
    end_program,
    get_program,
    local_today,
    open_alerts,
    pause_program,
    program_url,
    programs_of,
    resume_program,
    revise_program,
)
from booking_service.patients.models import Patient
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.queries import is_patient_of

DAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MAX_QUERY = 100
MAX_NOTE = 2000
DEFAULT_TIME = time(18, 0)
_TEXT_LIMITS = {"key": 64, "name_en": 120, "name_fr": 120, "media_url": 500}
_INT_COLUMNS = ("default_reps", "default_sets", "default_hold_seconds", "default_times_per_day")


# --- access (one call each) ------------------------------------------------------------------------


def _visible_patient(patient_id: int) -> Patient:
    """The patient, or 404 when there is none or they are not the practitioner's."""
    session = db_session()
    patient = session.get(Patient, patient_id)
    scope = practitioner_scope()
    if patient is None or (scope is not None and not is_patient_of(session, patient.id, scope)):
        abort(404)
    return patient


def _visible_program(program_id: int):
    """The program, or 404 when there is none or it is another practitioner's."""
    try:
        program = get_program(db_session(), program_id)
    except DomainError:
        abort(404)
    scope = practitioner_scope()
    if scope is not None and program.practitioner_id != scope:
        abort(404)
    return program


def _library_editor() -> None:
    if not current_user.may("exercise", "change"):
        abort(403)


# --- the library ---------------------------------------------------------------------------------


def exercises():
    query = " ".join(request.args.get("q", "").split())[:MAX_QUERY]
    found = list_exercises(db_session(), query, include_inactive=True)
    return render_template(
        "staff/exercises.html",
        nav="exercises",
        query=query,
        exercises=found,
        can_edit=current_user.may("exercise", "change"),
    )


def _exercise_values(form) -> dict:
    values: dict = {}
    for column in EDITABLE:
        if column == "active":
            values[column] = form.get("active") == "yes"
        elif column in _INT_COLUMNS:
            raw = form.get(column, "").strip()
            values[column] = None if not raw else (parse_int(raw) if parse_int(raw) is not None else -1)
        else:
            text = form.get(column, "").strip()
            limit = _TEXT_LIMITS.get(column)
            values[column] = (text[: limit + 1] if limit else text[:4001]) or (None if column == "media_url" else "")
    return values


def exercise_form(exercise_id: int | None = None):
    """GET: the form (empty, or the exercise). POST: save and go back to the list."""
    _library_editor()
    session = db_session()
    exercise = get_exercise(session, exercise_id) if exercise_id is not None else None
    if request.method == "POST":
        values = _exercise_values(request.form)
        try:
            saved = save_exercise(session, values, exercise_id=exercise_id)
        except DomainError as exc:
            return render_template(
                "staff/exercise_form.html",
                nav="exercises",
                exercise=exercise,
                values=values,
                errors=staff_field_errors(exc),
                error=staff_message(exc),
            ), exc.status
        flash(f"Saved “{saved.name_en}”.", "success")
        return redirect(url_for("console.exercises"))
    values = {c: getattr(exercise, c) for c in EDITABLE} if exercise else {"active": True, "default_times_per_day": 1}
    return render_template(
        "staff/exercise_form.html", nav="exercises", exercise=exercise, values=values, errors={}, error=None
    )


# --- assigning and revising ----------------------------------------------------------------------


def _practitioners():
    scope = practitioner_scope()
    query = select(Practitioner).where(Practitioner.active.is_(True)).order_by(Practitioner.last_name)
    if scope is not None:
        query = query.where(Practitioner.id == scope)
    return list(db_session().scalars(query))


def _form_values(form, library) -> dict:
    """The program form as plain values; a number that is not one becomes -1, so the domain's
    bounds name the field."""

    def number(raw):
        raw = (raw or "").strip()
        return None if not raw else (parse_int(raw) if parse_int(raw) is not None else -1)

    chosen = [e for e in library if form.get(f"ex_{e.id}") == "yes"]
    raw_time = form.get("time", "").strip()
    try:
        at = time.fromisoformat(raw_time) if raw_time else None
    except ValueError:
        at = None
    return {
        "chosen": {e.id for e in chosen},
        "items": [
            ItemSpec(
                exercise_id=e.id,
                reps=number(form.get(f"reps_{e.id}")),
                sets=number(form.get(f"sets_{e.id}")),
                hold_seconds=number(form.get(f"hold_{e.id}")),
                times_per_day=number(form.get(f"tpd_{e.id}")) or 1,
            )
            for e in chosen
        ],
        "days": sorted({d for d in (parse_int(v) for v in form.getlist("day")) if d is not None}),
        "time": at,
        "start": parse_date(form.get("start")),
        "end": parse_date(form.get("end")) if form.get("end", "").strip() else None,
        "note": form.get("note", "").strip()[:MAX_NOTE],
        "practitioner_id": parse_int(form.get("practitioner_id")),
    }


def _form_errors(exc: DomainError, items: list[ItemSpec]) -> dict[str, str]:
    """The domain's field paths (``exercises.1.reps``) -> the form's names (``reps_12``)."""
    names = {"reps": "reps", "sets": "sets", "hold_seconds": "hold", "times_per_day": "tpd", "exercise_id": "ex"}
    words = staff_field_errors(exc)
    result = {}
    for path, message in words.items():
        parts = path.split(".")
        if len(parts) == 3 and parts[0] == "exercises" and parts[1].isdigit() and int(parts[1]) < len(items):
            result[f"{names.get(parts[2], parts[2])}_{items[int(parts[1])].exercise_id}"] = message
        else:
            result[path] = message
    return result


def _render_form(patient, *, program=None, appointment=None, values, errors=None, error=None, status=200):
    session = db_session()
    library = list_exercises(session)
    zone = program.timezone if program else None
    if zone is None:
        location_id = appointment.location_id if appointment else None
        practitioner_id = values.get("practitioner_id") or (appointment.practitioner_id if appointment else None)
        if location_id is None and practitioner_id:
            location_id = default_location(session, patient.id, practitioner_id)
        location = session.get(Location, location_id) if location_id else None
        zone = location.timezone if location else "America/Toronto"
    return render_template(
        "staff/program_form.html",
        nav="patients",
        patient=patient,
        program=program,
        appointment=appointment,
        library=library,
        values=values,
        errors=errors or {},
        error=error,
        zone=zone,
        day_labels=DAY_LABELS,
        practitioners=_practitioners(),
    ), status


def _item_values(items) -> dict:
    return {
        "chosen": {i.exercise_id for i in items},
        "doses": {i.exercise_id: i for i in items},
    }


def assign(patient_id: int):
    """GET: the form, from the patient record or an appointment (``?appointment=``). POST: create
    the program and show it."""
    patient = _visible_patient(patient_id)
    session = db_session()
    appointment_id = parse_int(request.values.get("appointment"))
    appointment = session.get(Appointment, appointment_id) if appointment_id else None
    if appointment is not None and appointment.patient_id != patient.id:
        appointment = None
    library = list_exercises(session)
    if request.method == "GET":
        practitioner_id = appointment.practitioner_id if appointment else (practitioner_scope() or None)
        values = {
            "chosen": set(),
            "days": [0, 2, 4],
            "time": DEFAULT_TIME,
            "start": clinic_today(None),
            "end": None,
            "note": "",
            "practitioner_id": practitioner_id,
        }
        return _render_form(patient, appointment=appointment, values=values)
    values = _form_values(request.form, library)
    scope = practitioner_scope()
    practitioner_id = scope if scope is not None else values["practitioner_id"]
    location_id = (
        appointment.location_id if appointment else default_location(session, patient.id, practitioner_id or 0)
    )
    try:
        program = create_program(
            session,
            patient_id=patient.id,
            practitioner_id=practitioner_id or 0,
            location_id=location_id or 0,
            items=values["items"],
            days=values["days"],
            time_of_day=values["time"],
            start=values["start"],
            end=values["end"],
            appointment_id=appointment.id if appointment else None,
            user_id=current_user.user_id,
            secret_key=settings().SECRET_KEY,
            now=utcnow(),
        )
    except DomainError as exc:
        return _render_form(
            patient,
            appointment=appointment,
            values={**values, "doses": {i.exercise_id: i for i in values["items"]}},
            errors=_form_errors(exc, values["items"]),
            error=staff_message(exc),
            status=exc.status,
        )
    flash("Program assigned. Give the patient the link below if they do not get texts.", "success")
    return redirect(url_for("console.program", program_id=program.id))


def revise(program_id: int):
    """GET: the form prefilled with the current version. POST: a new version."""
    program = _visible_program(program_id)
    patient = db_session().get(Patient, program.patient_id)
    library = list_exercises(db_session())
    if request.method == "GET":
        current = program.current
        values = {
            **_item_values(current.items),
            "days": current.days,
            "time": current.time_of_day,
            "start": max(local_today(program, utcnow()), program.start_date),
            "end": program.end_date,
            "note": "",
            "practitioner_id": program.practitioner_id,
        }
        return _render_form(patient, program=program, values=values)
    values = _form_values(request.form, library)
    try:
        revise_program(
            db_session(),
            program.id,
            items=values["items"],
            days=values["days"],
            time_of_day=values["time"],
            start=values["start"],
            end=values["end"],
            note=values["note"],
            user_id=current_user.user_id,
            now=utcnow(),
        )
    except DomainError as exc:
        return _render_form(
            patient,
            program=program,
            values={**values, "doses": {i.exercise_id: i for i in values["items"]}},
            errors=_form_errors(exc, values["items"]),
            error=staff_message(exc),
            status=exc.status,
        )
    flash(f"Saved as version {program.version}. The earlier versions stay below.", "success")
    return redirect(url_for("console.program", program_id=program.id))


# --- one program ---------------------------------------------------------------------------------


def show(program_id: int):
    program = _visible_program(program_id)
    session = db_session()
    logs = progress.logs(session, program.id)
    weeks = progress.weekly_adherence(program, logs, today=local_today(program, utcnow()))
    return render_template(
        "staff/program.html",
        nav="patients",
        program=program,
        patient=session.get(Patient, program.patient_id),
        practitioner=session.get(Practitioner, program.practitioner_id),
        url=program_url(program, secret_key=settings().SECRET_KEY, base_url=settings().PUBLIC_BASE_URL),
        logs=logs,
        weeks=weeks,
        overall=progress.overall_adherence(weeks),
        alerts=open_alerts(session, program.id),
        weekdays=WEEKDAYS,
        day_labels=DAY_LABELS,
    )


_ACTIONS = {
    "pause": (lambda s, pid, now: pause_program(s, pid, reason="staff", now=now), "Paused: no texts until resumed."),
    "resume": (lambda s, pid, now: resume_program(s, pid, now=now), "Resumed."),
    "end": (lambda s, pid, now: end_program(s, pid, now=now), "Program ended."),
    "discharge": (lambda s, pid, now: end_program(s, pid, discharged=True, now=now), "Discharged: program ended."),
}


def act(program_id: int):
    """POST ``action`` = pause, resume, end or discharge."""
    program = _visible_program(program_id)
    action = _ACTIONS.get(request.form.get("action", ""))
    here = url_for("console.program", program_id=program.id)
    if action is None:
        flash("Choose one of the buttons.", "error")
        return redirect(here)
    operation, done = action

    def run_it() -> str:
        operation(db_session(), program.id, utcnow())
        return done

    return run(run_it, then=here)


def of_patient(patient_id: int) -> list:
    """The patient's programs the signed-in user may see (for the patient and appointment pages)."""
    return programs_of(db_session(), patient_id, practitioner_id=practitioner_scope())
