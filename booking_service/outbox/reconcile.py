"""The reaper: settle rows left ``sending`` past their lease (their worker died or timed out),
asking the provider first where it can say whether the message went out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select

from booking_service.db import Database, write_transaction
from booking_service.integrations.contract import ProviderRecord, TransportError
from booking_service.integrations.registry import Transports
from booking_service.outbox import transitions
from booking_service.outbox.models import OutboxMessage
from booking_service.outbox.outcome import Outcome
from booking_service.outbox.provider_status import (
    STORED_REPORT_RETENTION,
    apply_stored_statuses,
    prune_stored_statuses,
)
from booking_service.outbox.retry import MAX_ATTEMPTS
from booking_service.outbox.transitions import Claim

logger = logging.getLogger("booking_service.dispatch")

# The provider's clock is not ours: look for its records from a little before the claim.
RECONCILE_MARGIN = timedelta(seconds=60)
_m = OutboxMessage


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
    """Settle rows left in ``sending`` past their lease, and apply stored delivery reports.

    SMS rows that were prepared (``to`` and ``body`` stored) are reconciled with the provider
    first: a message found there (same number, same body, created since the claim less
    ``margin``, not already another row's) is recorded with its id, never resent
    (``reconcile``). Otherwise the row goes back to ``pending``, due at once (``requeue``), or
    fails after :data:`~.retry.MAX_ATTEMPTS` (``give_up``). A row whose provider cannot be asked
    right now is left for the next sweep. Stored delivery reports whose id no row holds after
    :data:`~.provider_status.STORED_REPORT_RETENTION` (7 days) are deleted. Run from one worker
    at a time (the worker holds an advisory lock on PostgreSQL); concurrent runs stay correct,
    since every write is fenced.
    ``on_settled`` is called with each outcome as soon as it is committed (a sweep asks the
    provider once per row); ``keep_going`` is asked before each row (a worker shutting down
    stops its sweep).
    """
    with database.unit_of_work() as session:
        write_transaction(session)
        # Reports whose record commit crossed them (see provider_status), and any other stray;
        # then those no row has claimed for a week: no row ever will.
        apply_stored_statuses(session, now=now)
        pruned = prune_stored_statuses(session, now=now)
        if pruned:
            logger.info("pruned %d delivery reports that matched no message for %s", pruned, STORED_REPORT_RETENTION)
    with database.unit_of_work() as session:
        expired = session.execute(
            select(
                _m.id,
                _m.channel,
                _m.kind,
                _m.to,
                _m.body,
                _m.claimed_by,
                _m.claimed_at,
                _m.attempts,
                _m.request_id,
                _m.due_at,
            )
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
    claim = Claim(row.id, row.claimed_by, row.attempts)
    base = {
        "message_id": row.id,
        "channel": row.channel,
        "kind": row.kind,
        "to": row.to,
        "request_id": row.request_id,
        "due_at": row.due_at,
    }
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
            ok = transitions.apply(
                session,
                "reconcile",
                claim,
                now=now,
                target=status,
                provider_id=match.provider_id,
                sent_at=match.created_at,
                error=error,
            )
            if ok:
                apply_stored_statuses(session, [match.provider_id], now=now)
            return Outcome(status=status if ok else "lost", provider_id=match.provider_id, error=error, **base)
        if row.attempts >= MAX_ATTEMPTS:
            error = f"gave up after {row.attempts} attempts (the last was interrupted)"
            ok = transitions.apply(session, "give_up", claim, now=now, error=error)
            return Outcome(status="failed" if ok else "lost", error=error, **base)
        error = "interrupted while sending (worker stopped or timed out); not found at the provider, retrying"
        ok = transitions.apply(session, "requeue", claim, now=now, next_attempt_at=now, error=error)
        return Outcome(status="pending" if ok else "lost", error=error, next_attempt_at=now, **base)
