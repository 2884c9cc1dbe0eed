"""Step 3, send: one call to the transport, no database, no transaction open; and
:func:`send_one`, the four steps for one row (the tests' and the CLI's path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from booking_service.db import Database, utcnow
from booking_service.messaging.transports import (
    EmailTransport,
    Sent,
    SmsTransport,
    SmtpEmail,
    TransportError,
    TwilioSms,
    build_email_transport,
    build_sms_transport,
)
from booking_service.outbox.claim import DEFAULT_LEASE
from booking_service.outbox.outcome import Outcome
from booking_service.outbox.prepare import Prepared, Renderer, prepare


@dataclass(frozen=True)
class Transports:
    sms: SmsTransport
    email: EmailTransport

    @classmethod
    def from_settings(cls, settings: Any, *, lease: timedelta | None = None) -> Transports:
        """The configured transports. With ``lease``, the SMS timeout is kept under a third of
        it, so a live worker always finishes a send before its lease can expire."""
        sms, email = build_sms_transport(settings), build_email_transport(settings)
        if lease is not None:
            bound = max(lease.total_seconds() / 3, 0.5)
            if isinstance(sms, TwilioSms):
                sms.timeout = min(sms.timeout, bound)
            if isinstance(email, SmtpEmail):
                # Per SMTP command; a crawling server could still outlast the lease, in which
                # case the resend carries the same Message-ID (see the package docstring).
                email.timeout = min(email.timeout, bound)
        return cls(sms=sms, email=email)

    def for_channel(self, channel: str) -> SmsTransport | EmailTransport:
        return self.sms if channel == "sms" else self.email


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
