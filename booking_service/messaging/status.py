"""Delivery status reported by the provider (Twilio's status callbacks).

Status only moves forward: ``pending``/``sending`` -> ``sent`` -> ``delivered`` or ``failed``.
A callback that would move a row back (``sent`` after ``delivered``, anything after ``failed``)
is ignored: Twilio does not promise to deliver callbacks in order. Rows that are ``skipped`` or
``cancelled`` are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.db import write_transaction
from booking_service.messaging.models import OutboxMessage
from booking_service.messaging.replies import opt_out_phone
from booking_service.messaging.transports import TWILIO_ERROR_RULES
from booking_service.patients.models import Patient

# Twilio's MessageStatus values -> ours. Unknown values are ignored.
TWILIO_STATUSES = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}
# How far along each of our statuses is; a callback may only raise it.
_RANK = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "failed": 3}
OPTED_OUT_CODE = "21610"


@dataclass(frozen=True)
class Outcome:
    """What a callback did: ``message`` is None for an unknown id; ``changed`` False when the
    callback was stale or repeated; ``opted_out`` True when it recorded an opt-out."""

    message: OutboxMessage | None
    changed: bool
    opted_out: bool = False


def _describe(code: str | None, provider_status: str) -> str:
    if code and code.isdigit() and int(code) in TWILIO_ERROR_RULES:
        return f"Twilio error {code}: {TWILIO_ERROR_RULES[int(code)].reason}"
    if code:
        return f"Twilio error {code} ({provider_status})"
    return f"Twilio reported {provider_status}"


def apply_twilio_status(
    session: Session, *, provider_id: str, provider_status: str, error_code: str | None, now: datetime
) -> Outcome:
    """Apply one Twilio status callback to the outbox row with that MessageSid; no commit.

    ``failed``/``undelivered`` record ``error_code`` and a readable ``error``. Error 21610 (the
    recipient replied STOP) also records the phone's opt-out and cancels its pending texts;
    errors that say the number cannot take texts (see ``TWILIO_ERROR_RULES``, ``bad_address``)
    mark the patient's phone invalid so no more texts are planned for it.
    """
    ours = TWILIO_STATUSES.get((provider_status or "").strip().lower())
    error_code = (error_code or "").strip() or None
    write_transaction(session)
    message = session.scalars(
        select(OutboxMessage).where(OutboxMessage.provider_id == provider_id).order_by(OutboxMessage.id).limit(1)
    ).first()
    if message is None or ours is None:
        return Outcome(message, changed=False)
    current = message.status
    if current not in _RANK or _RANK[ours] <= _RANK[current]:
        return Outcome(message, changed=False)
    message.status = ours
    message.updated_at = now
    if ours == "sent" and message.sent_at is None:
        message.sent_at = now
    elif ours == "delivered":
        message.delivered_at = now
        message.error_code = None
        message.error = None
    elif ours == "failed":
        message.error_code = error_code
        message.error = _describe(error_code, provider_status)
    opted_out = False
    if ours == "failed" and message.channel == "sms" and message.to:
        if error_code == OPTED_OUT_CODE:
            opted_out = opt_out_phone(
                session, message.to, source="twilio_21610", now=now, detail=f"status callback for {provider_id}"
            )
        elif error_code and error_code.isdigit():
            rule = TWILIO_ERROR_RULES.get(int(error_code))
            if rule is not None and rule.bad_address and message.patient_id is not None:
                patient = session.get(Patient, message.patient_id)
                if patient is not None and patient.phone == message.to and patient.phone_invalid_at is None:
                    patient.phone_invalid_at = now
    session.flush()
    return Outcome(message, changed=True, opted_out=opted_out)
