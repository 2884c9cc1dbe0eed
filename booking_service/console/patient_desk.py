"""Patients at the desk: a new patient (with the duplicate warning), contact details and
consents as the patient gives them, staff notes, and two records compared side by side before a
merge (``patients.desk``, ``patients.duplicates``, ``patients.merge``)."""

from __future__ import annotations

from datetime import date

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from booking_service import audit
from booking_service.console.auth import practitioner_scope
from booking_service.console.booking import DUPLICATE_REASONS
from booking_service.console.common import (
    clinic_or_none,
    display_phone,
    local_today,
    run,
    staff_field_errors,
    staff_message,
)
from booking_service.context import db_session, utcnow
from booking_service.errors import DomainError
from booking_service.form_values import parse_int
from booking_service.patients import desk
from booking_service.patients.duplicates import find_duplicates
from booking_service.patients.merge import CHOOSABLE, rows_keyed_by
from booking_service.patients.models import Patient
from booking_service.patients.operations import PatientDetails
from booking_service.patients.queries import opt_out_of, search_patients
from booking_service.scheduling.queries import is_patient_of

MAX_FIELD = 254
DETAIL_FIELDS = ("first_name", "last_name", "phone", "email", "language", "birth_date")
CONSENTS = ("sms_consent", "email_consent", "exercise_sms_consent")
# What the side-by-side comparison names; other tables keyed by the patient show by name.
RECORD_LABELS = {
    "appointments": "Appointments",
    "outbox_messages": "Messages",
    "inbound_messages": "Texts received",
    "consent_events": "Consent history",
    "programs": "Exercise programs",
    "program_logs": "Exercise logs",
    "function_scores": "Function scores",
    "alerts": "Alerts",
    "waitlist_entries": "Waitlist entries",
    "patient_notes": "Staff notes",
}


def _clinic_tz() -> str:
    clinic = clinic_or_none()
    return clinic.timezone if clinic else "UTC"


def _clinic_values() -> tuple[str, str]:
    clinic = clinic_or_none()
    return (clinic.country, clinic.default_language) if clinic else ("CA", "en")


def _read_form(form) -> dict:
    values = {name: form.get(name, "").strip()[:MAX_FIELD] for name in DETAIL_FIELDS}
    values.update({name: form.get(name) == "yes" for name in CONSENTS})
    return values


def _details(values: dict) -> PatientDetails:
    return PatientDetails(
        first_name=values["first_name"],
        last_name=values["last_name"],
        email=values["email"] or None,
        phone=values["phone"] or None,
        language=values["language"] or None,
        sms_consent=values["sms_consent"],
        email_consent=values["email_consent"],
        exercise_sms_consent=values["exercise_sms_consent"],
    )


def _values_of(patient: Patient) -> dict:
    return {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "phone": display_phone(patient.phone),
        "email": patient.email or "",
        "language": patient.language,
        "birth_date": patient.birth_date.isoformat() if patient.birth_date else "",
        **{name: getattr(patient, name) for name in CONSENTS},
    }


def _visible_patient(patient_id: int) -> Patient:
    patient = db_session().get(Patient, patient_id)
    scope = practitioner_scope()
    if patient is None or (scope is not None and not is_patient_of(db_session(), patient.id, scope)):
        abort(404)
    return patient


# --- a new patient ----------------------------------------------------------------------------------


def new_patient():
    """GET: the new-patient form. POST: the records that may be this person, to choose from
    (``patient_choice``: a record's id opens it; ``new`` makes the record), or the record made
    when none may be."""
    today = local_today(None)
    if request.method == "GET":
        return _render_new({"language": _clinic_values()[1]}, {}, None, today)
    values = _read_form(request.form)
    choice = request.form.get("patient_choice", "").strip()[:12]
    birth_date = desk.read_birth_date(values["birth_date"])
    session = db_session()
    if choice.isdigit():
        return redirect(url_for("console.patient", patient_id=int(choice)))
    country, language = _clinic_values()
    if choice != "new":
        candidates = find_duplicates(
            session,
            first_name=values["first_name"],
            last_name=values["last_name"],
            email=values["email"],
            phone=values["phone"],
            birth_date=birth_date if isinstance(birth_date, date) else None,
            country=country,
        )
        if candidates:
            return _render_new(values, {}, None, today, duplicates=candidates)
    try:
        patient = desk.create_patient(
            session, _details(values), birth_date=birth_date, country=country, default_language=language, now=utcnow()
        )
    except DomainError as exc:
        return _render_new(values, staff_field_errors(exc), staff_message(exc), today, status=exc.status)
    flash(f"Added {patient.display_name}.", "success")
    return redirect(url_for("console.patient", patient_id=patient.id))


