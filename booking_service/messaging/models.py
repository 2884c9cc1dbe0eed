"""The staff inbox of patients' replies. The outbox lives in :mod:`booking_service.outbox.models`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.db import Base, UTCDateTime, utcnow


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
    # When the retention job emptied ``body`` (usecases/retention.py); how it was read stays.
    content_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
