"""Reading the audit trail: the admin page's filters, pages and CSV export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from booking_service.audit.models import AuditEvent

PAGE_SIZE = 50
MAX_EXPORT_ROWS = 100_000
CSV_COLUMNS = (
    "id",
    "occurred_at",
    "actor_kind",
    "actor_user_id",
    "actor_label",
    "actor_token_id",
    "actor_appointment_id",
    "action",
    "resource_type",
    "resource_id",
    "patient_id",
    "address",
    "request_id",
    "detail",
)


@dataclass(frozen=True)
class Filters:
    """What the admin page filters on; every field optional. ``actor`` is a staff email (or
    part of one), a worker id or a CLI user; ``since`` inclusive, ``until`` exclusive."""

    actor_kind: str | None = None
    actor: str | None = None
    action: str | None = None
    patient_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(filters: Filters) -> Select:
    query = select(AuditEvent)
    if filters.actor_kind:
        query = query.where(AuditEvent.actor_kind == filters.actor_kind)
    if filters.actor:
        query = query.where(func.lower(AuditEvent.actor_label).contains(filters.actor.lower(), autoescape=True))
    if filters.action:
        # "appointment" finds every appointment.* action; "appointment.book" only that one.
        if "." in filters.action:
            query = query.where(AuditEvent.action == filters.action)
        else:
            query = query.where(AuditEvent.action.startswith(filters.action + ".", autoescape=True))
    if filters.patient_id is not None:
        query = query.where(AuditEvent.patient_id == filters.patient_id)
    if filters.since is not None:
        query = query.where(AuditEvent.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.occurred_at < filters.until)
    return query


@dataclass(frozen=True)
class Page:
    events: list[AuditEvent]
    number: int
    has_next: bool


def search(session: Session, filters: Filters, *, page: int = 1, per_page: int = PAGE_SIZE) -> Page:
    """One page of matching events, newest first (ties: the later id first)."""
    page = max(page, 1)
    rows = list(
        session.scalars(
            _filtered(filters)
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page + 1)
        )
    )
    return Page(events=rows[:per_page], number=page, has_next=len(rows) > per_page)


def actions(session: Session) -> list[str]:
    """Every action recorded so far (the filter's choices)."""
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value  # a spreadsheet must not run a cell as a formula
    return value


def to_csv(events: Iterable[AuditEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for event in events:
        writer.writerow([_cell(getattr(event, column)) for column in CSV_COLUMNS])
    return out.getvalue()


def export_csv(session: Session, filters: Filters, *, limit: int = MAX_EXPORT_ROWS) -> tuple[str, int]:
    """(the matching events as CSV, newest first, at most ``limit``; how many rows)."""
    events = list(
        session.scalars(_filtered(filters).order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()).limit(limit))
    )
    return to_csv(events), len(events)
