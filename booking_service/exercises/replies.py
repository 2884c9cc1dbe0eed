"""Acting on a patient's text about their home exercises (called by the inbound-text handler).

==============================  ==========================================================
the text                        what happens
==============================  ==========================================================
red-flag words (any text but    a ``red_flag`` alert (:mod:`.alerts`): console, clinic
a keyword)                      e-mail, safety reply, programs paused. Also without a
                                program. An unknown number gets the safety reply and the
                                text stays in the staff inbox.
``DONE``, ``FAIT``, ``fini``,   today (the program's local day) logged done, source
``terminé``                     ``sms``; a short thanks
``7``, ``7/10``, ``pain 7``,    today's pain recorded; a pain jump (8+, or 3 above the
``douleur 7``                   baseline) raises a ``pain`` alert with its safety reply,
                                else a short thanks
==============================  ==========================================================

DONE and pain need a program that is not ended for a patient with the sender's number (the
active one first); without one the text goes to the staff inbox as before.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from booking_service.exercises import alerts
from booking_service.exercises.logging import log_day
from booking_service.exercises.models import Program
from booking_service.exercises.programs import local_today
from booking_service.messaging import planning
from booking_service.patients.models import Patient


def program_for_phone(session: Session, phone: str) -> Program | None:
    """The program a text from ``phone`` is about: of a patient with that number, not ended,
    active before paused, newest first."""
    return session.scalars(
        select(Program)
        .join(Patient, Patient.id == Program.patient_id)
        .where(Patient.phone == phone, Program.status != "ended")
        .order_by(case((Program.status == "active", 0), else_=1), Program.id.desc())
        .limit(1)
    ).first()


def act_on_text(
    session: Session,
    *,
    inbound_id: int,
    phone: str,
    body: str,
    intent: str,
    pain: int | None,
    french: bool,
    patient: Patient | None,
    now: datetime,
) -> bool:
    """Act on a text whose ``intent`` (``messaging.replies.read``) is done, pain or other.
    Returns True when it was dealt with here, False when it is for staff (as before)."""
    program = program_for_phone(session, phone)
    if program is not None:
        patient = session.get(Patient, program.patient_id)
    language = patient.language if patient is not None else None
    if language not in ("en", "fr"):
        language = "fr" if french else None

    flags = alerts.red_flags(body)
    if flags:
        if patient is None:
            # No one to attach an alert to: the safety reply still goes, staff read the text.
            planning.reply(
                session,
                phone=phone,
                template=alerts.SAFETY_REPLY["red_flag"],
                key=f"inbound:{inbound_id}:red_flag",
                now=now,
                language="fr" if alerts.looks_french(body) else None,
            )
            return False
        labels = ", ".join(alerts.RED_FLAG_LABELS[f] for f in flags)
        alerts.raise_alert(
            session,
            patient=patient,
            kind="red_flag",
            text=f"Red flag in a text ({labels}): {body.strip()}",
            source="sms",
            now=now,
            program=program,
            inbound_message_id=inbound_id,
            reply_to=phone,
            language=language,
        )
        return True

    if program is None or intent not in ("done", "pain"):
        return False
    today = local_today(program, now)

    def thanks() -> None:
        planning.reply(
            session,
            phone=phone,
            template="reply_logged",
            key=f"inbound:{inbound_id}:reply_logged",
            now=now,
            patient=patient,
            language=language,
        )

    if intent == "done":
        log_day(session, program, today, done=True, source="sms", now=now)
        thanks()
        return True
    # A pain jump raises the alert inside log_day (its safety reply answers this phone).
    logged = log_day(
        session,
        program,
        today,
        pain=pain,
        source="sms",
        now=now,
        reply_to=phone,
        inbound_message_id=inbound_id,
        language=language,
    )
    if logged.pain_jump is None:
        thanks()
    return True
