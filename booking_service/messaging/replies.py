"""Patients' texts: reading them and acting on them (the opt-out itself is kept by
:mod:`booking_service.patients.consent`).

:func:`handle_inbound` is the whole of the inbound webhook's work. Keywords are matched on the
whole message, ignoring case, accents, spaces and punctuation (``" Yes! "`` is YES, ``Arrêt``
is ARRET); anything else goes to the staff inbox.

=====================  =========================================================================
keyword                 action
=====================  =========================================================================
C, CONFIRM, OUI         confirm the sender's next appointment; reply with thanks
YES                     the same, and lift a STOP (YES is one of Twilio's opt-in words)
STOP and Twilio's       record the opt-out (SmsOptOut + consent ledger), cancel pending texts to
other opt-out words     the number. No reply: Twilio answers STOP itself and refuses our texts.
START, UNSTOP           lift the opt-out (ledger). No reply: Twilio answers START itself.
HELP, INFO, AIDE        reply with the clinic's name and phone number
R, RESCHEDULE           reply with the manage link of the next appointment
0-10, DONE, red flags   home exercises (``exercises.replies``): log, pain, alert; else for staff
anything else           stored for staff; "stop texting me" and the like flagged likely_opt_out
=====================  =========================================================================

Replies are outbox rows (kind ``reply``, due now), never sent from the webhook.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.db import write_transaction
from booking_service.exercises import replies as exercise_replies
from booking_service.messaging import planning
from booking_service.messaging.models import InboundMessage
from booking_service.patients.consent import opt_in_phone, opt_out_phone
from booking_service.patients.models import Patient
from booking_service.scheduling.models import Appointment
from booking_service.usecases.booking import next_appointment_for_phone, set_status

# Twilio's default opt-out words (Advanced Opt-Out adds OPTOUT and REVOKE; ARRET is its French one).
OPT_OUT_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke", "arret"})
OPT_IN_WORDS = frozenset({"start", "unstop", "yes"})
CONFIRM_WORDS = frozenset({"c", "confirm", "yes", "oui", "confirmer"})
HELP_WORDS = frozenset({"help", "info", "aide"})
RESCHEDULE_WORDS = frozenset({"r", "reschedule", "reporter", "modifier"})
DONE_WORDS = frozenset({"done", "fait", "fini", "termine"})
FRENCH_WORDS = frozenset({"oui", "confirmer", "arret", "aide", "reporter", "modifier", "fait", "fini", "termine"})

# A pain score: "7", "7/10", "pain 7", "Pain: 7/10", "douleur 7", "douleur : 7".
_PAIN = re.compile(r"^(?:(?P<word>pain|douleur)\s*:?\s*)?(?P<score>10|[0-9])(\s*/\s*10)?$")
# Free text that reads as "stop texting me": staff should act on it (record an opt-out by hand)
# even though it is not a keyword Twilio acts on.
_LIKELY_OPT_OUT = re.compile(
    r"\b(stop|unsubscribe|opt ?-?out|remove me|take me off|don'?t (text|message|contact)|"
    r"do not (text|message|contact)|no more (texts?|messages?)|"
    r"arret|desabonn|desinscri|ne plus (recevoir|m'?ecrire)|plus de (textos?|messages?))",
)


@dataclass(frozen=True)
class Reading:
    """How a text reads: ``intent`` is confirm, stop, start, help, reschedule, pain, done or other."""

    intent: str
    keyword: str  # the folded keyword ("" for free text)
    french: bool = False
    likely_opt_out: bool = False
    pain: int | None = None  # the score, for intent "pain"


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().replace("\u2019", "'")


def read(body: str) -> Reading:
    """Classify one inbound text. Pure: no database."""
    folded = _fold(body or "").strip()
    keyword = re.sub(r"[\W_]+", "", folded)
    french = keyword in FRENCH_WORDS
    if keyword in CONFIRM_WORDS:
        return Reading("confirm", keyword, french)
    if keyword in OPT_OUT_WORDS:
        return Reading("stop", keyword, french)
    if keyword in OPT_IN_WORDS:
        return Reading("start", keyword, french)
    if keyword in HELP_WORDS:
        return Reading("help", keyword, french)
    if keyword in RESCHEDULE_WORDS:
        return Reading("reschedule", keyword, french)
    if keyword in DONE_WORDS:
        return Reading("done", keyword, french)
    pain = _PAIN.match(folded.strip(" .!"))
    if pain:
        return Reading("pain", "", pain.group("word") == "douleur", pain=int(pain.group("score")))
    return Reading("other", "", likely_opt_out=bool(_LIKELY_OPT_OUT.search(folded)))


# --------------------------------------------------------------------------- inbound


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
            session, inbound_id=inbound.id, phone=from_phone, body=body, intent=reading.intent,
            pain=reading.pain, french=reading.french, patient=patient, now=now,
        )  # fmt: skip
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
