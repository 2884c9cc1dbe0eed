"""Planning the outbox rows of a booking change, inside the booking's own transaction.

``usecases.booking`` calls :func:`booked`, :func:`rescheduled`, :func:`cancelled` and
:func:`status_changed` after its change is flushed and before the caller commits; nothing here
commits, sends or renders. The worker sends due rows later and re-checks, at send time, that
each is still wanted (appointment still active, phone not opted out, quiet hours, caps).

Who gets what (the rules; docs/messaging.md explains them for clinic staff):

* **Notices answer a booking change** (``confirmation``, ``reschedule``, ``cancellation``): due
  at once. By e-mail whenever the patient gave an address: a notice confirms a transaction the
  patient is part of (CASL treats such messages as transactional), so it does not need marketing
  consent. By SMS only with SMS consent, a usable number, and no STOP from that number.
* **Reminders** follow ``clinic.reminder_rules`` (see :mod:`.rules`) and need consent on their
  channel (``sms_consent`` and no STOP; ``email_consent``). One is skipped when, at planning time,
  it is already due, would arrive less than an hour before the start, or would follow a notice
  sent now on the same channel by less than six hours. When that leaves a patient who may get
  reminders on some channel with none at all (an e-mail-only patient booked after the e-mail
  rule's hour), the latest rule still ahead is planned on a channel they may get.
* Every booking is confirmed, whoever made it (a staff booking by the same path as the
  patient's), except when staff say not to (a patient standing at the desk): then reminders
  only. A reschedule or cancellation is notified whoever made it: a patient whose visit staff
  moved must hear of it.
* A treatment plan (a series of visits booked by staff) gets ONE confirmation listing every
  visit, so the patient has the dates in writing, and each visit its reminders as usual;
  cancelling the rest of a plan sends ONE notice listing the cancelled dates.
* **Follow-up** (``clinic.follow_up_prompt``): a completed visit with no later booking gets one
  "book your next visit" message the next local day at 10:00, by SMS (with consent) or else
  e-mail (with consent).

Dedupe keys make every call idempotent. Appointment rows use
``appt:{id}:{kind}:{channel}:{rule or -}:{start, UTC}:s{ics_sequence}``: the start and the
sequence keep a reschedule's new rows (even back to an earlier time) apart from the superseded
ones.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Insert, String, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from booking_service.messaging import rules
from booking_service.observability import request_id
from booking_service.outbox import transitions
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.consent import is_opted_out
from booking_service.patients.models import Patient
from booking_service.scheduling.models import ACTIVE_STATUSES, Appointment

logger = logging.getLogger("booking_service.messaging")

# Rows about the appointment's time: superseded when it moves, stopped when it ends.
TIMED_KINDS = ("confirmation", "reminder", "reschedule", "follow_up")
# Everything planned for an appointment except answers to the patient's own texts.
APPOINTMENT_KINDS = (*TIMED_KINDS, "cancellation", "waitlist_offer", "nudge")

SUPERSEDED = "superseded by reschedule"
# Notices answer a booking change the patient is part of: by e-mail they need no e-mail consent.
NOTICE_KINDS = ("confirmation", "reschedule", "cancellation")
# A treatment plan's one confirmation and one cancellation notice, listing its visits.
PLAN_CONFIRMATION = "plan_confirmation"
PLAN_CANCELLATION = "plan_cancellation"


# --------------------------------------------------------------------------- who may get what


def sms_allowed(session: Session, patient: Patient, *, consent: bool = True) -> bool:
    """Whether ``patient`` may be texted: a number not known to be invalid, no STOP from it,
    and (``consent``) the patient's SMS consent."""
    if not patient.phone or patient.phone_invalid_at is not None:
        return False
    if consent and not patient.sms_consent:
        return False
    return not is_opted_out(session, patient.phone)


def email_allowed(patient: Patient, *, transactional: bool) -> bool:
    """Whether ``patient`` may get this e-mail: an address, and consent unless ``transactional``
    (a notice answering a booking change)."""
    return bool(patient.email) and (transactional or patient.email_consent)


