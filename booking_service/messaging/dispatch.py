"""Dispatch: claim due outbox rows, send each one once, record what happened, recover the lost.

The worker (``scheduler/``), the tests and the benchmarks all call these functions.

Exactly once, step by step
--------------------------

The outbox row is the only record of a message, and every state change is a conditional
UPDATE checked on its rowcount (Healthchecks' ``sendalerts``). A send goes through four
committed steps, and no transaction is open while the provider is being called:

1. **claim** (:func:`claim_due`): ``pending`` and due -> ``sending``, stamped with
   ``claimed_by`` (the worker), ``claimed_at``, ``lease_expires_at`` and ``attempts + 1``.
   PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so workers never wait on or share a row; SQLite:
   one ``UPDATE ... RETURNING`` under ``BEGIN IMMEDIATE``. The pair (``claimed_by``,
   ``attempts``) is the *fencing token* of this attempt: every later write requires it.
2. **prepare**: re-check the row is still wanted (:mod:`.policy`: skip, defer or go), render
   it, and commit the exact ``to`` and ``body`` about to be sent, renewing the lease. From
   this commit on, the row says precisely what may be at the provider.
3. **send**: one call to the transport, bounded by its timeout, which the worker keeps well
   under the lease (a third of it), so a live worker always finishes before its lease ends.
4. **record**: ``sending`` -> ``sent``/``delivered`` with the provider's id, or to a retry
   or a failure, conditional on the fencing token.

:func:`send_one` runs the four steps for one row. The worker runs them as a pipeline: it
prepares each claimed batch in one transaction and records finished sends in batches (one
``UPDATE ... FROM unnest(...)`` on PostgreSQL), so the database costs a fraction of a
transaction per message. The record commit may skip the wait for the disk
(``synchronous_commit = off``): losing it in a database crash leaves a prepared ``sending``
row, which is exactly what the reaper reconciles. The prepare commit never does.

A worker that dies anywhere leaves the row in ``sending``; once its lease has expired the
reaper (:func:`recover_expired`) decides. Before step 2 committed, nothing can have been sent.
After it, for SMS, the reaper asks Twilio for messages to ``to`` created since the claim
(less a margin for clock skew) with the same body and not already recorded on another row:
found -> the row is marked sent with that SID (never resent); not found -> back to
``pending`` for another worker. E-mail cannot be asked, so it is resent with the same
Message-ID (derived from the row, identical on every attempt): a duplicate is only possible
when the SMTP server accepted the message and the worker died before step 4 committed, and
the stable Message-ID lets mail clients and servers recognise it.

A send whose outcome is unknown (a read timeout: Twilio may have accepted it) is not retried
blindly either: the row stays ``sending`` with a short lease and the reaper reconciles it.
If a slow worker records after the reaper has put its row back to ``pending`` (the lease
was too short for it), its record still wins as long as no other worker has claimed the row.

Limits, stated: reconciliation trusts Twilio's message list to show a message within the
reconcile delay of its creation, and compares bodies exactly (or up to whitespace), so a
provider-side rewrite of the body (Twilio's Smart Encoding) would defeat it and cause a resend.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, contains_eager

from booking_service.clinic.queries import get_clinic
from booking_service.db import Database, utcnow, write_transaction
from booking_service.integrations.contract import Email, ProviderRecord, Sent, Sms, TransportError
from booking_service.integrations.registry import Transports
from booking_service.integrations.smtp.message_id import message_id_for
from booking_service.integrations.twilio.callbacks import status_callback_url
from booking_service.messaging import policy
from booking_service.messaging.models import OutboxMessage
from booking_service.patients.models import Patient, SmsOptOut

logger = logging.getLogger("booking_service.dispatch")

DEFAULT_LEASE = timedelta(seconds=30)
# After the 8th failed attempt (about two hours of backoff) a message is failed for good.
MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
# Twilio's clock is not ours: look for provider records from a little before the claim.
RECONCILE_MARGIN = timedelta(seconds=60)
# An uncertain send (timeout) is reconciled after this long, once the provider has settled.
UNCERTAIN_SETTLE = timedelta(seconds=5)

Renderer = Callable[..., Sms | Email]

_m = OutboxMessage


def send_timeout_for(lease: timedelta) -> float:
    """The longest a provider call may take under ``lease``: a third of it, so a live worker
    always finishes a send (and records it) before its lease can expire."""
    return max(lease.total_seconds() / 3, 0.5)


@dataclass(frozen=True)
class Outcome:
    """What one call did to one row. ``status`` is the row's new status, or ``"lost"`` when the
    row was no longer ours (someone else decided; nothing was written)."""

    message_id: int
    status: str
    channel: str = ""
    kind: str = ""
    to: str | None = None
    provider_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    elapsed: float = 0.0

    def describe(self) -> str:
        parts = [f"message {self.message_id}", self.channel, self.kind, self.status]
        if self.to:
            parts.append(f"to={mask(self.to)}")
        if self.provider_id:
            parts.append(f"provider_id={self.provider_id}")
        if self.next_attempt_at:
            parts.append(f"next_attempt_at={self.next_attempt_at:%Y-%m-%dT%H:%M:%SZ}")
        if self.error:
            parts.append(f"error={self.error!r}")
        parts.append(f"{self.elapsed * 1000:.0f}ms")
        return " ".join(p for p in parts if p)


def mask(address: str) -> str:
    """An address fit for logs: the last 4 digits of a number, the domain of an e-mail."""
    if "@" in address:
        return "***@" + address.rsplit("@", 1)[1]
    return "***" + address[-4:]


# --------------------------------------------------------------------------- claim


def claim_due(
    database: Database, *, worker_id: str, now: datetime, limit: int, lease: timedelta = DEFAULT_LEASE
) -> list[int]:
    """Claim up to ``limit`` due ``pending`` rows for ``worker_id``, oldest due first, and commit.

    Claimed rows are ``sending`` with ``attempts + 1`` and a lease until ``now + lease``.
    Safe to call from any number of workers at once: each row goes to exactly one of them.
    Returns the ids claimed (empty when nothing is due).
    """
    if limit <= 0:
        return []
    table = _m.__table__
    due = (
        select(table.c.id)
        .where(table.c.status == "pending", table.c.next_attempt_at <= now)
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit)
    )
    values = {
        "status": "sending",
        "claimed_by": worker_id,
        "claimed_at": now,
        "lease_expires_at": now + lease,
        "attempts": table.c.attempts + 1,
        "updated_at": now,
    }
    with database.unit_of_work() as session:
        if database.dialect == "postgresql":
            locked = due.with_for_update(skip_locked=True).cte("due")
            statement = update(table).where(table.c.id.in_(select(locked.c.id)))
        else:
            write_transaction(session)  # BEGIN IMMEDIATE: the select and update are one step
            statement = update(table).where(table.c.id.in_(due))
        rows = session.execute(statement.values(**values).returning(table.c.id)).scalars().all()
    return sorted(rows)


def release(database: Database, ids: list[int], *, worker_id: str, now: datetime) -> int:
    """Give claimed rows back untouched (a worker shutting down before sending them)."""
    if not ids:
        return 0
    with database.unit_of_work() as session:
        write_transaction(session)
        result = session.execute(
            update(_m)
            .where(_m.id.in_(ids), _m.status == "sending", _m.claimed_by == worker_id)
            .values(
                status="pending",
                attempts=_m.attempts - 1,
                claimed_by=None,
                claimed_at=None,
                lease_expires_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return result.rowcount


# --------------------------------------------------------------------------- send


@dataclass(frozen=True)
class Prepared:
    """A claimed row that passed the send-time checks, rendered; ``to`` and body committed."""

    message_id: int
    attempt: int  # the fencing token, with the worker id
    channel: str
    kind: str
    outgoing: Sms | Email


@dataclass(frozen=True)
class Delivery:
    """What the provider said to one :class:`Prepared` message: ``sent`` or ``error``."""

    prepared: Prepared
    sent: Sent | None = None
    error: TransportError | None = None
    elapsed: float = 0.0


def send_one(
    database: Database,
    message_id: int,
    *,
    transports: Transports,
    settings: Any,
    worker_id: str,
    now_fn: Callable[[], datetime] = utcnow,
    lease: timedelta = DEFAULT_LEASE,
    renderer: Renderer | None = None,
) -> Outcome:
    """Send one row claimed by ``worker_id`` (see the module docstring), and record the result.

    :func:`prepare`, :func:`deliver` and :func:`record` for a single row; the worker calls the
    three itself to prepare and record in batches. Never raises for a provider's answer:
    permanent errors fail the row, transient ones put it back to ``pending`` with backoff, an
    uncertain one leaves it for the reaper. Returns the :class:`Outcome`; ``"lost"`` when the
    row was no longer this worker's (nothing written). Database errors propagate; the row then
    stays ``sending`` and the reaper recovers it.
    """
    [prepared] = prepare(
        database, [message_id], settings=settings, worker_id=worker_id, now_fn=now_fn, lease=lease, renderer=renderer
    )
    if isinstance(prepared, Outcome):
        return prepared
    [outcome] = record(database, [deliver(prepared, transports)], worker_id=worker_id, now=now_fn())
    return outcome


def _fence(message_id: int, worker_id: str, attempt: int):
    """The WHERE clause that makes a write conditional on still holding this attempt's claim."""
    return (_m.id == message_id, _m.status == "sending", _m.claimed_by == worker_id, _m.attempts == attempt)


