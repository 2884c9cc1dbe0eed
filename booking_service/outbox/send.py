"""Step 3, send: one call to the transport, no database, no transaction open; and
:func:`send_one`, the four steps for one row (the tests' and the CLI's path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from booking_service.db import Database, utcnow
from booking_service.integrations.contract import Sent, TransportError
from booking_service.integrations.registry import Transports
from booking_service.outbox.claim import DEFAULT_LEASE
from booking_service.outbox.outcome import Outcome
from booking_service.outbox.prepare import Prepared, Renderer, prepare


def send_timeout_for(lease: timedelta) -> float:
    """The longest a provider call may take under ``lease``: a third of it, so a live worker
    always finishes a send (and records it) before its lease can expire. A crawling SMTP server
    could still outlast it per command, in which case the resend carries the same Message-ID."""
    return max(lease.total_seconds() / 3, 0.5)


@dataclass(frozen=True)
class Delivery:
    """What the provider said to one :class:`Prepared` message: ``sent`` or ``error``."""

    prepared: Prepared
    sent: Sent | None = None
    error: TransportError | None = None
    elapsed: float = 0.0


def deliver(prepared: Prepared, transports: Transports) -> Delivery:
    """Step 3: hand the message to its transport. Never raises for the provider's answer."""
    started = time.monotonic()
    try:
        sent = transports.for_channel(prepared.channel).send(prepared.outgoing)  # type: ignore[arg-type]
    except TransportError as exc:
        return Delivery(prepared, error=exc, elapsed=time.monotonic() - started)
    return Delivery(prepared, sent=sent, elapsed=time.monotonic() - started)


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
    """Prepare, deliver and record one row claimed by ``worker_id``; the worker runs the same
    three steps itself, in batches. Never raises for a provider's answer: permanent errors
    fail the row, transient ones retry it with backoff, an uncertain one leaves it to the
    reaper. ``"lost"`` when the row was no longer this worker's (nothing written). Database
    errors propagate; the row then stays ``sending`` and the reaper recovers it.
    """
    from booking_service.outbox.record import record

    [prepared] = prepare(
        database, [message_id], settings=settings, worker_id=worker_id, now_fn=now_fn, lease=lease, renderer=renderer
    )
    if isinstance(prepared, Outcome):
        return prepared
    [outcome] = record(database, [deliver(prepared, transports)], worker_id=worker_id, now=now_fn())
    return outcome