# --------------------------------------------------------------------------- rows


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def _key(appointment: Appointment, kind: str, channel: str, rule: str = "-") -> str:
    return (
        f"appt:{appointment.id}:{kind}:{channel}:{rule}:{_stamp(appointment.start_at)}:s{appointment.ics_sequence or 0}"
    )


def row(appointment: Appointment | None, patient: Patient | None, **values) -> OutboxMessage:
    """A new ``pending`` outbox row (not added to the session); ``values`` are the keywords of
    :func:`row_values`. Rendered from ``template`` (default: the kind) unless a ``body`` is given
    without one, which is then sent as written."""
    return OutboxMessage(
        **row_values(
            appointment.id if appointment is not None else None,
            patient.id if patient is not None else None,
            **values,
        )
    )


def row_values(
    appointment_id: int | None,
    patient_id: int | None,
    *,
    kind: str,
    channel: str,
    to: str,
    due: datetime,
    key: str,
    now: datetime,
    template: str | None = None,
    payload: dict | None = None,
    body: str | None = None,
) -> dict:
    """The column values of :func:`row`, for bulk inserts (the nudge sweep plans thousands)."""
    return {
        "appointment_id": appointment_id,
        "patient_id": patient_id,
        "channel": channel,
        "kind": kind,
        "to": to,
        "template": template if body is not None else (template or kind),
        "payload": payload or {},
        "body": body,
        "due_at": due,
        "next_attempt_at": due,
        "status": "pending",
        "attempts": 0,
        "dedupe_key": key,
        "created_at": now,
        "updated_at": now,
        # The web request planning it, if any: the worker's log lines about it carry the same id.
        "request_id": request_id.current(),
    }


def insert_new(session: Session, rows: list[dict]) -> int:
    """Insert the rows (:func:`row_values`) whose dedupe key is new, in one statement with
    ``ON CONFLICT (dedupe_key) DO NOTHING``; returns how many were inserted. No read first: the
    unique key decides. A concurrent planner that inserted the same key first makes this one
    wait for its commit and then skip the row (PostgreSQL), or is serialised by SQLite's single
    writer: never an error, never a second row.

    PostgreSQL: ``INSERT ... SELECT FROM unnest(...)`` with one array per column, so the
    statement's text is the same for any number of rows (psycopg keeps it parsed and the server
    prepared; a booking's five rows and a nudge sweep's thousands alike). SQLite: a multi-row
    insert of the rows.
    """
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        columns = {name: [row[name] for row in rows] for name in _ROW_COLUMNS}
        return len(session.execute(_unnest_insert(), columns).all())
    table = OutboxMessage.__table__
    statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=[table.c.dedupe_key]).returning(table.c.id)
    return len(session.execute(statement, rows).all())


# The keys of every row_values() row: the columns insert_new writes.
_ROW_COLUMNS = tuple(row_values(None, None, kind="", channel="", to="", due=datetime.min, key="", now=datetime.min))


@functools.cache
def _unnest_insert() -> Insert:
    table = OutboxMessage.__table__
    arrays = [bindparam(name, type_=ARRAY(_unbounded(table.c[name].type))) for name in _ROW_COLUMNS]
    written = func.unnest(*arrays).table_valued(*_ROW_COLUMNS).render_derived()
    return (
        postgresql.insert(table)
        .from_select(list(_ROW_COLUMNS), select(*written.c))
        .on_conflict_do_nothing(index_elements=[table.c.dedupe_key])
        .returning(table.c.id)
    )


def _unbounded(column_type):
    """An array's element type without a length: a cast to ``varchar(n)[]`` would cut a long
    value short where the column's own check refuses it."""
    return String() if isinstance(column_type, String) else column_type


def _cancel_pending(
    session: Session, appointment: Appointment, *, kinds: tuple[str, ...], reason: str, now: datetime
) -> int:
    """Mark the appointment's pending rows of ``kinds`` cancelled with ``reason``. Rows already
    claimed by a worker (``sending``) are left to it: it re-checks the appointment first."""
    return transitions.cancel_pending(session, now=now, error=reason, appointment_id=appointment.id, kinds=kinds)


