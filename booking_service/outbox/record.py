"""Step 4, record: write what the provider said, in batches, fenced by each attempt's claim."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from booking_service.db import Database, write_transaction
from booking_service.integrations.contract import Sent, TransportError
from booking_service.outbox import transitions
from booking_service.outbox.failures import react_to_permanent_failure
from booking_service.outbox.models import OutboxMessage
from booking_service.outbox.outcome import Outcome
from booking_service.outbox.prepare import Prepared, retry_or_give_up
from booking_service.outbox.provider_status import apply_stored_statuses
from booking_service.outbox.send import Delivery

logger = logging.getLogger("booking_service.dispatch")

# An uncertain send (timeout) is reconciled after this long, once the provider has settled.
UNCERTAIN_SETTLE = timedelta(seconds=5)


def record(database: Database, deliveries: list[Delivery], *, worker_id: str, now: datetime) -> list[Outcome]:
    """Step 4 for many deliveries in one transaction; outcomes in the same order.

    A success is written (``sent``) only while its attempt's claim holds. If the lease ran out
    during the send and the reaper has put the row back to ``pending``, the known send still
    wins (``late_sent``) as long as nobody has claimed the row again; otherwise the outcome is
    ``lost`` (logged: the other worker may send a duplicate, which only a lease shorter than a
    send allows). Delivery reports that arrived before the id was recorded are applied now.
    Failures: permanent -> ``fail`` and :func:`~.failures.react_to_permanent_failure`;
    uncertain SMS -> ``hold`` for the reaper; transient -> ``retry`` with backoff.
    """
    if not deliveries:
        return []
    outcomes: dict[int, Outcome] = {}
    with database.unit_of_work() as session:
        write_transaction(session)
        if database.dialect == "postgresql":
            # This commit need not wait for the disk: had the database lost it in a crash, the
            # row would be "sending" with its to and body stored, which the reaper reconciles
            # with the provider. (The prepare commit, which makes that possible, stays synchronous.)
            session.execute(text("SET LOCAL synchronous_commit = off"))
        recorded: list[str] = []
        for status in ("sent", "delivered"):
            group = [d for d in deliveries if d.sent is not None and _sent_status(d.sent) == status]
            stored = transitions.apply_many(
                session,
                "sent",
                [d.prepared.claim for d in group],
                now=now,
                target=status,
                rows={"provider_id": [d.sent.provider_id for d in group]},
                sent_at=now,
            )
            for d in group:
                p = d.prepared
                ok = p.message_id in stored or _late_record(session, d, status, now=now)
                if ok:
                    recorded.append(d.sent.provider_id)
                outcomes[p.message_id] = Outcome(
                    p.message_id,
                    status if ok else "lost",
                    p.channel,
                    p.kind,
                    p.outgoing.to,
                    d.sent.provider_id,
                    elapsed=d.elapsed,
                    request_id=p.request_id,
                    due_at=p.due_at,
                )
        if recorded:
            apply_stored_statuses(session, recorded, now=now)
        for d in deliveries:
            if d.error is not None:
                outcome = _record_failure(session, d.prepared, d.error, now=now)
                outcomes[d.prepared.message_id] = replace(outcome, elapsed=d.elapsed)
    return [outcomes[d.prepared.message_id] for d in deliveries]


def _sent_status(sent: Sent) -> str:
    return sent.status if sent.status in ("sent", "delivered") else "sent"


def _late_record(session: Session, delivery: Delivery, status: str, *, now: datetime) -> bool:
    p, sent = delivery.prepared, delivery.sent
    assert sent is not None
    if transitions.apply(
        session, "late_sent", p.claim, now=now, target=status, provider_id=sent.provider_id, sent_at=now
    ):
        logger.warning("message %s: lease expired during the send; recorded anyway", p.message_id)
        return True
    logger.error(
        "message %s: sent as %s after losing its lease; another worker may send it again",
        p.message_id,
        sent.provider_id,
    )
    return False


def _record_failure(session: Session, prepared: Prepared, exc: TransportError, *, now: datetime) -> Outcome:
    claim = prepared.claim
    to = prepared.outgoing.to
    base = {
        "message_id": prepared.message_id,
        "channel": prepared.channel,
        "kind": prepared.kind,
        "to": to,
        "request_id": prepared.request_id,
        "due_at": prepared.due_at,
    }
    if not exc.permanent:
        if exc.uncertain and prepared.channel == "sms":
            # The provider may have the message: leave the row to the reaper, which asks.
            ok = transitions.apply(
                session,
                "hold",
                claim,
                now=now,
                lease_expires_at=now + UNCERTAIN_SETTLE,
                error=exc.message,
                error_code=exc.code,
            )
            return Outcome(status="sending" if ok else "lost", error=exc.message, **base)
        return retry_or_give_up(session, claim, now=now, error=exc.message, code=exc.code, **base)
    if not transitions.apply(session, "fail", claim, now=now, error=exc.message, error_code=exc.code):
        return Outcome(status="lost", **base)
    message = session.get(OutboxMessage, prepared.message_id)
    react_to_permanent_failure(
        session,
        message,
        opted_out=exc.opted_out,
        bad_address=exc.bad_address,
        now=now,
        opt_out_source="twilio_21610",
        detail=f"send of outbox message {message.id} refused",
    )
    return Outcome(status="failed", error=exc.message, **base)
