"""The outbox table (the only record of every message) and the provider's early status reports."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking_service.db import Base, UTCDateTime, utcnow
from booking_service.patients.models import Patient
from booking_service.scheduling.models import Appointment

CHANNELS = ("sms", "email")
KINDS = (
    "confirmation",
    "reminder",
    "reschedule",
    "cancellation",
    "reply",
    "nudge",
    "follow_up",
    "waitlist_offer",
    "alert",
)
STATUSES = ("pending", "sending", "sent", "delivered", "failed", "skipped", "cancelled")
FINAL_STATUSES = ("delivered", "failed", "skipped", "cancelled")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


class OutboxMessage(Base):
    """One message to one patient on one channel.

    Lifecycle: ``pending`` (due at ``due_at``; retried at ``next_attempt_at``) -> ``sending``
    (claimed under a lease until ``lease_expires_at``) -> ``sent`` / ``delivered``, or ``failed``
    (permanent), ``skipped`` (no longer wanted at send time, reason in ``error``) or
    ``cancelled`` (superseded by a booking change). ``dedupe_key`` is unique: planning the same
    message twice is a no-op. ``request_id``: the web request that planned it, if any;
    ``content_purged_at``: when the retention job cleared its body and payload.
    """

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    to: Mapped[str | None] = mapped_column(String(254))
    template: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    body: Mapped[str | None] = mapped_column(Text)  # as rendered at send time, for staff
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_id: Mapped[str | None] = mapped_column(String(255), index=True)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # The web request that planned the row (its X-Request-ID), for the worker's log lines.
    request_id: Mapped[str | None] = mapped_column(String(64))
    # When the retention job cleared body and payload (usecases/retention.py); status and times stay.
    content_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    appointment: Mapped[Appointment | None] = relationship()
    patient: Mapped[Patient | None] = relationship()

    __table_args__ = (
        CheckConstraint(f"channel IN {_in(CHANNELS)}", name="channel"),
        CheckConstraint(f"kind IN {_in(KINDS)}", name="kind"),
        CheckConstraint(f"status IN {_in(STATUSES)}", name="status"),
        Index("ix_outbox_messages_due", "status", "next_attempt_at"),
        Index("ix_outbox_messages_appointment", "appointment_id", "status"),
    )


class ProviderStatusEvent(Base):
    """A delivery status the provider reported for a message id no outbox row holds yet.

    Twilio can call back a few milliseconds after it accepted a message, before the worker has
    committed the message's SID on its row. Such a report is kept here, never dropped, and
    applied (then deleted) when a row gets that ``provider_id``: by the record step, by the
    reaper's reconciliation, or by the reaper's sweep of this table. ``status`` is ours
    (``sent``, ``delivered`` or ``failed``).
    """

    __tablename__ = "provider_status_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(12))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    bad_address: Mapped[bool] = mapped_column(Boolean, default=False)
    opt_out_source: Mapped[str | None] = mapped_column(String(32))  # the ledger's source if opted_out
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint("status IN ('sent', 'delivered', 'failed')", name="status"),)