def cancel_pending_sms_to(session: Session, phone: str, *, reason: str, now: datetime) -> int:
    """Mark every pending SMS to ``phone`` cancelled (after a STOP or a Twilio 21610)."""
    return transitions.cancel_pending(session, now=now, error=reason, sms_to=phone)


# --------------------------------------------------------------------------- plans


def _notice(
    session: Session,
    appointment: Appointment,
    kind: str,
    *,
    now: datetime,
    payload: dict | None = None,
    template: str | None = None,
    rule: str = "-",
) -> dict[str, datetime]:
    """Plan ``kind`` (a notice, due now) on every channel the patient may get it on, rendered
    from ``template`` (default: the kind); ``rule`` sets such a notice apart in its dedupe key.

    Returns the rows' values, not yet inserted: the entry point inserts them with the
    reminders in one statement (:func:`insert_new`).
    """
    patient = appointment.patient
    body = {"start_at": appointment.start_at.astimezone(UTC).isoformat(), **(payload or {})}
    channels = []
    if email_allowed(patient, transactional=True):
        channels.append(("email", patient.email))
    if sms_allowed(session, patient):
        channels.append(("sms", patient.phone))
    return [
        row_values(
            appointment.id,
            patient.id,
            kind=kind,
            channel=channel,
            to=to,
            due=now,
            key=_key(appointment, kind, channel, rule),
            now=now,
            template=template,
            payload=body,
        )
        for channel, to in channels
    ]


def _sent_at(notices: list[dict]) -> dict[str, datetime]:
    """``{channel: due}`` of the notices planned, for :func:`_reminders`."""
    return {values["channel"]: values["due_at"] for values in notices}


def _reminders(
    session: Session, appointment: Appointment, *, clinic, now: datetime, notices: dict[str, datetime]
) -> list[dict]:
    """The reminders the clinic's rules call for: rows' values, not yet inserted (see the
    module's rules)."""
    patient = appointment.patient
    tz = ZoneInfo(appointment.location.timezone)
    start = appointment.start_at
    # Where each channel's reminders may go (None: not to this patient).
    reachable = {
        "sms": patient.phone if sms_allowed(session, patient) else None,
        "email": patient.email if email_allowed(patient, transactional=False) else None,
    }
    parsed = []
    for raw in clinic.reminder_rules or []:
        try:
            parsed.append(rules.parse_rule(raw))
        except rules.RuleError as exc:
            # A bad rule must not block a booking; the settings page validates what it saves.
            logger.warning("ignoring reminder rule: %s", exc)

    def wanted(rule: rules.ReminderRule, channel: str) -> datetime | None:
        due = rule.due(start, tz)
        ok = reachable[channel] is not None and rules.reminder_wanted(
            due, start=start, now=now, notice_at=notices.get(channel)
        )
        return due if ok else None

    def reminder(rule: rules.ReminderRule, channel: str, due: datetime) -> dict:
        return row_values(
            appointment.id,
            patient.id,
            kind="reminder",
            channel=channel,
            to=reachable[channel],
            due=due,
            key=_key(appointment, "reminder", channel, rule.key),
            now=now,
            payload={"start_at": start.astimezone(UTC).isoformat(), "rule": rule.key},
        )

    planned = [reminder(rule, rule.channel, due) for rule in parsed if (due := wanted(rule, rule.channel))]
    if not planned:
        # None of the rules reaches this patient in time on its own channel (an e-mail-only
        # patient booked after the e-mail rule's hour, with an SMS rule still ahead): the latest
        # rule still ahead goes on a channel the patient may get, so nobody is left unreminded.
        for rule in sorted(parsed, key=lambda r: r.due(start, tz), reverse=True):
            fallback = next(((channel, due) for channel in rules.CHANNELS if (due := wanted(rule, channel))), None)
            if fallback is not None:
                planned.append(reminder(rule, *fallback))
                break
    return planned


def has_later_booking(session: Session, appointment: Appointment, now: datetime) -> bool:
    """Whether the patient has another active appointment starting after ``now``."""
    return (
        session.scalars(
            select(Appointment.id)
            .where(
                Appointment.patient_id == appointment.patient_id,
                Appointment.id != appointment.id,
                Appointment.status.in_(ACTIVE_STATUSES),
                Appointment.start_at > now,
            )
            .limit(1)
        ).first()
        is not None
    )


