"""The one reaction to a permanent failure of a text, wherever it is learnt: from the send
itself (the record step) or later from the provider's status report."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.messaging import planning
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient


def react_to_permanent_failure(
    session: Session,
    message: OutboxMessage,
    *,
    opted_out: bool,
    bad_address: bool,
    now: datetime,
    opt_out_source: str = "provider",
    detail: str = "",
) -> bool:
    """React to ``message`` (an SMS already marked ``failed``) failing for good; no commit.

    ``opted_out`` (the recipient opted out at the provider, Twilio 21610): record the opt-out
    of ``message.to`` exactly as a STOP does (ledger event with ``opt_out_source``, the
    number's pending texts cancelled). ``bad_address`` (the number cannot take texts): mark the
    patient's phone invalid, if it is still this number, and plan the same message by e-mail
    (:func:`plan_email_fallback`). Anything else, or an e-mail: nothing. Returns True when it
    recorded a new opt-out.
    """
    to = message.to
    if message.channel != "sms" or not to:
        return False
    if opted_out:
        from booking_service.patients.consent import opt_out_phone

        return opt_out_phone(session, to, source=opt_out_source, now=now, detail=detail)
    if bad_address:
        patient = session.get(Patient, message.patient_id) if message.patient_id is not None else None
        if patient is not None and patient.phone == to:
            if patient.phone_invalid_at is None:
                patient.phone_invalid_at = now
            plan_email_fallback(session, message, patient, now=now)
    return False


def plan_email_fallback(session: Session, message: OutboxMessage, patient: Patient, *, now: datetime) -> None:
    """Plan ``message`` again by e-mail, due now, when planning's consent rule allows that
    kind by e-mail (notices answering a booking change need only an address; the others need
    e-mail consent too). Idempotent: the fallback's dedupe key derives from the text's."""
    transactional = message.kind in planning.NOTICE_KINDS
    if not planning.email_allowed(patient, transactional=transactional):
        return
    key = fallback_dedupe_key(message.dedupe_key)
    if session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key)) is not None:
        return
    session.add(
        planning.row(
            message.appointment,
            patient,
            kind=message.kind,
            channel="email",
            to=patient.email,
            due=now,
            key=key,
            now=now,
            template=message.template,
            payload={**(message.payload or {}), "fallback_from": message.id},
            body=message.body if message.template is None else None,
        )
    )
    session.flush()


def fallback_dedupe_key(key: str) -> str:
    """The dedupe key of the e-mail sent in place of an undeliverable text (fits 160 chars)."""
    suffix = ":email-fallback"
    if len(key) + len(suffix) <= 160:
        return key + suffix
    return hashlib.sha256(key.encode("utf-8")).hexdigest() + suffix
