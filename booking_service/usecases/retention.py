"""Data care: message content is kept only as long as it is needed (MESSAGE_RETENTION_DAYS).

What the retention job purges, once a row is older than ``MESSAGE_RETENTION_DAYS`` (default
180 days):

- **outbox messages** that are no longer in flight (any status but ``pending`` and
  ``sending``), by ``created_at``: ``body`` (the text or e-mail as sent: first names, times,
  links) and ``payload`` (what it was rendered from, an e-mail's subject included) are
  cleared; ``content_purged_at`` records when;
- **patients' texts** (``inbound_messages``), by ``received_at``: ``body`` is emptied.

Kept: every row, its status, times, attempt count, provider id and error, the recipient's
address on outbox rows and the sender's number on inbound texts (staff still see that a
reminder went to ***1234 and was delivered; an opt-out still has its source), how a text was
read (``intent``) and whether staff handled it. Program logs and the audit trail are not
touched here: see docs/operations.md ("Data kept") for their policy.

:func:`purge_batch` does one batch in the caller's transaction and records one
``retention.purge`` audit event with the counts (never content). The worker runs it
(``scheduler.worker.Worker.purge_content``) once across workers, in short transactions,
until a batch finds less than a full batch to purge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from booking_service import audit
from booking_service.db import write_transaction
from booking_service.messaging.models import InboundMessage
from booking_service.outbox.models import OutboxMessage

BATCH = 1000
IN_FLIGHT = ("pending", "sending")


@dataclass(frozen=True)
class Purged:
    messages: int = 0
    inbound_texts: int = 0

    @property
    def total(self) -> int:
        return self.messages + self.inbound_texts

    def __add__(self, other: Purged) -> Purged:
        return Purged(self.messages + other.messages, self.inbound_texts + other.inbound_texts)


def cutoff(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def purge_batch(session: Session, *, now: datetime, days: int, limit: int = BATCH) -> Purged:
    """Purge up to ``limit`` outbox rows and ``limit`` inbound texts older than ``days`` (see
    the module), in the caller's transaction. Returns how many of each were purged: fewer than
    ``limit`` of both means nothing older is left."""
    if days < 1:
        raise ValueError("days must be at least 1")
    write_transaction(session)
    before = cutoff(now, days)
    m, i = OutboxMessage, InboundMessage
    message_ids = session.scalars(
        select(m.id)
        .where(m.content_purged_at.is_(None), m.created_at < before, m.status.not_in(IN_FLIGHT))
        .order_by(m.id)
        .limit(limit)
    ).all()
    if message_ids:
        session.execute(
            update(m)
            .where(m.id.in_(message_ids), m.status.not_in(IN_FLIGHT))  # not claimed meanwhile
            .values(body=None, payload={}, content_purged_at=now)
            .execution_options(synchronize_session=False)
        )
    inbound_ids = session.scalars(
        select(i.id).where(i.content_purged_at.is_(None), i.received_at < before).order_by(i.id).limit(limit)
    ).all()
    if inbound_ids:
        session.execute(
            update(i)
            .where(i.id.in_(inbound_ids))
            .values(body="", content_purged_at=now)
            .execution_options(synchronize_session=False)
        )
    purged = Purged(len(message_ids), len(inbound_ids))
    if purged.total:
        audit.record(
            session,
            "retention.purge",
            "message_content",
            None,
            {"messages": purged.messages, "inbound_texts": purged.inbound_texts, "days": days},
            now=now,
        )
    return purged