def _conditional(session: Session, where, **values) -> bool:
    result = session.execute(update(_m.__table__).where(*where).values(**values))
    return result.rowcount == 1


def _load(session: Session, ids: list[int]) -> list[tuple[OutboxMessage, dict[str, bool]]]:
    """The rows with their patients in one query, each with whether the number it will most
    likely go to (its ``to``, else the patient's phone) has opted out. Sorted by patient, so
    the cap rule's patient locks are always taken in the same order (no deadlock between
    workers)."""
    number = func.coalesce(_m.to, Patient.phone)
    opted_out = select(SmsOptOut.phone).where(SmsOptOut.phone == number).exists()
    found = session.execute(
        select(_m, number, opted_out)
        .outerjoin(Patient, Patient.id == _m.patient_id)
        .where(_m.id.in_(ids))
        .order_by(func.coalesce(_m.patient_id, 0), _m.id)
        .options(contains_eager(_m.patient))
        .execution_options(populate_existing=True)
    ).all()
    return [(row, {phone: bool(out)} if phone else {}) for row, phone, out in found]


# Clinic policy (quiet hours, caps) changes rarely; each worker re-reads it every few seconds
# instead of once per message. The cached row is detached, its columns loaded.
CLINIC_TTL = 5.0
_clinics: weakref.WeakKeyDictionary[Database, tuple[float, Any]] = weakref.WeakKeyDictionary()
_clinics_lock = threading.Lock()


