"""Send-time checks: is this outbox message still wanted, and may it go out now?

Planning decided what to send when the booking changed; this module decides again at the
moment of sending, because the world moves in between (a cancellation, a STOP, a number that
turned out to be a landline, the clock reaching 21:00). The dispatcher asks :func:`check`
before rendering and :func:`check_destination` after, and acts on the :class:`Decision`:

======================  ==============================================================
rule                    decision
======================  ==============================================================
appointment             ``skip`` when the appointment is no longer active (cancelled,
                        completed, no-show). Exceptions: a cancellation notice is always
                        sent; a follow-up is meant for after the visit and is only skipped
                        for a cancelled or missed visit; replies and alerts never depend on
                        the appointment. A reminder is never sent once the visit started.
consent                 SMS: ``sms_consent`` (nudges: ``exercise_sms_consent``), except a
                        reply, which answers the patient's own text. E-mail: an address;
                        ``email_consent`` too for the non-transactional kinds (reminder,
                        nudge, follow_up, waitlist_offer). Confirmations, reschedule and
                        cancellation notices by e-mail answer the patient's own action.
destination             SMS: the number must not have replied STOP (``SmsOptOut``) nor have
                        been marked invalid by the provider (``phone_invalid_at``).
quiet hours             reminder, nudge, follow_up, waitlist_offer: only between the clinic's
                        ``quiet_hours_start`` and ``quiet_hours_end`` (08:00-20:00 by
                        default) in the location's time zone; outside them ``defer`` to the
                        next opening. Confirmations, reschedule and cancellation notices and
                        replies answer the patient's own action and are never held.
nudge                   ``skip`` a nudge whose program is paused, ended or gone, whose
                        day is no longer a program day or is over (local), or was logged
                        done, or on which the patient now has an appointment.
caps                    SMS reminders and nudges: at most ``sms_daily_cap`` per patient per
                        local day and ``sms_weekly_cap`` per 7 days; over a cap, ``skip``.
======================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from booking_service.clinic.models import ClinicSettings
from booking_service.db import is_sqlite
from booking_service.exercises.models import Program, ProgramLog
from booking_service.exercises.programs import is_program_day
from booking_service.integrations.contract import Email, Sms
from booking_service.messaging import planning, rules
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient, SmsOptOut
from booking_service.scheduling.models import ACTIVE_STATUSES, Appointment

# Kinds that can wait for a decent hour; everything else answers something the patient just did.
HELD_FOR_QUIET_HOURS = frozenset({"reminder", "nudge", "follow_up", "waitlist_offer"})
# Kinds counted against the per-patient SMS caps (the texts a patient did not ask for just now).
CAPPED_KINDS = ("reminder", "nudge")
# E-mail kinds that need the patient's e-mail consent, not just an address.
EMAIL_CONSENT_KINDS = frozenset({"reminder", "nudge", "follow_up", "waitlist_offer"})
# Kinds that do not depend on the state of their appointment.
APPOINTMENT_INDEPENDENT = frozenset({"cancellation", "reply", "alert"})


@dataclass(frozen=True)
class Decision:
    """``send``; ``skip`` with a reason for staff; or ``defer`` until an instant (UTC)."""

    action: str
    reason: str = ""
    until: datetime | None = None

    @property
    def send(self) -> bool:
        return self.action == "send"


SEND = Decision("send")


def skip(reason: str) -> Decision:
    return Decision("skip", reason)


def check(session: Session, message: OutboxMessage, *, clinic: ClinicSettings, now: datetime) -> Decision:
    """The first rule (appointment, consent, quiet hours, caps) that stops ``message`` now, or SEND.

    Must run inside the dispatcher's write transaction: the cap rule counts other messages of
    the same patient and, on PostgreSQL, locks the patient's row so two workers sending two
    reminders to one patient cannot both pass the cap.
    """
    for rule in (_appointment_rule, _nudge_rule, _consent_rule, _quiet_hours_rule, _cap_rule):
        decision = rule(session, message, clinic, now)
        if not decision.send:
            return decision
    return SEND


def check_destination(
    session: Session, message: OutboxMessage, outgoing: Sms | Email, *, known_opt_outs: Mapping[str, bool] = {}
) -> Decision:
    """Whether the rendered message's address may be used (SMS: not opted out, not invalid).

    ``known_opt_outs``: numbers whose opt-out state was read in this transaction already.
    """
    if not outgoing.to:
        return skip("no mobile number" if message.channel == "sms" else "no e-mail address")
    if message.channel != "sms":
        return SEND
    opted_out = known_opt_outs.get(outgoing.to)
    if opted_out is None:
        opted_out = session.get(SmsOptOut, outgoing.to) is not None
    if opted_out:
        return skip("the number replied STOP (opted out of texts)")
    patient = message.patient
    if patient is not None and patient.phone == outgoing.to and patient.phone_invalid_at is not None:
        return skip("the mobile number was reported invalid by the SMS provider")
    return SEND


def zone_for(message: OutboxMessage, clinic: ClinicSettings) -> ZoneInfo:
    """The time zone that decides quiet hours and "a day": the appointment location's, else the
    row's own (``payload["timezone"]``: a nudge's program zone, a waitlist offer's location),
    else the clinic's."""
    appointment = message.appointment
    if appointment is not None and appointment.location is not None:
        return ZoneInfo(appointment.location.timezone)
    zone = (message.payload or {}).get("timezone")
    if zone:
        try:
            return ZoneInfo(zone)
        except (ValueError, KeyError):
            pass  # a zone that no longer exists: the clinic's is the best guess
    return ZoneInfo(clinic.timezone)


