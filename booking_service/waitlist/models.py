"""Patients waiting for an earlier or any opening; the times freed for them (openings) and the
chain of offers each opening makes, one person at a time."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking_service.db import Base, UTCDateTime, utcnow
from booking_service.patients.models import Patient

OPENING_STATUSES = ("open", "booked", "taken", "lapsed", "closed")
# offered: the live offer (one per opening at most); expired: unanswered in time; passed: staff
# moved on (the patient said no on the phone); booked: the patient took the time; withdrawn:
# the time went another way (taken, closed, gone); skipped: no text or e-mail allowed.
OFFER_STATUSES = ("offered", "expired", "passed", "booked", "withdrawn", "skipped")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


class WaitlistEntry(Base):
    __tablename__ = "waitlist_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id", ondelete="CASCADE"))
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioners.id", ondelete="CASCADE"))
    earliest_date: Mapped[date] = mapped_column(Date)
    latest_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default="waiting")
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    patient: Mapped[Patient] = relationship()

    __table_args__ = (
        CheckConstraint("status IN ('waiting', 'offered', 'booked', 'removed')", name="status"),
        CheckConstraint("latest_date >= earliest_date", name="dates_ordered"),
    )


class WaitlistOpening(Base):
    """A bookable time freed by a cancellation or a reschedule, offered down the waitlist."""

    __tablename__ = "waitlist_openings"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The visit whose time freed (kept if it is later deleted: the opening is history).
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id", ondelete="CASCADE"))
    practitioner_id: Mapped[int] = mapped_column(ForeignKey("practitioners.id", ondelete="CASCADE"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(12))  # cancelled, rescheduled
    status: Mapped[str] = mapped_column(String(8), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The booking that filled it from the waitlist (status booked) or otherwise (taken).
    booked_appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))

    offers: Mapped[list[WaitlistOffer]] = relationship(
        back_populates="opening", order_by="WaitlistOffer.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint(f"status IN {_in(OPENING_STATUSES)}", name="status"),
        CheckConstraint("reason IN ('cancelled', 'rescheduled')", name="reason"),
        Index("ix_waitlist_openings_status_start", "status", "start_at"),
    )


class WaitlistOffer(Base):
    """One link of an opening's chain: the time offered to one entry's patient, until it is
    answered (booked), expires, or goes another way. The database allows one live offer per
    opening and one offer per entry per opening, so two workers can never offer twice."""

    __tablename__ = "waitlist_offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    opening_id: Mapped[int] = mapped_column(ForeignKey("waitlist_openings.id", ondelete="CASCADE"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("waitlist_entries.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(10), default="offered")
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the message may go out (the end of quiet hours, or at once) and when the offer ends.
    sends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    messages: Mapped[int] = mapped_column(Integer, default=0)  # outbox rows planned
    # The link's nonce: the patient's link carries HMAC(SECRET_KEY, nonce), never stored.
    token_nonce: Mapped[str] = mapped_column(String(32))
    offered_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))

    opening: Mapped[WaitlistOpening] = relationship(back_populates="offers")
    entry: Mapped[WaitlistEntry] = relationship()

    __table_args__ = (
        CheckConstraint(f"status IN {_in(OFFER_STATUSES)}", name="status"),
        UniqueConstraint("opening_id", "entry_id", name="uq_waitlist_offers_opening_entry"),
        Index(
            "uq_waitlist_offers_live",
            "opening_id",
            unique=True,
            sqlite_where=text("status = 'offered'"),
            postgresql_where=text("status = 'offered'"),
        ),
        Index("ix_waitlist_offers_status_expires", "status", "expires_at"),
    )