def _clinic(database: Database, session: Session):
    with _clinics_lock:
        cached = _clinics.get(database)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    clinic = get_clinic(session)
    session.expunge(clinic)
    with _clinics_lock:
        _clinics[database] = (time.monotonic() + CLINIC_TTL, clinic)
    return clinic


def prepare(
    database: Database,
    ids: list[int],
    *,
    settings: Any,
    worker_id: str,
    now_fn: Callable[[], datetime] = utcnow,
    lease: timedelta = DEFAULT_LEASE,
    renderer: Renderer | None = None,
) -> list[Prepared | Outcome]:
    """Step 2 for rows claimed by ``worker_id``, in one transaction: re-check each with
    :mod:`.policy` (skip, defer or go), render it, and commit the exact ``to`` and body about
    to be sent with a renewed lease. Returns, in the order of ``ids``, a :class:`Prepared`
    to send or the :class:`Outcome` of a row that is not to be sent now (``lost``: no longer
    ours). :class:`~booking_service.messaging.rendering.RenderError` (no such template, no
    appointment) fails the row; any other render error retries it with backoff (a template
    bug fixed by a deploy must not have lost the message). A database error propagates: the
    transaction rolls back, nothing was sent, and the caller may :func:`release` the rows.
    """
    if not ids:
        return []
    results: dict[int, Prepared | Outcome] = {i: Outcome(i, "lost") for i in ids}
    with database.unit_of_work() as session:
        write_transaction(session)
        now = now_fn()
        clinic = _clinic(database, session)
        ready: list[Prepared] = []
        for row, known_opt_outs in _load(session, ids):
            if row.status != "sending" or row.claimed_by != worker_id:
                continue
            fence = _fence(row.id, worker_id, row.attempts)
            base = {"message_id": row.id, "channel": row.channel, "kind": row.kind}
            try:
                outgoing = None
                decision = policy.check(session, row, clinic=clinic, now=now)
                if decision.send:
                    outgoing = _render(session, row, settings=settings, clinic=clinic, now=now, renderer=renderer)
                    decision = policy.check_destination(session, row, outgoing, known_opt_outs=known_opt_outs)
            except DBAPIError:
                raise
            except Exception as exc:
                error = f"could not render: {exc}"[:1000]
                if _is_render_error(exc):
                    # No template, no appointment: retrying cannot help; staff see why.
                    ok = _conditional(
                        session, fence, status="failed", error=error, lease_expires_at=None, updated_at=now
                    )
                    results[row.id] = Outcome(status="failed" if ok else "lost", error=error, **base)
                else:
                    # A bug (a template error, bad data): retry with backoff, so a fix still
                    # sends the message, and give up after MAX_ATTEMPTS.
                    logger.exception("message %s: could not render", row.id)
                    results[row.id] = _retry_or_give_up(
                        session, fence, attempt=row.attempts, now=now, error=error, **base
                    )
                continue
            if decision.action == "skip":
                ok = _conditional(
                    session, fence, status="skipped", error=decision.reason, lease_expires_at=None, updated_at=now
                )
                results[row.id] = Outcome(status="skipped" if ok else "lost", error=decision.reason, **base)
            elif decision.action == "defer":
                # Not an attempt: give back the one the claim counted.
                ok = _conditional(
                    session,
                    fence,
                    status="pending",
                    next_attempt_at=decision.until,
                    attempts=row.attempts - 1,
                    claimed_by=None,
                    claimed_at=None,
                    lease_expires_at=None,
                    error=decision.reason,
                    updated_at=now,
                )
                results[row.id] = Outcome(
                    status="pending" if ok else "lost", error=decision.reason, next_attempt_at=decision.until, **base
                )
            else:
                assert outgoing is not None
                ready.append(Prepared(row.id, row.attempts, row.channel, row.kind, outgoing))
        # The commit that makes reconciliation possible: what is about to be sent, to whom.
        stored = _store(
            session,
            [(p.message_id, p.attempt, p.outgoing.to, _body(p.outgoing)) for p in ready],
            worker_id=worker_id,
            values={"lease_expires_at": now + lease, "updated_at": now},
        )
        for p in ready:
            if p.message_id in stored:
                results[p.message_id] = p
    return [results[i] for i in ids]


