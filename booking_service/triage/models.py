"""A clinician's review of one triage item: an appointment flagged urgent at intake, or a
clinical alert. An item without a review is in the queue (``triage.queries.queue``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.db import Base, UTCDateTime, utcnow


class TriageReview(Base):
    """Who marked the item handled, and when. One review per item (unique), so two clinicians
    pressing at once record one review: the second is told it was already done."""

    __tablename__ = "triage_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"), unique=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), unique=True)
    # None: reviewed before the queue existed (migration), or the user was deleted since.
    handled_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    handled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint("(appointment_id IS NULL) <> (alert_id IS NULL)", name="one_item"),)
