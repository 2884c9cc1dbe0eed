"""The triage queue on the console's front page (``templates/staff/_triage.html``, included by
the day view): urgent bookings and clinical alerts, oldest first, until a clinician marks each
handled. The front desk sees it; only clinicians (admins, practitioners for their own patients)
may mark an item handled (``booking_service.access``: ``("triage", "handle")``)."""

from __future__ import annotations

from flask import request, url_for
from flask_login import current_user

from booking_service.console.alerts import KIND_LABELS
from booking_service.console.auth import practitioner_scope
from booking_service.console.common import RED_FLAG_LABELS, clinic_or_none, run
from booking_service.context import db_session, utcnow
from booking_service.triage import operations, queries


def panel() -> dict | None:
    """What the include shows (None: the user may not see the queue)."""
    if not (current_user.is_authenticated and current_user.may("triage", "read")):
        return None
    clinic = clinic_or_none()
    return {
        "items": queries.queue(db_session(), practitioner_id=practitioner_scope("triage", "read")),
        "can_handle": current_user.may("triage", "handle"),
        "kind_labels": KIND_LABELS,
        "red_flag_labels": RED_FLAG_LABELS,
        "clinic_tz": clinic.timezone if clinic else "UTC",
    }


def _back() -> str:
    return url_for("console.alerts") if request.form.get("back") == "alerts" else url_for("console.day")


def handle_appointment(appointment_id: int):
    def operation() -> str:
        operations.mark_handled(
            db_session(),
            appointment_id=appointment_id,
            user_id=current_user.user_id,
            now=utcnow(),
            practitioner_id=practitioner_scope("triage", "handle"),
        )
        return "Marked handled: the urgent booking leaves the triage queue."

    return run(operation, then=_back())


def handle_alert(alert_id: int):
    def operation() -> str:
        operations.mark_handled(
            db_session(),
            alert_id=alert_id,
            user_id=current_user.user_id,
            now=utcnow(),
            practitioner_id=practitioner_scope("triage", "handle"),
        )
        return "Marked handled: the alert leaves the triage queue."

    return run(operation, then=_back())