def _is_render_error(exc: Exception) -> bool:
    from booking_service.messaging.rendering import RenderError

    return isinstance(exc, RenderError)


def _body(outgoing: Sms | Email) -> str:
    return outgoing.body if isinstance(outgoing, Sms) else outgoing.text


def _store(
    session: Session,
    items: list[tuple[int, int, str | None, str | None]],
    *,
    worker_id: str,
    values: dict[str, Any],
    status: str | None = None,
) -> set[int]:
    """Conditional update of many claimed rows at once: for each (id, attempt, a, b) whose
    fence still holds, set ``values`` plus, as ``status`` is None or not, (``to``, ``body``)
    = (a, b) or (``provider_id``, ``status``) = (a, b). Returns the ids written.

    PostgreSQL: one ``UPDATE ... FROM unnest(arrays) ... RETURNING`` (a fixed text, so it is
    parsed once, whatever the batch size); SQLite: one UPDATE per row (in-process, cheap).
    Both in the caller's transaction.
    """
    if not items:
        return set()
    first, second = ("provider_id", "status") if status is not None else ("to", "body")
    if session.get_bind().dialect.name != "postgresql":
        return {
            message_id
            for message_id, attempt, a, b in items
            if _conditional(session, _fence(message_id, worker_id, attempt), **{first: a, second: b}, **values)
        }
    names = sorted(values)
    assignments = ", ".join([f'"{first}" = v.a', f'"{second}" = v.b', *(f'"{n}" = :{n}' for n in names)])
    statement = text(
        f"UPDATE outbox_messages AS m SET {assignments} "
        "FROM unnest(CAST(:ids AS integer[]), CAST(:attempts AS integer[]), CAST(:a AS text[]), "
        "CAST(:b AS text[])) AS v(id, attempt, a, b) "
        "WHERE m.id = v.id AND m.attempts = v.attempt AND m.status = 'sending' AND m.claimed_by = :worker "
        "RETURNING m.id"
    )
    params = {
        "ids": [i[0] for i in items],
        "attempts": [i[1] for i in items],
        "a": [i[2] for i in items],
        "b": [i[3] for i in items],
        "worker": worker_id,
        **values,
    }
    return set(session.execute(statement, params).scalars())


