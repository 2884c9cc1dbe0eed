"""Appointments, and treatment plans (a series of visits booked together).

Overlaps are refused by the database itself (see migrations/versions/0001)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, literal_column
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking_service.clinic.models import Location, Practitioner, Service
from booking_service.db import Base, UTCDateTime, utcnow
from booking_service.patients.models import Patient

STATUSES = ("booked", "confirmed", "checked_in", "completed", "no_show", "cancelled")
ACTIVE_STATUSES = ("booked", "confirmed", "checked_in")
FINAL_STATUSES = ("completed", "no_show", "cancelled")
SOURCES = ("online", "api", "staff")
RED_FLAGS = ("bladder_bowel", "saddle_numbness", "leg_weakness", "systemic")
# A treatment plan's bounds (the API's and the console's): visits in one plan, days between two.
PLAN_MAX_VISITS = 52
PLAN_MAX_EVERY_DAYS = 90


class Appointment(Base):
    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="RESTRICT"), index=True)
    practitioner_id: Mapped[int] = mapped_column(ForeignKey("practitioners.id", ondelete="RESTRICT"))
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id", ondelete="RESTRICT"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="RESTRICT"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # end_at plus the service's buffer: what the practitioner's calendar is blocked until.
    busy_until: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="booked")
    source: Mapped[str] = mapped_column(String(16), default="online")
    language: Mapped[str] = mapped_column(String(5), default="en")
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    no_show_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_by: Mapped[str | None] = mapped_column(String(16))  # patient, staff
    late_cancellation: Mapped[bool] = mapped_column(Boolean, default=False)
    triage: Mapped[str] = mapped_column(String(16), default="none")
    intake_reason: Mapped[str | None] = mapped_column(Text)  # staff-only; never in a message
    red_flags: Mapped[dict | None] = mapped_column(JSON)  # staff-only; never in a message
    staff_notes: Mapped[str | None] = mapped_column(Text)
    # Why staff placed it at a time that is not one of the free times (outside working hours,
    # off the slot grid, inside the minimum notice); None for an ordinary slot. Staff-only.
    outside_hours_reason: Mapped[str | None] = mapped_column(Text)
    # The manage link's token is HMAC(SECRET_KEY, manage_nonce): the worker can rebuild the link
    # for a reminder, while a copy of the database alone cannot. Only its hash is looked up.
    manage_nonce: Mapped[str] = mapped_column(String(32))
    manage_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    ics_sequence: Mapped[int] = mapped_column(Integer, default=0)
    # The treatment plan this visit was booked in (None: booked on its own).
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("treatment_plans.id", ondelete="RESTRICT"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Rises by one in every UPDATE (ORM or Core), in SQL: the day view's change token
    # (scheduling.queries.day_change_token) sums it, so a change is seen even when updated_at
    # values of two overlapping transactions arrive out of order.
    revision: Mapped[int] = mapped_column(
        Integer, default=1, server_default="1", onupdate=literal_column("revision") + 1
    )

    patient: Mapped[Patient] = relationship(lazy="joined")
    practitioner: Mapped[Practitioner] = relationship(lazy="joined")
    location: Mapped[Location] = relationship(lazy="joined")
    service: Mapped[Service] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("end_at > start_at", name="ends_after_start"),
        CheckConstraint("busy_until >= end_at", name="busy_covers_visit"),
        CheckConstraint(
            "status IN ('booked', 'confirmed', 'checked_in', 'completed', 'no_show', 'cancelled')",
            name="status",
        ),
        CheckConstraint("triage IN ('none', 'urgent')", name="triage"),
        Index("ix_appointments_practitioner_start", "practitioner_id", "start_at"),
        Index("ix_appointments_location_start", "location_id", "start_at"),
    )

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class TreatmentPlan(Base):
    """A series of visits booked in one go ("6 follow-ups, weekly, Tuesdays at 10:00").

    The visits are ordinary appointments carrying ``plan_id``; the plan keeps how they were
    asked for (``every_days`` or ``weekdays``, or neither when the starts were given one by one),
    who booked it, and when the rest of it was cancelled. ``practitioner_id`` None means "any
    practitioner": each visit then has the one who was free.
    """

    __tablename__ = "treatment_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="RESTRICT"), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="RESTRICT"))
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id", ondelete="RESTRICT"))
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioners.id", ondelete="RESTRICT"))
    count: Mapped[int] = mapped_column(Integer)  # visits booked
    every_days: Mapped[int | None] = mapped_column(Integer)
    weekdays: Mapped[list | None] = mapped_column(JSON)  # 0 = Monday
    source: Mapped[str] = mapped_column(String(16), default="staff")  # api, staff
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    patient: Mapped[Patient] = relationship()
    service: Mapped[Service] = relationship()
    location: Mapped[Location] = relationship()
    practitioner: Mapped[Practitioner | None] = relationship()
    appointments: Mapped[list[Appointment]] = relationship(
        order_by="Appointment.start_at", lazy="selectin", viewonly=True
    )

    __table_args__ = (
        CheckConstraint(f"count BETWEEN 1 AND {PLAN_MAX_VISITS}", name="count"),
        CheckConstraint(f"every_days IS NULL OR every_days BETWEEN 1 AND {PLAN_MAX_EVERY_DAYS}", name="every_days"),
        CheckConstraint("source IN ('api', 'staff')", name="source"),
    )