def _follow_up(session: Session, appointment: Appointment, *, now: datetime) -> None:
    patient = appointment.patient
    if sms_allowed(session, patient):
        channel, to = "sms", patient.phone
    elif email_allowed(patient, transactional=False):
        channel, to = "email", patient.email
    else:
        return
    due = rules.follow_up_due(now, ZoneInfo(appointment.location.timezone))
    insert_new(
        session,
        [
            row_values(
                appointment.id,
                patient.id,
                kind="follow_up",
                channel=channel,
                to=to,
                due=due,
                key=f"appt:{appointment.id}:follow_up:{channel}",
                now=now,
            )
        ],
    )


# --------------------------------------------------------------------------- entry points


def booked(session, appointment, *, clinic, now, confirm: bool = True) -> None:
    """A new booking: its confirmation (unless ``confirm`` is False: staff booked a patient
    standing at the desk) and its reminders."""
    notices = _notice(session, appointment, "confirmation", now=now) if confirm else []
    insert_new(
        session, [*notices, *_reminders(session, appointment, clinic=clinic, now=now, notices=_sent_at(notices))]
    )


def rescheduled(session, appointment, *, clinic, now, by_patient, old_start) -> None:
    """A move: pending rows for the old time are superseded; a reschedule notice (the new time,
    with the calendar update) and the new time's reminders are planned."""
    _cancel_pending(session, appointment, kinds=TIMED_KINDS, reason=SUPERSEDED, now=now)
    notices = _notice(
        session,
        appointment,
        "reschedule",
        now=now,
        payload={"old_start": old_start.astimezone(UTC).isoformat(), "by": "patient" if by_patient else "staff"},
    )
    insert_new(
        session, [*notices, *_reminders(session, appointment, clinic=clinic, now=now, notices=_sent_at(notices))]
    )


def cancelled(session, appointment, *, clinic, now, by_patient) -> None:
    """A cancellation: every pending row of the appointment stops (answers to the patient's own
    texts excepted) and a cancellation notice is planned (e-mail with METHOD:CANCEL, SMS with
    consent)."""
    who = "patient" if by_patient else "staff"
    _cancel_pending(session, appointment, kinds=APPOINTMENT_KINDS, reason=f"appointment cancelled by {who}", now=now)
    insert_new(session, _notice(session, appointment, "cancellation", now=now, payload={"by": who}))


def plan_booked(session, appointments: list[Appointment], *, clinic, now, plan_id: int, confirm: bool = True) -> None:
    """A treatment plan was booked: ONE confirmation (template ``plan_confirmation``, on the first
    visit's row, listing every visit in the payload; none when ``confirm`` is False, as for a
    single booking) and each visit's reminders as usual."""
    if not appointments:
        return
    ordered = sorted(appointments, key=lambda a: a.start_at)
    notices = (
        _notice(
            session,
            ordered[0],
            "confirmation",
            now=now,
            payload={"plan_id": plan_id, "visits": _visits(ordered)},
            template=PLAN_CONFIRMATION,
            rule=f"plan{plan_id}",
        )
        if confirm
        else []
    )
    sent = _sent_at(notices)
    insert_new(
        session,
        [*notices, *(r for a in ordered for r in _reminders(session, a, clinic=clinic, now=now, notices=sent))],
    )


def plan_cancelled(session, appointments: list[Appointment], *, clinic, now, plan_id: int) -> None:
    """The rest of a treatment plan was cancelled by staff: every pending row of each visit stops,
    and ONE cancellation notice (template ``plan_cancellation``, on the first cancelled visit's
    row) lists the cancelled dates."""
    if not appointments:
        return
    ordered = sorted(appointments, key=lambda a: a.start_at)
    for appointment in ordered:
        _cancel_pending(session, appointment, kinds=APPOINTMENT_KINDS, reason="appointment cancelled by staff", now=now)
    notice = _notice(
        session,
        ordered[0],
        "cancellation",
        now=now,
        payload={"by": "staff", "plan_id": plan_id, "visits": _visits(ordered)},
        template=PLAN_CANCELLATION,
        rule=f"plan{plan_id}",
    )
    insert_new(session, notice)


