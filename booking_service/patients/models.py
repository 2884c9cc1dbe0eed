"""Patients, their consents (a ledger), phone-level SMS opt-outs, and booking drafts (the
details a visitor has typed so far, held server side)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.db import Base, UTCDateTime, utcnow

CONSENT_CHANNELS = ("sms", "email", "exercise_sms")


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str] = mapped_column(String(80))
    last_name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str | None] = mapped_column(String(254))  # lower-cased
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    language: Mapped[str] = mapped_column(String(5), default="en")
    sms_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    email_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    exercise_sms_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    # Given at the desk (optional): tells two people of the same name apart (patients.duplicates).
    birth_date: Mapped[date | None] = mapped_column(Date, index=True)
    # Set when a provider says the number cannot receive texts (invalid, landline).
    phone_invalid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when an unauthenticated channel (pages, public API, waitlist) gave details that match
    # this other patient on one contact but conflict on another: staff compare and merge.
    possible_duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("patients.id", ondelete="SET NULL"), index=True
    )
    # Set when the patient's data was erased (usecases.erase): names "Erased", contacts cleared.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_patients_email", "email"),
        Index("ix_patients_phone", "phone"),
        CheckConstraint("language IN ('en', 'fr')", name="language"),
    )

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class PatientNote(Base):
    """A staff note on the patient's record: for staff only (admin, front desk, practitioners),
    never in a message to the patient. Edits keep who and when; the audit trail records each
    change without the text."""

    __tablename__ = "patient_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConsentEvent(Base):
    """One grant or withdrawal of consent: who, what, when, how and which wording (CASL)."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(32))  # booking_form, api, sms_reply, staff
    wording_version: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint("channel IN ('sms', 'email', 'exercise_sms')", name="channel"),)


class SmsOptOut(Base):
    """A phone number that replied STOP. Only START (or another opt-in word) removes it."""

    __tablename__ = "sms_opt_outs"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    opted_out_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(32))


class BookingDraft(Base):
    """A booking in progress on the patient pages: what the visitor typed so far (contact
    details, reason, red-flag answers), or, once booked, which appointment to confirm.

    The browser's cookie carries only a random 256-bit key; the row keeps the key's SHA-256, so
    a copy of this table cannot be replayed as a cookie. Rows expire (``expires_at``) and are
    deleted when the booking is made; expired ones are ignored and swept.
    """

    __tablename__ = "booking_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
