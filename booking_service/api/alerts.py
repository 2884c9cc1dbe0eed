"""Alerts (Bearer token): open red flags, pain jumps and urgent bookings, and acknowledging
them. A practitioner's token sees the alerts of their own patients only; another's answers 404
as an unknown id does (``exercises.alerts.visible``)."""

from __future__ import annotations

from flask import g
from marshmallow import Schema, fields, validate

from booking_service import access
from booking_service.api.auth import actor, staff_required
from booking_service.api.blueprint import bp, documented_errors
from booking_service.api.schemas import MAX_ID
from booking_service.context import db_session
from booking_service.db import utcnow
from booking_service.exercises import alerts
from booking_service.exercises.models import ALERT_KINDS, ALERT_STATUSES
from booking_service.triage import operations as triage

_ID = f"int(max={MAX_ID})"
STATUS_FILTERS = (*ALERT_STATUSES, "all")


class AlertQuerySchema(Schema):
    status = fields.String(
        load_default="open",
        validate=validate.OneOf(STATUS_FILTERS, error=f"Use one of {', '.join(STATUS_FILTERS)}."),
        metadata={"description": "open (default), acknowledged or all."},
    )


class AlertSchema(Schema):
    id = fields.Integer(required=True)
    patient_id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ALERT_KINDS))
    status = fields.String(required=True, validate=validate.OneOf(ALERT_STATUSES))
    created_at = fields.AwareDateTime(required=True, metadata={"description": "ISO 8601, UTC."})
    text = fields.String(required=True, metadata={"description": "For staff only: may quote the patient."})


class AlertListSchema(Schema):
    alerts = fields.List(fields.Nested(AlertSchema), required=True)


def _scope() -> int | None:
    """None for the desk; else the practitioner the token's user is (the access policy's rule)."""
    return access.practitioner_scope(actor(), "alert", "read")


def _alert(alert) -> dict:
    return {
        "id": alert.id,
        "patient_id": alert.patient_id,
        "kind": alert.kind,
        "status": alert.status,
        "created_at": alert.created_at,
        "text": alert.text,
    }


@bp.route("/alerts", methods=["GET"], tags=["Staff"])
@staff_required(bp)
@bp.arguments(AlertQuerySchema, location="query")
@bp.response(200, AlertListSchema)
def list_alerts(args):
    """Alerts, oldest first: red flags and pain jumps reported by patients, urgent bookings"""
    status = None if args["status"] == "all" else args["status"]
    found = alerts.alerts(db_session(), status=status, practitioner_id=_scope())
    return {"alerts": [_alert(a) for a in found]}


@bp.route(f"/alerts/<{_ID}:alert_id>/acknowledge", methods=["POST"], tags=["Staff"])
@staff_required(bp)
@bp.response(200, AlertSchema)
@documented_errors(404)
def acknowledge_alert(alert_id):
    """Acknowledge an alert; the patient's programs paused by alerts resume once none is open

    Acknowledging twice changes nothing the second time. Acknowledged by a clinician (an admin
    or a practitioner), the alert also leaves the console's triage queue.
    """
    user = g.staff_user
    acknowledged = triage.acknowledge_alert(
        db_session(),
        alert_id,
        user_id=user.id,
        clinician=access.allows(actor(), "triage", "handle"),
        now=utcnow(),
        practitioner_id=_scope(),
    )
    return _alert(acknowledged)
