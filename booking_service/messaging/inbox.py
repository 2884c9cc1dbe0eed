"""Staff acting on patients' replies in the inbox. Like every operation: a session and plain
values, no commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service import errors
from booking_service.db import write_transaction
from booking_service.errors import NotFound
from booking_service.messaging.models import InboundMessage
from booking_service.patients.consent import opt_out_phone


def _get(session: Session, inbound_id: int) -> InboundMessage:
    write_transaction(session)
    message = session.scalars(select(InboundMessage).where(InboundMessage.id == inbound_id)).first()
    if message is None:
        raise NotFound(errors.MESSAGE_NOT_FOUND)
    return message


def mark_handled(session: Session, inbound_id: int, *, now: datetime) -> InboundMessage:
    """Take the reply out of the staff inbox. Marking it twice keeps the first time.

    Raises NotFound for an unknown id.
    """
    message = _get(session, inbound_id)
    if message.handled_at is None:
        message.handled_at = now
        session.flush()
    return message


def record_opt_out(session: Session, inbound_id: int, *, now: datetime) -> bool:
    """Staff read the reply as "stop texting me": record the sender's opt-out (ledger, pending
    texts cancelled; see :func:`~booking_service.patients.consent.opt_out_phone`) and mark the
    reply handled. Returns False when the number had already opted out. Raises NotFound.
    """
    message = _get(session, inbound_id)
    recorded = opt_out_phone(
        session, message.from_phone, source="staff", now=now, detail=f"staff read reply #{message.id} as an opt-out"
    )
    if message.handled_at is None:
        message.handled_at = now
    session.flush()
    return recorded
