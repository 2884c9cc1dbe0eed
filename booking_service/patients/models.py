"""Patients, their consents (a ledger) and phone-level SMS opt-outs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text
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
    # Set when a provider says the number cannot receive texts (invalid, landline).
    phone_invalid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
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