def _render_new(values: dict, errors: dict, error: str | None, today, *, duplicates=None, status: int = 200):
    return (
        render_template(
            "staff/patient_new.html",
            nav="patients",
            values=values,
            errors=errors,
            error=error,
            today=today,
            duplicates=duplicates or [],
            duplicate_reasons=DUPLICATE_REASONS,
        ),
        status,
    )


# --- contact details and consents ------------------------------------------------------------------


def edit(patient_id: int):
    """GET: the patient's details and consents as a form. POST: save them (audited)."""
    patient = _visible_patient(patient_id)
    if request.method == "GET":
        return _render_edit(patient, _values_of(patient), {}, None)
    values = _read_form(request.form)
    country, language = _clinic_values()
    try:
        updated = desk.update_details(
            db_session(),
            patient.id,
            _details(values),
            birth_date=desk.read_birth_date(values["birth_date"]),
            country=country,
            default_language=language,
            now=utcnow(),
        )
    except DomainError as exc:
        return _render_edit(patient, values, staff_field_errors(exc), staff_message(exc), status=exc.status)
    if updated.changed:
        changed = ", ".join(name.replace("_", " ") for name in updated.changed)
        flash(f"Saved {updated.patient.display_name}'s details ({changed}).", "success")
    else:
        flash("Nothing changed.", "success")
    return redirect(url_for("console.patient", patient_id=patient.id))


def _render_edit(patient: Patient, values: dict, errors: dict, error: str | None, status: int = 200):
    return (
        render_template(
            "staff/patient_edit.html",
            nav="patients",
            patient=patient,
            values=values,
            errors=errors,
            error=error,
            opt_out=opt_out_of(db_session(), patient.phone),
            today=local_today(None),
            clinic_tz=_clinic_tz(),
        ),
        status,
    )


# --- staff notes -------------------------------------------------------------------------------------


def note_add(patient_id: int):
    body = request.form.get("body", "")[: desk.MAX_NOTE + 1]

    def operation() -> str:
        desk.add_note(db_session(), patient_id, body, user_id=current_user.user_id, now=utcnow())
        return "Note added."

    return run(operation, then=url_for("console.patient", patient_id=patient_id) + "#notes-title")


def note_edit(patient_id: int, note_id: int):
    body = request.form.get("body", "")[: desk.MAX_NOTE + 1]

    def operation() -> str:
        desk.edit_note(db_session(), patient_id, note_id, body, user_id=current_user.user_id, now=utcnow())
        return "Note saved."

    return run(operation, then=url_for("console.patient", patient_id=patient_id) + "#notes-title")


# --- two records side by side ---------------------------------------------------------------------------


def compare(patient_id: int):
    """Two records side by side (``?other=<id>``; without it, a search for the other one), with
    what a merge would move, and the merge form: ``other`` merges into this one."""
    session = db_session()
    kept = _visible_patient(patient_id)
    other_id = parse_int(request.args.get("other"))
    other = session.get(Patient, other_id) if other_id else None
    query = " ".join(request.args.get("q", "").split())[:100]
    found = []
    if other is None and query:
        found = [p for p in search_patients(session, query, country=_clinic_values()[0], limit=20) if p.id != kept.id]
    for shown in (kept, other) if other is not None else (kept,):
        audit.record(session, "patient.view", "patient", shown.id, {"surface": "console_compare"})
    return render_template(
        "staff/patient_compare.html",
        nav="patients",
        kept=kept,
        other=other,
        query=query,
        found=found,
        kept_rows=rows_keyed_by(session, kept.id),
        other_rows=rows_keyed_by(session, other.id) if other is not None else {},
        record_labels=RECORD_LABELS,
        choosable=CHOOSABLE,
        clinic_tz=_clinic_tz(),
    )
