"""Finding a patient; one patient's appointments, consents and text opt-out; possible duplicates
side by side, and merging them (the desk)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import abort, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from booking_service import audit
from booking_service.console import programs
from booking_service.console.auth import practitioner_scope
from booking_service.console.common import clinic_or_none, run
from booking_service.context import db_session, utcnow
from booking_service.form_values import parse_int
from booking_service.patients.desk import MAX_NOTE, notes_of
from booking_service.patients.merge import CHOOSABLE, merge_patients
from booking_service.patients.models import Patient
from booking_service.patients.queries import (
    consent_history,
    opt_out_of,
    opted_out_phones,
    search_patients,
)
from booking_service.scheduling.plans import plans_of
from booking_service.scheduling.plans import progress as plan_progress
from booking_service.scheduling.queries import appointments_of, is_patient_of, patients_of
from booking_service.staff.models import User

MAX_QUERY = 100
RESULTS = 50


def search():
    query = " ".join(request.args.get("q", "").split())[:MAX_QUERY]
    session = db_session()
    clinic = clinic_or_none()
    found = []
    if query:
        found = search_patients(
            session,
            query,
            country=clinic.country if clinic else "CA",
            limit=RESULTS,
            among=patients_of(scope) if (scope := practitioner_scope()) is not None else None,
        )
        # The query may be a name: the trail keeps only which patients were listed.
        audit.record(
            session, "patient.search", "patient", None, {"surface": "console", "listed": [p.id for p in found]}
        )
    return render_template(
        "staff/patients.html",
        nav="patients",
        query=query,
        patients=found,
        opted_out=opted_out_phones(session, [p.phone for p in found]),
        limit=RESULTS,
    )


def show(patient_id: int):
    session = db_session()
    patient = session.get(Patient, patient_id)
    scope = practitioner_scope()
    if patient is None or (scope is not None and not is_patient_of(session, patient.id, scope)):
        abort(404)
    audit.record(session, "patient.view", "patient", patient.id, {"surface": "console"})
    clinic = clinic_or_none()
    desk = current_user.may("patient", "merge")
    return render_template(
        "staff/patient.html",
        nav="patients",
        patient=patient,
        appointments=appointments_of(session, patient.id, practitioner_id=scope),
        consents=consent_history(session, patient),
        opt_out=opt_out_of(session, patient.phone),
        clinic_tz=clinic.timezone if clinic else "UTC",
        programs=programs.of_patient(patient.id),
        plans=[(plan, plan_progress(plan)) for plan in plans_of(session, patient.id, practitioner_id=scope)],
        zone=ZoneInfo,
        # Possible duplicates: the record this one may repeat, and those that may repeat it.
        duplicate_of=session.get(Patient, patient.possible_duplicate_of_id)
        if desk and patient.possible_duplicate_of_id
        else None,
        duplicates=list(
            session.scalars(select(Patient).where(Patient.possible_duplicate_of_id == patient.id).order_by(Patient.id))
        )
        if desk
        else [],
        choosable=CHOOSABLE,
        **_desk_context(session, patient),
    )


def _desk_context(session, patient: Patient) -> dict:
    """The staff notes and their authors' names (``patients.desk``)."""
    notes = notes_of(session, patient.id)
    ids = {i for n in notes for i in (n.created_by_user_id, n.updated_by_user_id) if i}
    authors = dict(session.execute(select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}
    return {"notes": notes, "note_authors": {k: v for k, v in authors.items() if v}, "max_note": MAX_NOTE}


def merge(patient_id: int):
    """POST (the desk): merge the record ``merge_id`` into ``patient_id``, taking the details
    ticked in ``take`` from the merged record; back to the kept patient's page."""
    merge_id = parse_int(request.form.get("merge_id"))
    if merge_id is None:
        abort(400)
    take = frozenset(request.form.getlist("take")) & frozenset(CHOOSABLE)

    def operation() -> str:
        merged = merge_patients(db_session(), keep_id=patient_id, merge_id=merge_id, take=take, now=utcnow())
        return f"Merged patient #{merge_id} into {merged.kept.display_name}."

    return run(
        operation,
        then=url_for("console.patient", patient_id=patient_id),
        on_error=url_for("console.patient", patient_id=patient_id),
    )
