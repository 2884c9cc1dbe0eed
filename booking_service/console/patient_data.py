"""A patient's data: download it as JSON (the desk), erase it (admins, after a confirmation)."""

from __future__ import annotations

import json

from flask import Response, abort, flash, redirect, render_template, request, url_for

from booking_service.console.common import run
from booking_service.context import db_session, utcnow
from booking_service.patients.models import Patient
from booking_service.usecases.erase import erase_patient
from booking_service.usecases.export import export_patient

MAX_CONFIRMATION = 200


def export(patient_id: int):
    """POST (so no link prefetch or crawler makes one): the patient's data as a JSON file."""
    data = export_patient(db_session(), patient_id, now=utcnow())  # NotFound -> the 404 page
    return Response(
        json.dumps(data, ensure_ascii=False, indent=2),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="patient-{patient_id}.json"'},
    )


def erase(patient_id: int):
    """GET: what erasing does, and a box to type the last name in. POST: erase."""
    patient = db_session().get(Patient, patient_id)
    if patient is None:
        abort(404)
    here = url_for("console.patient", patient_id=patient_id)
    if request.method == "GET":
        return render_template("staff/patient_erase.html", nav="patients", patient=patient)
    confirmation = request.form.get("confirmation", "")[:MAX_CONFIRMATION]
    if not confirmation.strip():
        flash("Type the patient's last name to confirm.", "error")
        return redirect(url_for("console.patient_erase", patient_id=patient_id))

    def operation() -> str:
        counts = erase_patient(db_session(), patient_id, confirmation=confirmation, now=utcnow())
        cancelled = counts["cancelled_visits"]
        visits = f" {cancelled} future visit{'s' if cancelled != 1 else ''} cancelled." if cancelled else ""
        return f"The patient's data was erased.{visits} Their appointment history is kept without personal details."

    return run(operation, then=here, on_error=url_for("console.patient_erase", patient_id=patient_id))
