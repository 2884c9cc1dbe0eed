"""Step 1, claim: take due rows for one worker, and how many to take.

See :func:`booking_service.outbox.transitions.claim` for the UPDATE itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from booking_service.db import Database, write_transaction
from booking_service.outbox import transitions

DEFAULT_LEASE = timedelta(seconds=30)
# A claimed batch must be sendable within this fraction of the lease (see claim_limit).
CLAIM_FRACTION = 1 / 3


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
    with database.unit_of_work() as session:
        return transitions.claim(session, worker_id=worker_id, now=now, lease=lease, limit=limit)


def release(database: Database, ids: list[int], *, worker_id: str, now: datetime) -> int:
    """Give claimed rows back untouched (a worker shutting down before sending them)."""
    if not ids:
        return 0
    with database.unit_of_work() as session:
        write_transaction(session)
        return transitions.release(session, ids, worker_id=worker_id, now=now)


def claim_limit(*, threads: int, lease: timedelta, send_seconds: float, ceiling: int) -> int:
    """The most rows a worker should hold claimed (in flight) at once.

    Rule: no more than its ``threads`` can send within :data:`CLAIM_FRACTION` of the lease at
    the observed time per send (``send_seconds``), and never more than ``ceiling`` (two pools'
    worth: one sending, one prepared and waiting); at least one per thread. A worker killed at
    any moment so strands at most what it would have sent in a third of a lease, and a claimed
    row never waits in the queue long enough for its lease to run out under a live worker.
    """
    per_thread = int(lease.total_seconds() * CLAIM_FRACTION / max(send_seconds, 1e-3))
    return max(threads, min(ceiling, threads * max(per_thread, 1)))