def deliver(prepared: Prepared, transports: Transports) -> Delivery:
    """Step 3: hand the message to its transport. No database, no transaction open."""
    started = time.monotonic()
    try:
        sent = transports.for_channel(prepared.channel).send(prepared.outgoing)  # type: ignore[arg-type]
    except TransportError as exc:
        return Delivery(prepared, error=exc, elapsed=time.monotonic() - started)
    return Delivery(prepared, sent=sent, elapsed=time.monotonic() - started)


def _render(
    session: Session, row: OutboxMessage, *, settings: Any, clinic, now: datetime, renderer: Renderer | None
) -> Sms | Email:
    """The message to send. A row planned with a body and no template is sent as written
    (replies, staff-written texts); any other row is rendered from its template."""
    if row.template is None and row.body:
        to = row.to or _patient_address(row)
        if row.channel == "sms":
            return Sms(to=to or "", body=row.body, status_callback=status_callback_url(settings.PUBLIC_BASE_URL))
        subject = str((row.payload or {}).get("subject") or clinic.name)
        return Email(
            to=to or "",
            subject=subject,
            text=row.body,
            html=None,
            message_id=message_id_for(row.id, settings.PUBLIC_BASE_URL),
        )
    if renderer is None:
        from booking_service.messaging.rendering import render as renderer
    # render() gives e-mails the stable Message-ID of message_id_for(): a resend after a crash
    # carries the same one, so it can be recognised as the same message.
    return renderer(session, row, settings=settings, clinic=clinic, now=now)


def _patient_address(row: OutboxMessage) -> str | None:
    patient = row.patient
    if patient is None:
        return None
    return patient.phone if row.channel == "sms" else patient.email


def record(database: Database, deliveries: list[Delivery], *, worker_id: str, now: datetime) -> list[Outcome]:
    """Step 4 for many deliveries in one transaction; outcomes in the same order.

    A success is written only while this attempt's fence holds. If the lease ran out during
    the send and the reaper has put the row back to ``pending``, the known send still wins as
    long as nobody has claimed the row again; otherwise the outcome is ``lost`` (logged: the
    other worker may send a duplicate, which only a lease shorter than a send allows).
    """
    if not deliveries:
        return []
    successes = [d for d in deliveries if d.sent is not None]
    outcomes: dict[int, Outcome] = {}
    with database.unit_of_work() as session:
        write_transaction(session)
        if database.dialect == "postgresql":
            # This commit need not wait for the disk: had the database lost it in a crash, the
            # row would be "sending" with its to and body stored, which the reaper reconciles
            # with Twilio. (The prepare commit, which makes that possible, stays synchronous.)
            session.execute(text("SET LOCAL synchronous_commit = off"))
        for status in ("sent", "delivered"):
            group = [d for d in successes if _sent_status(d.sent) == status]
            stored = _store(
                session,
                [(d.prepared.message_id, d.prepared.attempt, d.sent.provider_id, status) for d in group],
                worker_id=worker_id,
                values={"sent_at": now, "error": None, "error_code": None, "lease_expires_at": None, "updated_at": now},
                status=status,
            )
            for d in group:
                p = d.prepared
                ok = p.message_id in stored or _late_record(session, d, status, now=now)
                outcomes[p.message_id] = Outcome(
                    p.message_id,
                    status if ok else "lost",
                    p.channel,
                    p.kind,
                    p.outgoing.to,
                    d.sent.provider_id,
                    elapsed=d.elapsed,
                )
        for d in deliveries:
            if d.error is not None:
                outcome = _record_failure(session, d.prepared, d.error, worker_id=worker_id, now=now)
                outcomes[d.prepared.message_id] = replace(outcome, elapsed=d.elapsed)
    return [outcomes[d.prepared.message_id] for d in deliveries]


def _sent_status(sent: Sent) -> str:
    return sent.status if sent.status in ("sent", "delivered") else "sent"


def _late_record(session: Session, delivery: Delivery, status: str, *, now: datetime) -> bool:
    p, sent = delivery.prepared, delivery.sent
    assert sent is not None
    if _conditional(
        session,
        (_m.id == p.message_id, _m.status == "pending"),
        status=status,
        provider_id=sent.provider_id,
        sent_at=now,
        error=None,
        error_code=None,
        lease_expires_at=None,
        updated_at=now,
    ):
        logger.warning("message %s: lease expired during the send; recorded anyway", p.message_id)
        return True
    logger.error(
        "message %s: sent as %s after losing its lease; another worker may send it again",
        p.message_id,
        sent.provider_id,
    )
    return False