def _visits(appointments: list[Appointment]) -> list[dict]:
    """What a plan's message lists of each visit: its id (for its manage link), start (UTC) and
    practitioner's name; nothing clinical."""
    return [
        {
            "id": a.id,
            "start": a.start_at.astimezone(UTC).isoformat(),
            "with": a.practitioner.display_name,
        }
        for a in appointments
    ]


def status_changed(session, appointment, *, clinic, now, old_status) -> None:
    """Check-in stops reminders; no-show and completed stop everything about the visit's time;
    completed, with ``clinic.follow_up_prompt`` and no later booking, plans a follow-up."""
    status = appointment.status
    if status == "checked_in":
        _cancel_pending(session, appointment, kinds=("reminder",), reason="patient checked in", now=now)
    elif status in ("completed", "no_show"):
        _cancel_pending(
            session,
            appointment,
            kinds=("confirmation", "reminder", "reschedule"),
            reason=f"appointment {status.replace('_', ' ')}",
            now=now,
        )
        if status == "completed" and clinic.follow_up_prompt and not has_later_booking(session, appointment, now):
            _follow_up(session, appointment, now=now)


def reply(
    session: Session,
    *,
    phone: str,
    template: str,
    key: str,
    now: datetime,
    patient: Patient | None = None,
    appointment: Appointment | None = None,
    language: str | None = None,
) -> bool:
    """Plan an answer (kind ``reply``, due now) to a text from ``phone``; False when the number
    opted out (Twilio would refuse it) or the same ``key`` was planned already.

    Replies answer the patient's own message, so they need no SMS consent, only no STOP.
    """
    if is_opted_out(session, phone):
        return False
    payload = {"language": language} if language else {}
    added = insert_new(
        session,
        [
            row_values(
                appointment.id if appointment is not None else None,
                patient.id if patient is not None else None,
                kind="reply",
                channel="sms",
                to=phone,
                due=now,
                key=key,
                now=now,
                template=template,
                payload=payload,
            )
        ],
    )
    return added == 1


def waitlist_offer(
    session: Session,
    patient: Patient,
    *,
    entry_id: int,
    start: datetime | None,
    timezone: str,
    location_name: str,
    link: str,
    now: datetime,
    offer_id: int | None = None,
    offer_nonce: str | None = None,
) -> int:
    """Plan a ``waitlist_offer`` (due now; held for quiet hours by the worker) on every channel
    the patient agreed to: a time opened up (``start``, or any time when None), and a link to
    book it. Not transactional, so e-mail needs consent like SMS. Returns how many rows were
    planned; offering the same entry the same time twice plans nothing.

    ``offer_id`` and ``offer_nonce``: an offer of a freed time's chain (``waitlist.offers``):
    one set of rows per offer, and the link is rebuilt at send time from the nonce and the
    secret key (``/w/<offer_id>/<token>``, a booking already set to that time), as a manage
    link is; ``link`` stays the fallback."""
    payload = {"timezone": timezone, "location_name": location_name, "link": link}
    stamp = _stamp(start) if start is not None else "open"
    if start is not None:
        payload["start"] = start.astimezone(UTC).isoformat()
    if offer_id is not None:
        payload.update(offer_id=offer_id, offer_nonce=offer_nonce)
        stamp = f"{stamp}:o{offer_id}"
    rows = []
    for channel, allowed, to in (
        ("email", email_allowed(patient, transactional=False), patient.email),
        ("sms", sms_allowed(session, patient), patient.phone),
    ):
        if allowed:
            rows.append(
                row_values(
                    None,
                    patient.id,
                    kind="waitlist_offer",
                    channel=channel,
                    to=to,
                    due=now,
                    key=f"waitlist:{entry_id}:{channel}:{stamp}",
                    now=now,
                    payload=payload,
                )
            )
    return insert_new(session, rows)
