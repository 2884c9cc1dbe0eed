"""Treatment plans at the desk: "Book a series" from the patient record (count, weekly on given
weekdays or every N days, a time, a practitioner or anyone), a preview of every visit (free, or
in conflict with alternatives to pick), then "Book all" in one piece; a plan's page; "Cancel the
rest of this plan".

The preview is the same check the booking makes (``usecases.plans.preview``); "Book all" books
exactly the times previewed and picked. If a visit was taken meanwhile, nothing is booked and
the preview comes back with the new conflict to resolve.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from booking_service.clinic.queries import practitioners_for
from booking_service.console.auth import practitioner_scope
from booking_service.console.booking import visit_choice
from booking_service.console.common import (
    STAFF_FIELD_MESSAGES,
    STAFF_MESSAGES,
    fmt_when,
    parse_date,
    parse_int,
    parse_slot_value,
    run,
    staff_field_errors,
    staff_message,
)
from booking_service.context import db_session, discard_changes, settings, utcnow
from booking_service.errors import PLAN_INVALID, TIME_INVALID, DomainError, PlanConflicts
from booking_service.patients.models import Patient
from booking_service.scheduling import plans as plan_queries
from booking_service.scheduling.models import PLAN_MAX_EVERY_DAYS, PLAN_MAX_VISITS
from booking_service.scheduling.queries import is_patient_of
from booking_service.usecases.plans import PlanRequest, book_plan, cancel_rest, preview

DAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DEFAULT_COUNT = 6
DEFAULT_TIME = time(10, 0)
MAX_REASON = 500
# What the receptionist may not see change between the preview and "Book all".
_SERIES_FIELDS = (
    "service",
    "location",
    "practitioner",
    "first_day",
    "time",
    "repeat",
    "weekday",
    "every_days",
    "count",
)
CONFLICT_WORDS = {
    plan_queries.TAKEN: "Taken: nobody is free then",
    plan_queries.UNAVAILABLE: "Not a bookable time (closed, outside hours or too far ahead)",
    plan_queries.PATIENT_BUSY: "The patient has another visit then",
}


def conflict_text(conflict: str, chosen: str | None) -> str:
    """The preview's words for a visit's conflict; a series with one chosen practitioner names
    them ("Taken: Maya Chen is not free then") rather than "nobody"."""
    if conflict == plan_queries.TAKEN and chosen:
        return f"Taken: {chosen} is not free then"
    return CONFLICT_WORDS.get(conflict, conflict)


def _visible_patient(patient_id: int) -> Patient:
    """The patient, or 404 when there is none or they are not the practitioner's."""
    session = db_session()
    patient = session.get(Patient, patient_id)
    scope = practitioner_scope()
    if patient is None or (scope is not None and not is_patient_of(session, patient.id, scope)):
        abort(404)
    return patient


def _visible_plan(plan_id: int):
    """The plan, or 404 when there is none or it is not the practitioner's."""
    session = db_session()
    try:
        plan = plan_queries.get_plan(session, plan_id)
    except DomainError:
        abort(404)
    scope = practitioner_scope()
    if scope is not None and not plan_queries.plan_belongs_to(session, plan.id, scope):
        abort(404)
    return plan


# --- the form ------------------------------------------------------------------------------------


def _parse_time(raw: str | None) -> time | None:
    try:
        return time.fromisoformat((raw or "").strip()[:5])
    except ValueError:
        return None


def _series(form, patient: Patient) -> dict:
    """The series asked for, from the form (or defaults): the choices offered and the values."""
    choice = visit_choice(form, prefer_kind="follow_up")
    chosen_location = choice["location"]
    zone = ZoneInfo(chosen_location.timezone if chosen_location else "UTC")
    today = utcnow().astimezone(zone).date()
    first_day = parse_date(form.get("first_day")) or today
    weekdays = sorted({d for d in (parse_int(v) for v in form.getlist("weekday")) if d is not None and d <= 6})
    if "first_day" not in form:
        weekdays = [first_day.weekday()]
    raw_count, raw_every = form.get("count"), form.get("every_days")
    return {
        **choice,
        "patient": patient,
        "first_day": first_day,
        "today": today,
        "time": _parse_time(form.get("time")) if "time" in form else DEFAULT_TIME,
        "repeat": "every" if form.get("repeat") == "every" else "weekly",
        "weekdays": weekdays,
        "count": parse_int(raw_count) if raw_count is not None else DEFAULT_COUNT,
        "every_days": parse_int(raw_every) if raw_every else 7,
        "is_practitioner": practitioner_scope("appointment", "book") is not None,
    }


def _signature(form) -> str:
    """The series' own fields as sent, to tell a changed form from the one previewed."""
    return "|".join(f"{name}={','.join(sorted(form.getlist(name)))}" for name in _SERIES_FIELDS)