def _record_failure(
    session: Session, prepared: Prepared, exc: TransportError, *, worker_id: str, now: datetime
) -> Outcome:
    fence = _fence(prepared.message_id, worker_id, prepared.attempt)
    base = {"message_id": prepared.message_id, "channel": prepared.channel, "kind": prepared.kind}
    to = prepared.outgoing.to
    if not exc.permanent:
        if exc.uncertain and prepared.channel == "sms":
            # The provider may have the message: leave the row to the reaper, which asks.
            ok = _conditional(
                session,
                fence,
                lease_expires_at=now + UNCERTAIN_SETTLE,
                error=exc.message,
                error_code=exc.code,
                updated_at=now,
            )
            return Outcome(status="sending" if ok else "lost", to=to, error=exc.message, **base)
        return _retry_or_give_up(
            session, fence, attempt=prepared.attempt, now=now, error=exc.message, code=exc.code, to=to, **base
        )
    if not _conditional(
        session, fence, status="failed", error=exc.message, error_code=exc.code, lease_expires_at=None, updated_at=now
    ):
        return Outcome(status="lost", **base)
    row = session.get(_m, prepared.message_id)
    if prepared.channel == "sms" and exc.opted_out:
        from booking_service.patients.consent import opt_out_phone

        # The same as a STOP: SmsOptOut, a ledger event, and the number's pending texts cancelled.
        opt_out_phone(session, to, source="twilio_21610", now=now, detail=f"send of outbox message {row.id} refused")
    elif prepared.channel == "sms" and exc.bad_address:
        _mark_phone_invalid_and_fall_back(session, row, to, now=now)
    return Outcome(status="failed", to=to, error=exc.message, **base)


def backoff(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """The wait before the next attempt after ``attempts`` failed ones: 30 s doubling to 1 h,
    with "equal jitter" (between half and all of it) so failed batches do not retry in step."""
    ceiling = min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)
    return ceiling / 2 + ceiling / 2 * (rng or random).random()


def _retry_or_give_up(
    session: Session,
    fence,
    *,
    message_id: int,
    channel: str,
    kind: str,
    attempt: int,
    now: datetime,
    error: str,
    code: str | None = None,
    to: str | None = None,
) -> Outcome:
    base = {"message_id": message_id, "channel": channel, "kind": kind, "to": to}
    if attempt >= MAX_ATTEMPTS:
        error = f"gave up after {attempt} attempts: {error}"
        ok = _conditional(
            session, fence, status="failed", error=error, error_code=code, lease_expires_at=None, updated_at=now
        )
        return Outcome(status="failed" if ok else "lost", error=error, **base)
    when = now + backoff(attempt)
    ok = _conditional(
        session,
        fence,
        status="pending",
        next_attempt_at=when,
        error=error,
        error_code=code,
        claimed_by=None,
        lease_expires_at=None,
        updated_at=now,
    )
    return Outcome(status="pending" if ok else "lost", error=error, next_attempt_at=when, **base)


def _mark_phone_invalid_and_fall_back(session: Session, row: OutboxMessage, phone: str, *, now: datetime) -> None:
    """The number cannot receive texts: flag it for staff, and send the same kind of message
    by e-mail instead when the patient gave an address and consented to e-mail."""
    patient = row.patient
    if patient is None or patient.phone != phone:
        return
    if patient.phone_invalid_at is None:
        patient.phone_invalid_at = now
    if not (patient.email and patient.email_consent):
        return
    key = fallback_dedupe_key(row.dedupe_key)
    if session.scalar(select(_m.id).where(_m.dedupe_key == key)) is not None:
        return
    session.add(
        OutboxMessage(
            appointment_id=row.appointment_id,
            patient_id=row.patient_id,
            channel="email",
            kind=row.kind,
            to=patient.email,
            template=row.template,
            payload={**(row.payload or {}), "fallback_from": row.id},
            body=row.body if row.template is None else None,
            due_at=now,
            next_attempt_at=now,
            status="pending",
            attempts=0,
            dedupe_key=key,
            created_at=now,
            updated_at=now,
        )
    )


