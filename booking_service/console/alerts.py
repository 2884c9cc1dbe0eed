"""Alerts on the console: open red flags, pain jumps and urgent bookings, oldest first, for the
desk and for the patient's practitioner; acknowledging one resumes what it paused."""

from __future__ import annotations

from flask import render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from booking_service.console.auth import practitioner_scope
from booking_service.console.common import clinic_or_none, run
from booking_service.context import db_session, utcnow
from booking_service.exercises import alerts
from booking_service.patients.models import Patient
from booking_service.triage import operations as triage

KIND_LABELS = {"red_flag": "Red flag", "pain": "Pain jump", "urgent_booking": "Urgent booking"}
RECENT = 20


def index():
    session = db_session()
    scope = practitioner_scope()
    open_alerts = alerts.alerts(session, status="open", practitioner_id=scope)
    done = alerts.alerts(session, status="acknowledged", practitioner_id=scope)[-RECENT:][::-1]
    ids = {a.patient_id for a in open_alerts + done}
    patients = {p.id: p for p in session.scalars(select(Patient).where(Patient.id.in_(ids)))}
    clinic = clinic_or_none()
    return render_template(
        "staff/alerts.html",
        nav="alerts",
        open_alerts=open_alerts,
        acknowledged=done,
        patients=patients,
        kind_labels=KIND_LABELS,
        clinic_tz=clinic.timezone if clinic else "UTC",
    )


def acknowledge(alert_id: int):
    back = request.form.get("back") == "progress"

    def operation() -> str:
        triage.acknowledge_alert(
            db_session(),
            alert_id,
            user_id=current_user.user_id,
            clinician=current_user.may("triage", "handle"),  # a clinician's acknowledgement also handles it
            now=utcnow(),
            practitioner_id=practitioner_scope(),
        )
        return "Alert acknowledged. The patient's exercise texts resume once no alert is open."

    return run(operation, then=request.referrer if back and request.referrer else url_for("console.alerts"))


def open_count() -> int:
    """For the nav badge: open alerts the signed-in user may see."""
    return alerts.count_open(db_session(), practitioner_id=practitioner_scope())
