"""The consent ledger: per-patient consents, the phone-level SMS opt-out, and their history.

Every change is a ``ConsentEvent`` (who, which channel, granted or withdrawn, where from, the
wording seen), so staff can show when and how a patient agreed or said stop. The opt-out is
per phone number (``SmsOptOut``), as Twilio's is: after STOP only START (or another opt-in
word) from that phone lifts it; a new booking's ``sms_consent`` never does. Callers: booking
(consents), inbound SMS (STOP/START), the send path and status callbacks (Twilio 21610), staff.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from booking_service import audit
from booking_service.patients.models import ConsentEvent, Patient, SmsOptOut

# Bump when the consent wording on the pages changes: each consent records the version it saw.
CONSENT_WORDING_VERSION = "2026-11-v1"


def set_consent(
    session: Session,
    patient: Patient,
    channel: str,
    granted: bool,
    *,
    source: str,
    now: datetime,
    only_grant: bool = False,
    detail: str = "",
) -> None:
    """Record a consent change in the ledger and on the patient, if it changes anything.

    ``only_grant``: an unticked box at a later booking does not withdraw an earlier consent.
    """
    attribute = f"{channel}_consent"
    current = getattr(patient, attribute)
    if current == granted or (only_grant and not granted):
        return
    setattr(patient, attribute, granted)
    session.add(
        ConsentEvent(
            patient_id=patient.id,
            phone=patient.phone if channel != "email" else None,
            channel=channel,
            granted=granted,
            source=source,
            wording_version=CONSENT_WORDING_VERSION,
            detail=detail,
            created_at=now,
        )
    )
    audit.record(
        session,
        "patient.consent",
        "patient",
        patient.id,
        {"channel": channel, "granted": granted, "source": source},
        now=now,
    )


def is_opted_out(session: Session, phone: str | None) -> bool:
    """True when this number replied STOP (and not START since). A new booking never overrides.

    Read once per transaction and number: a booking reads it with the patient lookup
    (:func:`remember_opt_out`) and plans its texts without asking again. The worker re-checks
    every text at send time, so a STOP committed meanwhile still stops it.
    """
    if phone is None:
        return False
    known = _known_opt_outs(session)
    if phone not in known:
        known[phone] = session.get(SmsOptOut, phone) is not None
    return known[phone]


def remember_opt_out(session: Session, phone: str, opted_out: bool) -> None:
    """Record what this transaction read of ``phone``'s opt-out (see :func:`is_opted_out`)."""
    _known_opt_outs(session)[phone] = opted_out


def _known_opt_outs(session: Session) -> dict[str, bool]:
    """This transaction's reading of opt-outs, by number; a new transaction starts afresh."""
    transaction = session.get_transaction()
    held = session.info.get("opt_outs")
    if held is None or held[0] is not transaction:
        held = session.info["opt_outs"] = (transaction, {})
    return held[1]


def _patients_with_phone(session: Session, phone: str) -> list[Patient]:
    return list(session.scalars(select(Patient).where(Patient.phone == phone).order_by(Patient.id)))


def _ledger(session: Session, phone: str, *, granted: bool, source: str, now: datetime, detail: str) -> None:
    patients = _patients_with_phone(session, phone)
    action = "patient.sms_opt_in" if granted else "patient.sms_opt_out"
    for patient in patients:  # the number itself is personal data: the trail names the patients only
        audit.record(session, action, "patient", patient.id, {"source": source}, now=now)
    if not patients:
        audit.record(session, action, "phone", None, {"source": source, "known_patient": False}, now=now)
    for patient_id in [p.id for p in patients] or [None]:
        session.add(
            ConsentEvent(
                patient_id=patient_id,
                phone=phone,
                channel="sms",
                granted=granted,
                source=source,
                detail=detail,
                created_at=now,
            )
        )


def opt_out_phone(session: Session, phone: str, *, source: str, now: datetime, detail: str = "") -> bool:
    """Record that ``phone`` must get no more texts: an SmsOptOut row, a consent-ledger event
    for every patient with that number, and every pending SMS to it cancelled.

    Returns False (and changes nothing) when the number had already opted out. ``source``:
    ``sms_reply`` (a STOP), ``twilio_21610`` (Twilio refused a send or reported it), ``staff``.
    """
    # Imported on use: messaging plans texts from consents (it imports this module), and
    # cancelling a number's pending texts is its business.
    from booking_service.messaging import planning

    if session.get(SmsOptOut, phone) is not None:
        return False
    try:
        # A savepoint: a STOP webhook and the worker's 21610 can record the same number at once.
        with session.begin_nested():
            session.add(SmsOptOut(phone=phone, opted_out_at=now, source=source))
    except IntegrityError:
        return False
    remember_opt_out(session, phone, True)
    _ledger(session, phone, granted=False, source=source, now=now, detail=detail)
    planning.cancel_pending_sms_to(session, phone, reason=f"recipient opted out ({source})", now=now)
    session.flush()
    return True


def opt_in_phone(session: Session, phone: str, *, source: str, now: datetime, detail: str = "") -> bool:
    """Lift a STOP (START, UNSTOP or YES from that phone): delete the SmsOptOut row and write a
    ledger event. Per-patient consents are untouched: a patient who never agreed to texts still
    gets none. Returns False when the number was not opted out."""
    if session.get(SmsOptOut, phone) is None:
        return False
    session.execute(delete(SmsOptOut).where(SmsOptOut.phone == phone))
    remember_opt_out(session, phone, False)
    _ledger(session, phone, granted=True, source=source, now=now, detail=detail)
    session.flush()
    return True
