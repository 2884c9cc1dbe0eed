"""Acting on a patient's text: the inbound webhook's whole work, a use case because a reply can
change an appointment (C confirms it) as well as record consent and plan answers.

How a text reads is :func:`booking_service.messaging.replies.read` (its module docstring has the
table of keywords and actions); the answers are outbox rows (kind ``reply``, due now) planned by
:func:`booking_service.messaging.planning.reply`, never sent from the webhook.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.db import write_transaction
from booking_service.exercises import replies as exercise_replies
from booking_service.messaging import planning
from booking_service.messaging.models import InboundMessage
from booking_service.messaging.replies import read
from booking_service.patients.consent import opt_in_phone, opt_out_phone
from booking_service.patients.models import Patient
from booking_service.scheduling.models import Appointment
from booking_service.usecases.booking import next_appointment_for_phone, set_status


def handle_inbound(
    session: Session, *, from_phone: str, body: str, provider_id: str | None, now: datetime
) -> InboundMessage:
    """Record a text from ``from_phone`` and act on it (see the module docstring); no commit.

    Idempotent on ``provider_id`` (Twilio's MessageSid): a retried webhook returns the message
    recorded the first time and does nothing else.
    """
    write_transaction(session)
    if provider_id:
        seen = session.scalars(select(InboundMessage).where(InboundMessage.provider_id == provider_id)).first()
        if seen is not None:
            return seen
    reading = read(body)
    appointment = next_appointment_for_phone(session, from_phone, now=now)
    patient = appointment.patient if appointment is not None else _latest_patient(session, from_phone)
    inbound = InboundMessage(
        provider_id=provider_id,
        from_phone=from_phone,
        body=body,
        patient_id=patient.id if patient is not None else None,
        appointment_id=appointment.id if appointment is not None else None,
        intent=reading.intent,
        likely_opt_out=reading.likely_opt_out,
        needs_staff=reading.intent in ("other", "pain", "done"),
        received_at=now,
    )
    session.add(inbound)
    session.flush()
    if reading.intent in ("other", "pain", "done"):  # home exercises: logs, pain, red flags
        handled = exercise_replies.act_on_text(
            session,
            inbound_id=inbound.id,
            phone=from_phone,
            body=body,
            intent=reading.intent,
            pain=reading.pain,
            french=reading.french,
            patient=patient,
            now=now,
        )
        inbound.needs_staff = not handled

    language = "fr" if reading.french else None

    def answer(template: str, about: Appointment | None = None) -> None:
        planning.reply(
            session,
            phone=from_phone,
            template=template,
            key=f"inbound:{inbound.id}:{template}",
            now=now,
            patient=patient,
            appointment=about,
            language=language,
        )

    detail = f"replied {reading.keyword.upper()}"
    if reading.intent == "stop":
        opt_out_phone(session, from_phone, source="sms_reply", now=now, detail=detail)
        # Someone texting CANCEL may have meant the appointment, not the texts: staff call back.
        inbound.needs_staff = reading.keyword == "cancel" and appointment is not None
    elif reading.intent == "start":
        opt_in_phone(session, from_phone, source="sms_reply", now=now, detail=detail)
    elif reading.intent == "confirm":
        if reading.keyword == "yes":
            opt_in_phone(session, from_phone, source="sms_reply", now=now, detail=detail)
        if appointment is None:
            inbound.needs_staff = True
            answer("reply_no_appointment")
        else:
            if appointment.status == "booked":
                appointment = set_status(session, appointment.id, "confirmed", now=now)
            answer("reply_confirmed", appointment)
    elif reading.intent == "help":
        answer("reply_help", appointment)
    elif reading.intent == "reschedule":
        if appointment is None:
            inbound.needs_staff = True
            answer("reply_no_appointment")
        else:
            answer("reply_reschedule", appointment)
    if not inbound.needs_staff:
        inbound.handled_at = now
    session.flush()
    return inbound


def _latest_patient(session: Session, phone: str) -> Patient | None:
    return session.scalars(select(Patient).where(Patient.phone == phone).order_by(Patient.id.desc()).limit(1)).first()