def fallback_dedupe_key(key: str) -> str:
    """The dedupe key of the e-mail sent in place of an undeliverable text (fits 160 chars)."""
    suffix = ":email-fallback"
    if len(key) + len(suffix) <= 160:
        return key + suffix
    return hashlib.sha256(key.encode("utf-8")).hexdigest() + suffix


# --------------------------------------------------------------------------- recover


def recover_expired(
    database: Database,
    *,
    now: datetime,
    transports: Transports,
    limit: int = 200,
    margin: timedelta = RECONCILE_MARGIN,
    on_settled: Callable[[Outcome], None] | None = None,
    keep_going: Callable[[], bool] | None = None,
) -> list[Outcome]:
    """Settle rows left in ``sending`` past their lease (a worker died or timed out).

    SMS rows that were prepared (``to`` and ``body`` stored) are reconciled with the provider
    first: a message found there is recorded as sent with its id, never resent. Otherwise the
    row goes back to ``pending`` (due at once), or fails after :data:`MAX_ATTEMPTS`. A row
    whose provider cannot be asked right now is left for the next sweep. Run from one worker
    at a time (the worker holds an advisory lock on PostgreSQL); concurrent runs stay correct,
    since every write is conditional on the row being unchanged. ``on_settled`` is called with
    each outcome as soon as it is committed (a sweep asks the provider once per row);
    ``keep_going`` is asked before each row (a worker shutting down stops its sweep).
    """
    with database.unit_of_work() as session:
        expired = session.execute(
            select(_m.id, _m.channel, _m.kind, _m.to, _m.body, _m.claimed_by, _m.claimed_at, _m.attempts)
            .where(_m.status == "sending", _m.lease_expires_at < now)
            .order_by(_m.lease_expires_at)
            .limit(limit)
        ).all()
    outcomes = []
    for row in expired:
        if keep_going is not None and not keep_going():
            break
        candidates: list[ProviderRecord] = []
        if row.channel == "sms" and row.to and row.body:
            since = (row.claimed_at or now) - margin
            try:
                records = transports.sms.find_sent(row.to, since=since)
            except TransportError as exc:
                logger.warning("message %s: cannot reconcile yet (%s)", row.id, exc.message)
                continue
            candidates = sorted((r for r in records if _same_body(r.body, row.body)), key=lambda r: r.created_at)
        outcome = _settle(database, row, candidates, now=now)
        outcomes.append(outcome)
        if on_settled is not None:
            on_settled(outcome)
    return outcomes


def _same_body(theirs: str, ours: str) -> bool:
    return theirs == ours or " ".join(theirs.split()) == " ".join(ours.split())


def _settle(database: Database, row, candidates: list[ProviderRecord], *, now: datetime) -> Outcome:
    fence = (*_fence(row.id, row.claimed_by, row.attempts), _m.lease_expires_at < now)
    base = {"message_id": row.id, "channel": row.channel, "kind": row.kind, "to": row.to}
    with database.unit_of_work() as session:
        write_transaction(session)
        # A provider message already recorded on another row (an identical text to the same
        # number) is that row's, not this one's.
        ids = [c.provider_id for c in candidates]
        taken = set(session.scalars(select(_m.provider_id).where(_m.provider_id.in_(ids)))) if ids else set()
        match = next((c for c in candidates if c.provider_id not in taken), None)
        if match is not None:
            status = match.status if match.status in ("sent", "delivered", "failed") else "sent"
            error = "the provider reports the message failed" if status == "failed" else None
            ok = _conditional(
                session,
                fence,
                status=status,
                provider_id=match.provider_id,
                sent_at=match.created_at,
                error=error,
                error_code=None,
                lease_expires_at=None,
                updated_at=now,
            )
            return Outcome(status=status if ok else "lost", provider_id=match.provider_id, error=error, **base)
        if row.attempts >= MAX_ATTEMPTS:
            error = f"gave up after {row.attempts} attempts (the last was interrupted)"
            ok = _conditional(session, fence, status="failed", error=error, lease_expires_at=None, updated_at=now)
            return Outcome(status="failed" if ok else "lost", error=error, **base)
        error = "interrupted while sending (worker stopped or timed out); not found at the provider, retrying"
        ok = _conditional(
            session,
            fence,
            status="pending",
            next_attempt_at=now,
            claimed_by=None,
            lease_expires_at=None,
            error=error,
            updated_at=now,
        )
        return Outcome(status="pending" if ok else "lost", error=error, next_attempt_at=now, **base)
