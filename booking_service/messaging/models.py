"""The outbox (the only record of every message) and the staff inbox of patients' replies."""

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
    message twice is a no-op.
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

    appointment: Mapped[Appointment | None] = relationship()
    patient: Mapped[Patient | None] = relationship()

    __table_args__ = (
        CheckConstraint(f"channel IN {_in(CHANNELS)}", name="channel"),
        CheckConstraint(f"kind IN {_in(KINDS)}", name="kind"),
        CheckConstraint(f"status IN {_in(STATUSES)}", name="status"),
        Index("ix_outbox_messages_due", "status", "next_attempt_at"),
        Index("ix_outbox_messages_appointment", "appointment_id", "status"),
    )


class InboundMessage(Base):
    """A text a patient sent us, how we read it, and whether staff have dealt with it."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    from_phone: Mapped[str] = mapped_column(String(20), index=True)
    body: Mapped[str] = mapped_column(Text)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))
    intent: Mapped[str] = mapped_column(String(16))  # confirm, stop, start, help, reschedule, other ...
    likely_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
