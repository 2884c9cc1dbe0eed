"""Clinical alerts: a red flag or a pain jump reported between sessions, or an urgent booking.

Raising an alert (:func:`raise_alert`) does four things in the caller's transaction (no commit):

1. an :class:`Alert` row, open, shown on the staff console (``/staff/alerts``, a badge in the
   nav) and in the API (``GET /api/v1/alerts``);
2. an e-mail to the clinic's own address (``ClinicSettings.email``): outbox kind ``alert``,
   due now. It says an alert is open and links to the console; the patient's words and every
   clinical detail stay in the console;
3. for an alert raised by a text (red flag, pain jump), a safety reply to the patient (outbox
   kind ``reply``, due now, never held for quiet hours): stop the exercises, go to an emergency
   department or call 911 if it is urgent. No diagnosis, nothing quoted back;
4. every active program of the patient paused (``pause_reason = "alert"``), so no nudge goes
   out until a practitioner acknowledges. :func:`acknowledge` resumes the programs an alert
   paused once the patient has no other open alert.

**Red flags** are found by :func:`red_flags` in the text, case and accents folded, in English
and French (see :data:`RED_FLAG_PATTERNS`). **A pain jump** (:func:`pain_jump`) is a score of
8 or more, or 3 or more above the patient's **baseline**: the median of the pain scores of the
program's last 7 logged days before today (at least 3 of them; without 3, only the 8-or-more
rule applies).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from datetime import datetime

from sqlalchemy import func, or_, select, true, update
from sqlalchemy.orm import Session

from booking_service.clinic.queries import get_clinic
from booking_service.errors import NotFound
from booking_service.exercises.logging import baseline, pain_jump  # noqa: F401  (the pain rule, re-exported)
from booking_service.exercises.models import Alert, Program
from booking_service.messaging import planning
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient
from booking_service.scheduling.models import Appointment

logger = logging.getLogger("booking_service.exercises")


ALERTS_PATH = "/staff/alerts"

# Red-flag words, matched on folded text (lower case, no accents, ’ -> '). Each key names what
# the patient reported, for staff. English and Canadian French.
RED_FLAG_PATTERNS: dict[str, re.Pattern[str]] = {
    "bladder_bowel": re.compile(
        r"\b(bladder|bowel|incontinen\w*|wet (myself|my pants|the bed)|(can'?t|cannot|can not|unable to|"
        r"trouble|difficulty|hard to|struggl\w* to) (pee|urinate|passing urine|pass urine|poo)|"
        r"urin\w*|vessie|intestin\w*|selles?|(ne peux|n'arrive) (pas|plus) (a )?(uriner|faire pipi)|"
        r"uriner|pipi|fuites?)\b"
    ),
    "saddle_numbness": re.compile(
        r"\b(saddle|groin|genitals?|crotch|inner thighs?|(can'?t|cannot|can not) feel my (bum|butt|buttocks|"
        r"bottom)|numb (bum|butt|buttocks|bottom)|aine|entrejambe|selle|organes genitaux|"
        r"interieur des cuisses|fesses engourdies|ne sens (plus|pas) mes fesses)\b"
    ),
    "spreading_numbness": re.compile(
        r"\b(numbness (is )?(spreading|getting worse|worse)|spreading numbness|more numb|numb(ness)? all|"
        r"engourdi\w*|perte de sensation|ne sens plus)\b"
    ),
    "leg_weakness": re.compile(
        r"\b((leg|legs) (is |are |feels? )?(weak|giving (way|out)|gave (way|out))|weak(ness)? (in )?(my )?legs?|"
        r"foot drop|can'?t (lift|move) my (leg|foot)|faiblesse|jambes? (faibles?|qui lache|lache)|"
        r"pied tombant)\b"
    ),
    "both_legs": re.compile(r"\b(both legs|both of my legs|les deux jambes|deux jambes|dans les deux)\b"),
}
RED_FLAG_LABELS = {
    "bladder_bowel": "bladder or bowel",
    "saddle_numbness": "saddle or groin numbness",
    "spreading_numbness": "spreading numbness",
    "leg_weakness": "leg weakness",
    "both_legs": "both legs affected",
}
_FRENCH_HINTS = re.compile(r"\b(je|j'|mes|ma|mon|les|la|pas|plus|vessie|jambes?|engourdi\w*|douleur|aine)\b")

# Safety replies (templates/sms/<name>.<lang>.txt): urgent-care guidance, no diagnosis.
SAFETY_REPLY = {"red_flag": "reply_red_flag", "pain": "reply_pain_alert"}


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text or "")
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return re.sub(r"\s+", " ", folded.replace("\u2019", "'"))


def red_flags(text: str) -> list[str]:
    """The red-flag keys (:data:`RED_FLAG_PATTERNS`) the text mentions, in table order. Pure."""
    folded = fold(text)
    return [key for key, pattern in RED_FLAG_PATTERNS.items() if pattern.search(folded)]


def looks_french(text: str) -> bool:
    return bool(_FRENCH_HINTS.search(fold(text)))


# --------------------------------------------------------------------------- pain


# --------------------------------------------------------------------------- raising


def _practitioner_for(session: Session, patient_id: int, program: Program | None, appointment: Appointment | None):
    if program is not None:
        return program.practitioner_id
    if appointment is not None:
        return appointment.practitioner_id
    return session.scalar(
        select(Appointment.practitioner_id)
        .where(Appointment.patient_id == patient_id)
        .order_by(Appointment.start_at.desc())
        .limit(1)
    )


def raise_alert(
    session: Session,
    *,
    patient: Patient,
    kind: str,
    text: str,
    source: str,
    now: datetime,
    program: Program | None = None,
    appointment: Appointment | None = None,
    inbound_message_id: int | None = None,
    reply_to: str | None = None,
    language: str | None = None,
) -> Alert:
    """Open an alert and do what it calls for (see the module docstring); flushed, no commit.

    ``reply_to``: the phone that texted, for the safety reply (none for an urgent booking).
    ``language``: of the safety reply (default: the patient's).
    """
    alert = Alert(
        patient_id=patient.id,
        program_id=program.id if program is not None else None,
        appointment_id=appointment.id if appointment is not None else None,
        inbound_message_id=inbound_message_id,
        practitioner_id=_practitioner_for(session, patient.id, program, appointment),
        kind=kind,
        status="open",
        source=source,
        text=text,
        created_at=now,
    )
    session.add(alert)
    session.flush()
    _pause_programs(session, patient.id, now=now)
    _email_clinic(session, alert, now=now)
    if reply_to and kind in SAFETY_REPLY:
        planning.reply(
            session,
            phone=reply_to,
            template=SAFETY_REPLY[kind],
            key=f"alert:{alert.id}:reply",
            now=now,
            patient=patient,
            language=language,
        )
    logger.info("alert %s opened: %s for patient %s", alert.id, kind, patient.id)
    return alert


def _pause_programs(session: Session, patient_id: int, *, now: datetime) -> None:
    session.execute(
        update(Program)
        .where(Program.patient_id == patient_id, Program.status == "active")
        .values(status="paused", pause_reason="alert", paused_at=now, updated_at=now)
        .execution_options(synchronize_session="fetch")
    )


def _email_clinic(session: Session, alert: Alert, *, now: datetime) -> OutboxMessage | None:
    clinic = get_clinic(session)
    if not clinic.email:
        logger.warning("alert %s: the clinic has no e-mail address; shown on the console only", alert.id)
        return None
    row = planning.row(
        None,
        None,
        kind="alert",
        channel="email",
        to=clinic.email,
        due=now,
        key=f"alert:{alert.id}:email",
        now=now,
        template="patient_alert",
        payload={"link": ALERTS_PATH, "language": clinic.default_language, "alert_kind": alert.kind},
    )
    session.add(row)
    session.flush()
    return row


def urgent_booking(session: Session, appointment: Appointment, *, now: datetime) -> Alert:
    """An ``urgent_booking`` alert for a booking whose red-flag screen was answered yes."""
    answered = [key for key, value in (appointment.red_flags or {}).items() if value]
    return raise_alert(
        session,
        patient=appointment.patient,
        kind="urgent_booking",
        text="Red-flag screen answered yes at booking: " + ", ".join(answered),
        source="booking",
        now=now,
        appointment=appointment,
    )


# --------------------------------------------------------------------------- acknowledging


def visible(practitioner_id: int | None):
    """A filter on :class:`Alert`: everything for the desk (None); for a practitioner, alerts of
    their own patients (an alert addressed to them, or a patient with one of their programs or
    appointments)."""
    if practitioner_id is None:
        return true()
    return or_(
        Alert.practitioner_id == practitioner_id,
        Alert.patient_id.in_(select(Program.patient_id).where(Program.practitioner_id == practitioner_id)),
        Alert.patient_id.in_(select(Appointment.patient_id).where(Appointment.practitioner_id == practitioner_id)),
    )


def get_alert(session: Session, alert_id: int, *, practitioner_id: int | None = None) -> Alert:
    """Raises NotFound for an unknown alert or one the practitioner may not see (not told apart)."""
    alert = session.scalars(select(Alert).where(Alert.id == alert_id, visible(practitioner_id))).first()
    if alert is None:
        raise NotFound("There is no such alert.")
    return alert


def acknowledge(
    session: Session, alert_id: int, *, user_id: int | None, now: datetime, practitioner_id: int | None = None
) -> Alert:
    """Mark the alert acknowledged (again: no change) and, when the patient has no other open
    alert, resume the programs that alerts paused. Raises NotFound (see :func:`get_alert`)."""
    alert = get_alert(session, alert_id, practitioner_id=practitioner_id)
    if alert.status == "acknowledged":
        return alert
    alert.status = "acknowledged"
    alert.acknowledged_at = now
    alert.acknowledged_by_user_id = user_id
    session.flush()
    still_open = session.scalar(
        select(Alert.id).where(Alert.patient_id == alert.patient_id, Alert.status == "open").limit(1)
    )
    if still_open is None:
        session.execute(
            update(Program)
            .where(Program.patient_id == alert.patient_id, Program.status == "paused", Program.pause_reason == "alert")
            .values(status="active", pause_reason=None, paused_at=None, updated_at=now)
            .execution_options(synchronize_session="fetch")
        )
    return alert


# --------------------------------------------------------------------------- reading


def alerts(
    session: Session, *, status: str | None = "open", practitioner_id: int | None = None, patient_id: int | None = None
) -> list[Alert]:
    """Alerts oldest first (``status`` None: every status), as the user may see them."""
    query = select(Alert).where(visible(practitioner_id)).order_by(Alert.created_at, Alert.id)
    if status is not None:
        query = query.where(Alert.status == status)
    if patient_id is not None:
        query = query.where(Alert.patient_id == patient_id)
    return list(session.scalars(query))


def count_open(session: Session, *, practitioner_id: int | None = None) -> int:
    return int(
        session.scalar(select(func.count()).select_from(Alert).where(Alert.status == "open", visible(practitioner_id)))
        or 0
    )