def _request(series: dict, *, starts: list[datetime] | None = None) -> PlanRequest:
    """The plan request of the form; raises DomainError (code invalid) for what it lacks."""
    first_start = None
    if series["time"] is not None and series["location"] is not None:
        zone = ZoneInfo(series["location"].timezone)
        first_start = datetime.combine(series["first_day"], series["time"], tzinfo=zone)
    weekly = series["repeat"] == "weekly"
    return PlanRequest(
        patient_id=series["patient"].id,
        service_id=series["service_id"] or 0,
        location_id=series["location_id"] or 0,
        practitioner_id=series["practitioner_id"],
        first_start=first_start,
        count=series["count"] if series["count"] is not None else 0,
        every_days=None if weekly else (series["every_days"] if series["every_days"] is not None else 0),
        weekdays=tuple(series["weekdays"]) if weekly else None,
        starts=tuple(starts) if starts is not None else None,
        source="staff",
        user_id=current_user.user_id,
    )


def _form_errors(exc: DomainError) -> dict[str, str]:
    """The domain's field names as the form's: the first visit is the date and time inputs."""
    worded = staff_field_errors(exc)
    if "first_start" in worded:
        worded.setdefault("first_day", worded.pop("first_start"))
    for name in list(worded):
        if name.startswith("starts."):
            worded.setdefault("visits", worded.pop(name))
    return worded


def _render(series: dict, *, checked=None, errors=None, error=None, status: int = 200):
    return (
        render_template(
            "staff/plan_new.html",
            nav="patients",
            **series,
            day_labels=DAY_LABELS,
            max_visits=PLAN_MAX_VISITS,
            max_every_days=PLAN_MAX_EVERY_DAYS,
            checked=checked,
            conflict_text=conflict_text,
            signature=_signature(request.form) if request.method == "POST" else "",
            practitioner_names={p.id: p.display_name for p in series["practitioners"]} | _names(checked),
            errors=errors or {},
            error=error,
        ),
        status,
    )


def _names(checked) -> dict[int, str]:
    """Names of the practitioners a preview mentions (for "any", possibly all of them)."""
    if checked is None:
        return {}
    return {p.id: p.display_name for p in practitioners_for(db_session(), location_id=checked.location.id)}


def new(patient_id: int):
    """GET: the series form. POST ``step=preview``: every visit checked, conflicts with their
    alternatives. POST ``step=book``: book the previewed times (alternatives picked) in one piece."""
    patient = _visible_patient(patient_id)
    form = request.form if request.method == "POST" else request.args
    series = _series(form, patient)
    if request.method == "GET":
        return _render(series)
    if series["time"] is None:
        words = STAFF_FIELD_MESSAGES[TIME_INVALID]
        return _render(series, errors={"time": words}, error=STAFF_MESSAGES[PLAN_INVALID], status=422)
    session, now = db_session(), utcnow()
    previewed = request.form.get("previewed")
    if request.form.get("step") == "book" and previewed == _signature(request.form):
        starts = _chosen_starts(request.form)
        try:
            booked = book_plan(session, _request(series, starts=starts), secret_key=settings().SECRET_KEY, now=now)
        except PlanConflicts as exc:
            discard_changes()
            checked = preview(session, _request(series, starts=starts), now=now)
            return _render(series, checked=checked, error=staff_message(exc), status=409)
        except DomainError as exc:
            discard_changes()
            return _render(series, errors=_form_errors(exc), error=staff_message(exc), status=exc.status)
        first = booked.appointments[0]
        flash(
            f"Booked {len(booked.appointments)} visits for {patient.display_name}, from "
            f"{fmt_when(first.start_at, first.location.timezone)}. One confirmation lists them all.",
            "success",
        )
        return redirect(url_for("console.plan", plan_id=booked.plan.id))
    try:
        checked = preview(session, _request(series), now=now)
    except DomainError as exc:
        return _render(series, errors=_form_errors(exc), error=staff_message(exc), status=exc.status)
    note = None
    if request.form.get("step") == "book":
        note = "The series changed since the preview: check the visits below, then book."
    return _render(series, checked=checked, error=note)


def _chosen_starts(form) -> list[datetime]:
    """Each previewed visit's start, or the alternative picked for it."""
    starts = []
    for index in range(PLAN_MAX_VISITS):
        start = parse_slot_value(form.get(f"choice_{index}")) or parse_slot_value(form.get(f"start_{index}"))
        if start is None:
            break
        starts.append(start)
    return starts


# --- one plan ---------------------------------------------------------------------------------------


def show(plan_id: int):
    plan = _visible_plan(plan_id)
    return render_template(
        "staff/plan.html",
        nav="patients",
        plan=plan,
        progress=plan_queries.progress(plan),
        upcoming=plan_queries.upcoming(db_session(), plan.id, now=utcnow()),
        day_labels=DAY_LABELS,
    )


def cancel(plan_id: int):
    """POST: cancel every visit of the plan still to come; back to where it was asked from."""
    plan = _visible_plan(plan_id)
    reason = request.form.get("reason", "").strip()[:MAX_REASON] or None
    back = (
        url_for("console.patient", patient_id=plan.patient_id)
        if request.form.get("back") == "patient"
        else url_for("console.plan", plan_id=plan.id)
    )

    def operation() -> str:
        _plan, cancelled = cancel_rest(db_session(), plan.id, now=utcnow(), user_id=current_user.user_id, reason=reason)
        return (
            f"Cancelled the rest of the plan: {len(cancelled)} visit{'s' if len(cancelled) != 1 else ''}. "
            "The patient gets one message listing the dates."
        )

    return run(operation, then=back)
