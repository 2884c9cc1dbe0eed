"""Delivery status reported by a provider (Twilio's status callbacks), in our vocabulary.

Status only moves forward: ``pending``/``sending`` -> ``sent`` -> ``delivered`` or ``failed``.
A report that would move a row back (``sent`` after ``delivered``, anything after ``failed``)
is ignored: Twilio does not promise to deliver callbacks in order. Rows that are ``skipped`` or
``cancelled`` are never touched. The provider's own vocabulary is translated before this
module (``booking_service.integrations.twilio.callbacks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.db import write_transaction
from booking_service.messaging.models import OutboxMessage
from booking_service.patients.consent import opt_out_phone
from booking_service.patients.models import Patient

# How far along each of our statuses is; a report may only raise it.
_RANK = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "failed": 3}


@dataclass(frozen=True)
class Outcome:
    """What a report did: ``message`` is None for an unknown id; ``changed`` False when the
    report was stale or repeated; ``opted_out`` True when it recorded an opt-out."""

    message: OutboxMessage | None
    changed: bool
    opted_out: bool = False


def apply_provider_status(
    session: Session,
    *,
    provider_id: str,
    status: str,
    error_code: str | None,
    error: str | None,
    opted_out: bool,
    bad_address: bool,
    now: datetime,
) -> Outcome:
    """Apply one provider report to the outbox row with that provider id; no commit.

    ``status`` is ours (``sent``, ``delivered``, ``failed``). ``failed`` records ``error_code``
    and ``error``; with ``opted_out`` (Twilio 21610: the recipient replied STOP) it also records
    the phone's opt-out and cancels its pending texts; with ``bad_address`` (the number cannot
    take texts) it marks the patient's phone invalid so no more texts are planned for it.
    """
    write_transaction(session)
    message = session.scalars(
        select(OutboxMessage).where(OutboxMessage.provider_id == provider_id).order_by(OutboxMessage.id).limit(1)
    ).first()
    if message is None or status not in _RANK:
        return Outcome(message, changed=False)
    current = message.status
    if current not in _RANK or _RANK[status] <= _RANK[current]:
        return Outcome(message, changed=False)
    message.status = status
    message.updated_at = now
    if status == "sent" and message.sent_at is None:
        message.sent_at = now
    elif status == "delivered":
        message.delivered_at = now
        message.error_code = None
        message.error = None
    elif status == "failed":
        message.error_code = error_code
        message.error = error
    recorded_opt_out = False
    if status == "failed" and message.channel == "sms" and message.to:
        if opted_out:
            # The source names the only provider that reports opt-outs; staff read it in the ledger.
            recorded_opt_out = opt_out_phone(
                session, message.to, source="twilio_21610", now=now, detail=f"status callback for {provider_id}"
            )
        elif bad_address and message.patient_id is not None:
            patient = session.get(Patient, message.patient_id)
            if patient is not None and patient.phone == message.to and patient.phone_invalid_at is None:
                patient.phone_invalid_at = now
    session.flush()
    return Outcome(message, changed=True, opted_out=recorded_opt_out)