def window_opens(now: datetime, *, zone: ZoneInfo, start: time, end: time) -> datetime | None:
    """None when ``now`` is inside the daily sending window [start, end) local wall time;
    otherwise the next instant (UTC) the window opens (:func:`.rules.next_allowed`: a window
    across midnight when start > end, none when start == end, DST-correct)."""
    opens = rules.next_allowed(now, zone, start, end)
    return None if opens == now.astimezone(UTC) else opens


# --------------------------------------------------------------------------- rules


def _appointment_rule(session, message: OutboxMessage, clinic, now: datetime) -> Decision:
    appointment = message.appointment
    if appointment is None or message.kind in APPOINTMENT_INDEPENDENT:
        return SEND
    status = appointment.status
    if message.kind == "follow_up":
        if status in ("cancelled", "no_show"):
            return skip(f"the appointment is {_status_words(status)}")
        if planning.has_later_booking(session, appointment, now):
            return skip("the patient has booked their next visit")
        return SEND
    if status not in ACTIVE_STATUSES:
        return skip(f"the appointment is {_status_words(status)}")
    if message.kind == "reminder":
        if status == "checked_in":
            return skip("the patient has already checked in")
        if now >= appointment.start_at:
            return skip("the appointment has already started")
    return SEND


def _nudge_rule(session: Session, message: OutboxMessage, clinic, now: datetime) -> Decision:
    """A nudge is wanted only while its program is active and its day still open and unlogged,
    with no appointment that day (each may have changed since the sweep planned it)."""
    if message.kind != "nudge":
        return SEND
    payload = message.payload or {}
    if "program_id" not in payload:
        return SEND  # not planned by the sweep (written by hand): no program to check against
    try:
        program = session.get(Program, int(payload["program_id"]))
        day = date.fromisoformat(payload["day"])
    except (KeyError, TypeError, ValueError):
        return skip("the nudge names no exercise program day")
    if program is None:
        return skip("the exercise program no longer exists")
    if program.status == "paused":
        return skip("the exercise program is paused")
    if program.status == "ended" or program.ended_at is not None:
        return skip("the exercise program has ended")
    if not is_program_day(program, day):
        return skip("no longer an exercise day of the program")
    zone = ZoneInfo(program.timezone)
    if now.astimezone(zone).date() > day:
        return skip("the day of this nudge is over")
    logged = session.scalar(
        select(ProgramLog.id).where(
            ProgramLog.program_id == program.id, ProgramLog.local_date == day, ProgramLog.done.is_(True)
        )
    )
    if logged is not None:
        return skip("the exercises of that day are already logged")
    start = rules.local_instant(day, time(0), zone).astimezone(UTC)
    end = rules.local_instant(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    visit = session.scalar(
        select(Appointment.id)
        .where(
            Appointment.patient_id == program.patient_id,
            Appointment.status.not_in(("cancelled", "no_show")),
            Appointment.start_at >= start,
            Appointment.start_at < end,
        )
        .limit(1)
    )
    if visit is not None:
        return skip("the patient has an appointment that day")
    return SEND


def _status_words(status: str) -> str:
    return {"no_show": "marked as a no-show"}.get(status, status)


def _consent_rule(session, message: OutboxMessage, clinic, now: datetime) -> Decision:
    patient = message.patient
    if patient is None or message.kind == "alert":
        return SEND  # a message to staff, or to an address given explicitly
    if message.channel == "sms":
        if message.kind == "reply":
            return SEND
        if message.kind == "nudge":
            return SEND if patient.exercise_sms_consent else skip("no consent to exercise texts")
        return SEND if patient.sms_consent else skip("no consent to texts")
    if message.kind in EMAIL_CONSENT_KINDS and not patient.email_consent:
        return skip("no consent to e-mail")
    return SEND


def _quiet_hours_rule(session, message: OutboxMessage, clinic: ClinicSettings, now: datetime) -> Decision:
    if message.kind not in HELD_FOR_QUIET_HOURS:
        return SEND
    zone = zone_for(message, clinic)
    start, end = clinic.quiet_hours_start, clinic.quiet_hours_end
    opens = window_opens(now, zone=zone, start=start, end=end)
    if opens is None:
        return SEND
    return Decision(
        "defer",
        f"held for quiet hours: sent from {start:%H:%M} to {end:%H:%M} ({zone.key})",
        opens,
    )


def _cap_rule(session: Session, message: OutboxMessage, clinic: ClinicSettings, now: datetime) -> Decision:
    if message.channel != "sms" or message.kind not in CAPPED_KINDS or message.patient_id is None:
        return SEND
    if not is_sqlite(session):
        # Serialise cap decisions per patient (SQLite's BEGIN IMMEDIATE already serialises all).
        session.execute(select(Patient.id).where(Patient.id == message.patient_id).with_for_update())
    zone = zone_for(message, clinic)
    local_midnight = datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone).astimezone(UTC)
    week_ago = now - timedelta(days=7)
    for since, cap, label in (
        (local_midnight, clinic.sms_daily_cap, "daily"),
        (week_ago, clinic.sms_weekly_cap, "weekly"),
    ):
        if cap is None:
            continue
        if _capped_count(session, message, since=since, now=now) >= cap:
            return skip(f"{label} SMS cap reached ({cap} reminder or nudge texts)")
    return SEND


def _capped_count(session: Session, message: OutboxMessage, *, since: datetime, now: datetime) -> int:
    """Reminder and nudge texts of the patient sent since ``since``, plus those being sent now
    (claimed under a live lease: they will most likely go out)."""
    m = OutboxMessage
    query = select(func.count()).where(
        m.patient_id == message.patient_id,
        m.channel == "sms",
        m.kind.in_(CAPPED_KINDS),
        m.id != message.id,
        or_(
            m.status.in_(("sent", "delivered")) & (m.sent_at >= since),
            (m.status == "sending") & (m.lease_expires_at > now),
        ),
    )
    return int(session.scalar(query) or 0)
