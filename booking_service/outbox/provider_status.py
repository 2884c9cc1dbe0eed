"""The provider's delivery reports (status callbacks), in our vocabulary, forward only.

A report can arrive before the row holds its message id: the provider answers the send, then
calls back within milliseconds, while the worker's record commit is still on its way. Such a
report is stored (:class:`~.models.ProviderStatusEvent`) and applied when a row gets that id:
by the record step, by the reaper's reconciliation, and by the reaper's sweep of stored reports
(which also closes the race where the report and the record commit cross on PostgreSQL).
A stored report that no row ever claims (a message sent outside this service on the same
account, or a row deleted) is pruned by the reaper after :data:`STORED_REPORT_RETENTION`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from booking_service.db import write_transaction
from booking_service.observability.metrics import MESSAGES, count_on_commit
from booking_service.outbox import transitions
from booking_service.outbox.failures import react_to_permanent_failure
from booking_service.outbox.models import OutboxMessage, ProviderStatusEvent

PROVIDER_STATUSES = tuple(transitions.PROGRESS)  # "sent", "delivered", "failed"
# A report waits milliseconds for its row's record commit, or a lease and a sweep when the
# worker died mid-send; a week covers any outage worth recovering from.
STORED_REPORT_RETENTION = timedelta(days=7)


@dataclass(frozen=True)
class StatusOutcome:
    """What a report did. ``message``: the row holding the id (None when none does yet);
    ``changed``: it moved the row forward; ``stored``: kept for later, no row holds the id yet;
    ``opted_out``: it recorded a new opt-out."""

    message: OutboxMessage | None
    changed: bool
    opted_out: bool = False
    stored: bool = False


def apply_provider_status(
    session: Session,
    *,
    provider_id: str,
    status: str,
    error_code: str | None = None,
    error: str | None = None,
    opted_out: bool = False,
    bad_address: bool = False,
    now: datetime,
    opt_out_source: str = "provider",
) -> StatusOutcome:
    """Apply one delivery report for provider message ``provider_id``; flushes, no commit.

    ``status`` is already ours: ``sent``, ``delivered`` or ``failed`` (a provider adapter
    translates its own words and ignores those it does not know). Forward only: ``sent`` moves
    a ``pending``/``sending`` row; ``delivered`` and ``failed`` also a ``sent`` one; a report
    that would move a row back, or a repeat, changes nothing; ``skipped``/``cancelled`` rows are
    never touched. ``failed`` stores ``error_code``/``error`` on the row and, for a text, runs
    :func:`~.failures.react_to_permanent_failure` with ``opted_out`` (records the opt-out,
    ledger source ``opt_out_source``) and ``bad_address`` (phone marked invalid, e-mail
    fallback planned). When no row holds ``provider_id`` yet, the report is stored and applied
    as soon as one does; it is never dropped. Takes the write lock first (SQLite).
    Raises ValueError for a status outside our vocabulary.
    """
    if status not in PROVIDER_STATUSES:
        raise ValueError(f"not a provider status: {status!r}")
    write_transaction(session)
    return _apply(
        session,
        provider_id=provider_id,
        status=status,
        error_code=error_code,
        error=error,
        opted_out=opted_out,
        bad_address=bad_address,
        now=now,
        opt_out_source=opt_out_source,
    )


def _apply(
    session: Session,
    *,
    provider_id: str,
    status: str,
    error_code: str | None,
    error: str | None,
    opted_out: bool,
    bad_address: bool,
    now: datetime,
    opt_out_source: str,
) -> StatusOutcome:
    moved = transitions.progress(session, provider_id, status, now=now, error_code=error_code, error=error)
    message = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.provider_id == provider_id)
        .order_by(OutboxMessage.id)
        .limit(1)
        .execution_options(populate_existing=True)
    ).first()
    if message is None:
        session.add(
            ProviderStatusEvent(
                provider_id=provider_id,
                status=status,
                error_code=error_code,
                error=error,
                opted_out=opted_out,
                bad_address=bad_address,
                opt_out_source=opt_out_source,
                received_at=now,
            )
        )
        session.flush()
        return StatusOutcome(None, changed=False, stored=True)
    recorded_opt_out = False
    if moved:
        count_on_commit(session, MESSAGES, kind=message.kind, channel=message.channel, status=status)
    if moved and status == "failed":
        recorded_opt_out = react_to_permanent_failure(
            session,
            message,
            opted_out=opted_out,
            bad_address=bad_address,
            now=now,
            opt_out_source=opt_out_source,
            detail=f"status report for {provider_id}",
        )
    session.flush()
    return StatusOutcome(message, changed=bool(moved), opted_out=recorded_opt_out)


def apply_stored_statuses(session: Session, provider_ids: Iterable[str] | None = None, *, now: datetime) -> int:
    """Apply, oldest first, and delete the stored reports whose id a row now holds: those for
    ``provider_ids`` (the ids just recorded), or every one (the reaper's sweep). In the
    caller's transaction, which must already hold the write lock (SQLite: ``write_transaction``
    before anything else). Returns how many were applied."""
    ev = ProviderStatusEvent
    query = select(ev).where(exists().where(OutboxMessage.provider_id == ev.provider_id)).order_by(ev.id)
    if provider_ids is not None:
        ids = [i for i in provider_ids if i]
        if not ids:
            return 0
        query = query.where(ev.provider_id.in_(ids))
    events = session.scalars(query).all()
    for event in events:
        _apply(
            session,
            provider_id=event.provider_id,
            status=event.status,
            error_code=event.error_code,
            error=event.error,
            opted_out=event.opted_out,
            bad_address=event.bad_address,
            now=now,
            opt_out_source=event.opt_out_source or "provider",
        )
    if events:
        session.execute(delete(ev).where(ev.id.in_([e.id for e in events])))
    return len(events)


def prune_stored_statuses(session: Session, *, now: datetime, keep: timedelta = STORED_REPORT_RETENTION) -> int:
    """Delete the stored reports received before ``now - keep`` that no row holds the id of,
    in the caller's transaction (apply the matching ones first: :func:`apply_stored_statuses`).
    Returns how many were deleted."""
    ev = ProviderStatusEvent
    statement = delete(ev).where(
        ev.received_at < now - keep, ~exists().where(OutboxMessage.provider_id == ev.provider_id)
    )
    return session.execute(statement.execution_options(synchronize_session=False)).rowcount or 0
