"""Every state change of an outbox row: one conditional UPDATE each, checked on its rowcount.

:data:`TRANSITIONS` is the whole state machine. Each :class:`Transition` says where it may
start (``source``), where it may go (``targets``), which columns the caller gives (``sets``),
which it clears (``resets``), how the attempt counter moves and what guards it (``guard``):

==============  ===========================  ==================================  =============================
name            from -> to                   sets (given by the caller)          resets (to NULL)
==============  ===========================  ==================================  =============================
claim           pending, due -> sending      claim*; attempts + 1
prepare         sending -> sending           to, body, lease_expires_at
hold            sending -> sending           lease_expires_at, error, error_code
sent            sending -> sent|delivered    provider_id, sent_at                error, error_code, lease
late_sent       pending* -> sent|delivered   provider_id, sent_at                error, error_code, lease
retry           sending -> pending           next_attempt_at, error, error_code  claim*
defer           sending -> pending           next_attempt_at, error;             claim*, error_code
                                             attempts - 1
release         sending -> pending           attempts - 1                        claim*
fail            sending -> failed            error, error_code                   lease
skip            sending -> skipped           error                               error_code, lease
reconcile       sending, expired ->          provider_id, sent_at, error         error_code, lease
                sent|delivered|failed
requeue         sending, expired -> pending  next_attempt_at, error              claim*
give_up         sending, expired -> failed   error                               error_code, lease
cancel          pending -> cancelled         error                               claim*
cancel_pending  pending -> cancelled         error                               claim*
                (every row of a filter)
progress        see below                    see :data:`PROGRESS`                lease
==============  ===========================  ==================================  =============================

``claim*`` is ``claimed_by``, ``claimed_at`` and ``lease_expires_at``; ``lease`` is
``lease_expires_at``; ``pending*`` a row the reaper requeued (unclaimed, same attempt).

Every transition also sets ``status`` and ``updated_at``. Two rules hold the table together:
a row that goes back to ``pending`` never keeps a claim (``claimed_by``, ``claimed_at`` and
``lease_expires_at`` are cleared on every such path), and a row that leaves ``sending`` for a
final status keeps ``claimed_by``/``claimed_at`` as the record of who sent it, but no lease.

Guards: every write after a claim is *fenced* by the claim's token (:class:`Claim`: the row,
the worker, the attempt number), so a worker whose row was taken from it writes nothing. The
reaper's transitions add ``lease_expires_at < now``. ``late_sent`` accepts a row the reaper
put back (``pending``, unclaimed, same attempt) so a send known to have happened still wins.
``cancel`` takes one row by id; ``cancel_pending`` (:func:`cancel_pending`) every row a booking
change or an opt-out no longer wants: an appointment's rows of some kinds, or a number's texts.
``progress`` is the provider's status report, matched on ``provider_id``, forward only:
``sent`` from ``pending``/``sending``; ``delivered`` and ``failed`` from those and ``sent``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from booking_service.db import write_transaction
from booking_service.outbox.models import OutboxMessage

_m = OutboxMessage
_t = OutboxMessage.__table__
CLAIM_COLUMNS = ("claimed_by", "claimed_at", "lease_expires_at")


@dataclass(frozen=True)
class Claim:
    """The fencing token of one attempt: the row, the worker that claimed it and the attempt
    number the claim set. Every write between the claim and the outcome requires all three."""

    message_id: int
    worker_id: str
    attempt: int


@dataclass(frozen=True)
class Transition:
    name: str
    source: tuple[str, ...]
    targets: tuple[str, ...]
    sets: tuple[str, ...]
    resets: tuple[str, ...] = ()
    attempts: int = 0  # added to the attempt counter
    # "claim", "expired" (claim + lease over), "requeued", "id", "provider_id", "due", "match" (a filter)
    guard: str = "claim"


TRANSITIONS: dict[str, Transition] = {
    t.name: t
    for t in (
        Transition("claim", ("pending",), ("sending",), CLAIM_COLUMNS, attempts=1, guard="due"),
        Transition("prepare", ("sending",), ("sending",), ("to", "body", "lease_expires_at")),
        Transition("hold", ("sending",), ("sending",), ("lease_expires_at", "error", "error_code")),
        Transition(
            "sent",
            ("sending",),
            ("sent", "delivered"),
            ("provider_id", "sent_at"),
            ("error", "error_code", "lease_expires_at"),
        ),
        Transition(
            "late_sent",
            ("pending",),
            ("sent", "delivered"),
            ("provider_id", "sent_at"),
            ("error", "error_code", "lease_expires_at"),
            guard="requeued",
        ),
        Transition("retry", ("sending",), ("pending",), ("next_attempt_at", "error", "error_code"), CLAIM_COLUMNS),
        Transition(
            "defer",
            ("sending",),
            ("pending",),
            ("next_attempt_at", "error"),
            (*CLAIM_COLUMNS, "error_code"),
            attempts=-1,
        ),
        Transition("release", ("sending",), ("pending",), (), CLAIM_COLUMNS, attempts=-1),
        Transition("fail", ("sending",), ("failed",), ("error", "error_code"), ("lease_expires_at",)),
        Transition("skip", ("sending",), ("skipped",), ("error",), ("error_code", "lease_expires_at")),
        Transition(
            "reconcile",
            ("sending",),
            ("sent", "delivered", "failed"),
            ("provider_id", "sent_at", "error"),
            ("error_code", "lease_expires_at"),
            guard="expired",
        ),
        Transition("requeue", ("sending",), ("pending",), ("next_attempt_at", "error"), CLAIM_COLUMNS, guard="expired"),
        Transition(
            "give_up", ("sending",), ("failed",), ("error",), ("error_code", "lease_expires_at"), guard="expired"
        ),
        Transition("cancel", ("pending",), ("cancelled",), ("error",), CLAIM_COLUMNS, guard="id"),
        Transition("cancel_pending", ("pending",), ("cancelled",), ("error",), CLAIM_COLUMNS, guard="match"),
        Transition(
            "progress",
            ("pending", "sending", "sent"),
            ("sent", "delivered", "failed"),
            (),
            ("lease_expires_at",),
            guard="provider_id",
        ),
    )
}

# The provider's report, per target: where it may come from and what it writes.
PROGRESS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    # target: (source, sets, resets)
    "sent": (("pending", "sending"), ("sent_at",), ()),
    "delivered": (("pending", "sending", "sent"), ("delivered_at",), ("error", "error_code")),
    "failed": (("pending", "sending", "sent"), ("error", "error_code"), ()),
}


# --------------------------------------------------------------------------- the one writer


def _guard(t: Transition, ref: Any, now: datetime) -> list:
    if t.guard in ("claim", "expired"):
        where = [_m.id == ref.message_id, _m.claimed_by == ref.worker_id, _m.attempts == ref.attempt]
        if t.guard == "expired":
            where.append(_m.lease_expires_at < now)
        return where
    if t.guard == "requeued":
        return [_m.id == ref.message_id, _m.attempts == ref.attempt, _m.claimed_by.is_(None)]
    if t.guard == "id":
        return [_m.id == ref]
    raise ValueError(f"transition {t.name} is not a single-row transition")


def _values(t: Transition, target: str, values: dict[str, Any], now: datetime) -> dict[str, Any]:
    if target not in t.targets:
        raise ValueError(f"{t.name} cannot go to {target!r}")
    if set(values) != set(t.sets):
        raise ValueError(f"{t.name} sets exactly {t.sets}, not {tuple(values)}")
    out = {**values, **dict.fromkeys(t.resets), "status": target, "updated_at": now}
    if t.attempts:
        out["attempts"] = _t.c.attempts + t.attempts
    return out


def apply(session: Session, name: str, ref: Claim | int, *, now: datetime, target: str | None = None, **values) -> bool:
    """Run transition ``name`` on one row, in the caller's transaction. ``ref`` is the
    :class:`Claim` for fenced transitions, the row id for ``cancel``. Returns True when the
    row was in a source status and its guard held (it then changed exactly as the table says);
    False when nothing was written."""
    t = TRANSITIONS[name]
    statement = (
        update(_t)
        .where(_t.c.status.in_(t.source), *_guard(t, ref, now))
        .values(**_values(t, target or t.targets[0], values, now))
    )
    return session.execute(statement).rowcount == 1


def apply_many(
    session: Session,
    name: str,
    claims: list[Claim],
    *,
    now: datetime,
    target: str | None = None,
    rows: dict[str, list[str | None]],
    **shared,
) -> set[int]:
    """Run fenced transition ``name`` on many rows at once: ``rows`` gives per-row (text)
    values in the order of ``claims``, ``shared`` the values common to all. Returns the ids
    written. PostgreSQL: one ``UPDATE ... FROM unnest(...)`` whose text does not depend on the
    batch size (parsed once); SQLite: one UPDATE per row (in-process, cheap)."""
    if not claims:
        return set()
    t = TRANSITIONS[name]
    target = target or t.targets[0]
    _values(t, target, {**dict.fromkeys(rows), **shared}, now)  # checks the columns
    if session.get_bind().dialect.name != "postgresql" or t.guard != "claim":
        return {
            c.message_id
            for n, c in enumerate(claims)
            if apply(session, name, c, now=now, target=target, **{k: v[n] for k, v in rows.items()}, **shared)
        }
    workers = {c.worker_id for c in claims}
    if len(workers) != 1:
        raise ValueError("one worker's claims at a time")
    per_row = sorted(rows)
    fixed = {**shared, **dict.fromkeys(t.resets), "status": target, "updated_at": now}
    assignments = [f'"{c}" = v.c{n}' for n, c in enumerate(per_row)]
    assignments += [f'"{c}" = :{c}' for c in sorted(fixed)]
    if t.attempts:
        assignments.append(f'"attempts" = m.attempts + {int(t.attempts)}')
    arrays = ", ".join(f"CAST(:c{n} AS text[])" for n in range(len(per_row)))
    names = ", ".join(f"c{n}" for n in range(len(per_row)))
    sources = ", ".join(f"'{s}'" for s in t.source)
    statement = text(
        f"UPDATE outbox_messages AS m SET {', '.join(assignments)} "
        f"FROM unnest(CAST(:ids AS integer[]), CAST(:attempts AS integer[]), {arrays}) AS v(id, attempt, {names}) "
        f"WHERE m.id = v.id AND m.attempts = v.attempt AND m.status IN ({sources}) AND m.claimed_by = :worker "
        "RETURNING m.id"
    )
    params = {
        "ids": [c.message_id for c in claims],
        "attempts": [c.attempt for c in claims],
        "worker": workers.pop(),
        **{f"c{n}": rows[c] for n, c in enumerate(per_row)},
        **fixed,
    }
    return set(session.execute(statement, params).scalars())


# --------------------------------------------------------------------------- the batch ones


def claim(session: Session, *, worker_id: str, now: datetime, lease: timedelta, limit: int) -> list[int]:
    """``claim``: up to ``limit`` due ``pending`` rows, oldest due first, in the caller's
    transaction. PostgreSQL: ``FOR UPDATE SKIP LOCKED`` (workers never wait on or share a row);
    SQLite: ``BEGIN IMMEDIATE`` first, so the select and the update are one step."""
    t = TRANSITIONS["claim"]
    due = (
        select(_t.c.id)
        .where(_t.c.status.in_(t.source), _t.c.next_attempt_at <= now)
        .order_by(_t.c.next_attempt_at, _t.c.id)
        .limit(limit)
    )
    values = _values(t, "sending", {"claimed_by": worker_id, "claimed_at": now, "lease_expires_at": now + lease}, now)
    if session.get_bind().dialect.name == "postgresql":
        locked = due.with_for_update(skip_locked=True).cte("due")
        statement = update(_t).where(_t.c.id.in_(select(locked.c.id)))
    else:
        write_transaction(session)
        statement = update(_t).where(_t.c.id.in_(due))
    return sorted(session.execute(statement.values(**values).returning(_t.c.id)).scalars().all())


def release(session: Session, ids: Iterable[int], *, worker_id: str, now: datetime) -> int:
    """``release``: give back rows ``worker_id`` claimed and has not sent (a stop, or a prepare
    that rolled back), as if never claimed. Returns how many were given back."""
    ids = list(ids)
    if not ids:
        return 0
    t = TRANSITIONS["release"]
    statement = (
        update(_t)
        .where(_t.c.id.in_(ids), _t.c.status.in_(t.source), _t.c.claimed_by == worker_id)
        .values(**_values(t, "pending", {}, now))
    )
    return session.execute(statement).rowcount


def cancel_pending(
    session: Session,
    *,
    now: datetime,
    error: str,
    appointment_id: int | None = None,
    kinds: Iterable[str] | None = None,
    sms_to: str | None = None,
) -> int:
    """``cancel_pending``: every ``pending`` row of appointment ``appointment_id`` (of ``kinds``,
    when given), or every ``pending`` text to the number ``sms_to`` (exactly one of the two), is
    ``cancelled`` with ``error`` as the reason, in the caller's transaction. Rows a worker holds
    (``sending``) are left to it: it re-checks before sending. Rows loaded in ``session`` see
    the change. Returns how many rows were cancelled."""
    if (appointment_id is None) == (sms_to is None):
        raise ValueError("cancel_pending takes an appointment_id or an sms_to, not both or neither")
    if appointment_id is not None:
        match = [_m.appointment_id == appointment_id]
        if kinds is not None:
            match.append(_m.kind.in_(list(kinds)))
    else:
        match = [_m.channel == "sms", _m.to == sms_to]
    t = TRANSITIONS["cancel_pending"]
    statement = (
        update(_m)
        .where(_m.status.in_(t.source), *match)
        .values(**_values(t, "cancelled", {"error": error}, now))
        .execution_options(synchronize_session="fetch")
    )
    return session.execute(statement).rowcount or 0


def progress(session: Session, provider_id: str, status: str, *, now: datetime, error_code=None, error=None) -> int:
    """``progress``: the provider's report ``status`` (``sent``, ``delivered``, ``failed``) on
    the rows holding ``provider_id``, forward only. Returns how many rows moved."""
    source, sets, resets = PROGRESS[status]
    given = {
        "sent_at": func.coalesce(_t.c.sent_at, now),
        "delivered_at": now,
        "error": error,
        "error_code": error_code,
    }
    values = {c: given[c] for c in sets}
    values.update(dict.fromkeys((*resets, *TRANSITIONS["progress"].resets)))
    statement = (
        update(_t)
        .where(_t.c.provider_id == provider_id, _t.c.status.in_(source))
        .values(**values, status=status, updated_at=now)
    )
    return session.execute(statement).rowcount
