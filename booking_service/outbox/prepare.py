"""Step 2, prepare: re-check claimed rows, render them, and commit what is about to be sent.

From the prepare commit on, a row says exactly what may be at the provider (``to`` and
``body``): that is what lets the reaper reconcile a send whose worker died.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, contains_eager

from booking_service.clinic.queries import get_clinic
from booking_service.db import Database, utcnow, write_transaction
from booking_service.integrations.contract import Email, Sms
from booking_service.integrations.smtp.message_id import message_id_for
from booking_service.integrations.twilio.callbacks import status_callback_url
from booking_service.messaging import policy
from booking_service.outbox import transitions
from booking_service.outbox.claim import DEFAULT_LEASE
from booking_service.outbox.models import OutboxMessage
from booking_service.outbox.outcome import Outcome
from booking_service.outbox.retry import MAX_ATTEMPTS, backoff
from booking_service.outbox.transitions import Claim
from booking_service.patients.models import Patient, SmsOptOut

logger = logging.getLogger("booking_service.dispatch")

Renderer = Callable[..., Sms | Email]
_m = OutboxMessage


@dataclass(frozen=True)
class Prepared:
    """A claimed row that passed the send-time checks, rendered; ``to`` and body committed."""

    claim: Claim
    channel: str
    kind: str
    outgoing: Sms | Email
    request_id: str | None = None  # the row's, for the worker's log lines
    due_at: datetime | None = None

    @property
    def message_id(self) -> int:
        return self.claim.message_id

    @property
    def attempt(self) -> int:
        return self.claim.attempt


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
    :mod:`~booking_service.messaging.policy` (skip, defer or go), render it, and commit the
    exact ``to`` and body about to be sent with a renewed lease. Returns, in the order of
    ``ids``, a :class:`Prepared` to send or the :class:`Outcome` of a row that is not to be
    sent now (``lost``: no longer ours). ``RenderError`` (no such template, no appointment)
    fails the row; any other render error retries it with backoff (a template bug fixed by a
    deploy must not have lost the message). A database error propagates: the transaction rolls
    back, nothing was sent, and the caller may release the rows.
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
            claim = Claim(row.id, worker_id, row.attempts)
            base = {
                "message_id": row.id,
                "channel": row.channel,
                "kind": row.kind,
                "request_id": row.request_id,
                "due_at": row.due_at,
            }
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
                    ok = transitions.apply(session, "fail", claim, now=now, error=error, error_code=None)
                    results[row.id] = Outcome(status="failed" if ok else "lost", error=error, **base)
                else:
                    # A bug (a template error, bad data): retry with backoff, so a fix still
                    # sends the message, and give up after MAX_ATTEMPTS.
                    logger.exception(
                        "message %s: could not render",
                        row.id,
                        extra={"request_id": row.request_id, "message_id": row.id, "kind": row.kind},
                    )
                    results[row.id] = retry_or_give_up(session, claim, now=now, error=error, **base)
                continue
            if decision.action == "skip":
                ok = transitions.apply(session, "skip", claim, now=now, error=decision.reason)
                results[row.id] = Outcome(status="skipped" if ok else "lost", error=decision.reason, **base)
            elif decision.action == "defer":
                # Not an attempt: the transition gives back the one the claim counted.
                ok = transitions.apply(
                    session, "defer", claim, now=now, next_attempt_at=decision.until, error=decision.reason
                )
                results[row.id] = Outcome(
                    status="pending" if ok else "lost", error=decision.reason, next_attempt_at=decision.until, **base
                )
            else:
                assert outgoing is not None
                ready.append(Prepared(claim, row.channel, row.kind, outgoing, row.request_id, row.due_at))
        # The commit that makes reconciliation possible: what is about to be sent, to whom.
        stored = transitions.apply_many(
            session,
            "prepare",
            [p.claim for p in ready],
            now=now,
            rows={"to": [p.outgoing.to for p in ready], "body": [_body(p.outgoing) for p in ready]},
            lease_expires_at=now + lease,
        )
        for p in ready:
            if p.message_id in stored:
                results[p.message_id] = p
    return [results[i] for i in ids]


def retry_or_give_up(
    session: Session,
    claim: Claim,
    *,
    now: datetime,
    error: str,
    code: str | None = None,
    channel: str = "",
    kind: str = "",
    to: str | None = None,
    message_id: int | None = None,
    request_id: str | None = None,
    due_at: datetime | None = None,
) -> Outcome:
    """A transient failure of ``claim``'s attempt: ``retry`` after :func:`~.retry.backoff`, or
    ``fail`` once it was the :data:`~.retry.MAX_ATTEMPTS`-th. In the caller's transaction."""
    base = {
        "message_id": claim.message_id,
        "channel": channel,
        "kind": kind,
        "to": to,
        "request_id": request_id,
        "due_at": due_at,
    }
    if claim.attempt >= MAX_ATTEMPTS:
        error = f"gave up after {claim.attempt} attempts: {error}"
        ok = transitions.apply(session, "fail", claim, now=now, error=error, error_code=code)
        return Outcome(status="failed" if ok else "lost", error=error, **base)
    when = now + backoff(claim.attempt)
    ok = transitions.apply(session, "retry", claim, now=now, next_attempt_at=when, error=error, error_code=code)
    return Outcome(status="pending" if ok else "lost", error=error, next_attempt_at=when, **base)


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


def _is_render_error(exc: Exception) -> bool:
    from booking_service.messaging.rendering import RenderError

    return isinstance(exc, RenderError)


def _body(outgoing: Sms | Email) -> str:
    return outgoing.body if isinstance(outgoing, Sms) else outgoing.text


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
