"""Writing an audit event."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from booking_service.audit.context import current_actor
from booking_service.audit.models import AuditEvent
from booking_service.db import utcnow

ACTION = re.compile(r"^[a-z_]+\.[a-z_]+$")
# Keys that would carry clinical or free text: a detail holding one is a programming error.
FORBIDDEN_KEYS = frozenset(
    {
        "reason",
        "intake",
        "intake_reason",
        "red_flags",
        "body",
        "text",
        "notes",
        "staff_notes",
        "cancel_reason",
        "message",
        "first_name",
        "last_name",
        "name",
        "email",
        "phone",
        "recipient",
        "password",
        "token",
    }
)
MAX_DETAIL_KEYS = 20
MAX_TEXT = 64

Scalar = str | int | float | bool | None


def _clean(detail: dict | None) -> dict | None:
    if not detail:
        return None
    if len(detail) > MAX_DETAIL_KEYS:
        raise ValueError("audit detail too large")
    cleaned: dict[str, Scalar | list[Scalar]] = {}
    for key, value in detail.items():
        if not isinstance(key, str) or key in FORBIDDEN_KEYS:
            raise ValueError(f"audit detail may not hold {key!r}: no personal or clinical text in the trail")
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, datetime):
                raise ValueError(f"audit detail {key!r}: pass an ISO string, not a datetime")
            if not isinstance(item, str | int | float | bool | type(None)):
                raise ValueError(f"audit detail {key!r}: scalars only")
            if isinstance(item, str) and len(item) > MAX_TEXT:
                raise ValueError(f"audit detail {key!r}: short codes only, not text")
        cleaned[key] = list(value) if isinstance(value, list | tuple) else value
    return cleaned


def values(
    session: Session,
    action: str,
    resource_type: str,
    resource_id: int | None,
    detail: dict | None = None,
    *,
    patient_id: int | None = None,
    now: datetime | None = None,
) -> dict:
    """The column values of one audit event (the arguments as :func:`record`'s): for statements
    that write the event together with the change it records (a new patient's consents)."""
    if not ACTION.match(action):
        raise ValueError(f"audit action {action!r} is not area.verb")
    if patient_id is None and resource_type == "patient":
        patient_id = resource_id
    actor = current_actor(session)
    return {
        "occurred_at": now or utcnow(),
        "actor_kind": actor.kind,
        "actor_user_id": actor.user_id,
        "actor_label": actor.label,
        "actor_token_id": actor.token_id,
        "actor_appointment_id": actor.appointment_id,
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "patient_id": patient_id,
        "address": actor.address,
        "request_id": actor.request_id,
        "detail": _clean(detail),
    }


def record(
    session: Session,
    action: str,
    resource_type: str,
    resource_id: int | None,
    detail: dict | None = None,
    *,
    patient_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Write one event in ``session``'s transaction, at once: committed with the caller's
    change, or rolled back with it (also to a savepoint).

    ``action`` is ``area.verb`` (``appointment.book``); ``patient_id`` names the patient
    concerned (defaults to ``resource_id`` for a ``patient`` resource), so an auditor can list
    everything done to or read about one patient. ``detail``: a few codes and ids; raises
    ValueError for a key that could carry clinical or personal text (``reason``, ``body``,
    ``email``...), for nested values or long strings.

    A plain INSERT (the trail has no foreign keys and is append-only), not an ORM object: the
    event costs one statement and no unit of work, and a caller's later query does not flush
    for it (issue 13: a booking's audit event was a flush of its own).
    """
    row = values(session, action, resource_type, resource_id, detail, patient_id=patient_id, now=now)
    session.execute(_INSERT, row)


_INSERT = insert(AuditEvent.__table__)
