"""Home exercise programs: the library, programs and their versions, what patients log, the
Patient-Specific Functional Scale, and clinical alerts.

Shape (one program per patient per practitioner at a time, usually):

* :class:`Exercise`: the clinic's library, in English and Canadian French, with a default dose.
* :class:`Program`: what a patient is asked to do between sessions and when (days of the week,
  a local time in ``timezone``), and its state (``active``, ``paused``, ``ended``). It reaches
  the patient by a token link (``token_nonce``/``token_hash``, the manage-link rules of
  :mod:`booking_service.scheduling.tokens`). ``version`` names the current
  :class:`ProgramVersion`.
* :class:`ProgramVersion` and :class:`ProgramItem`: each change at a follow-up makes a new
  version with its own exercises and doses; old versions stay readable.
* :class:`ProgramLog`: one row per program per local day (unique): done, pain 0-10, a note, and
  where it came from (``page``, ``sms``, ``staff``); :class:`ProgramLogItem` marks single
  exercises done from the program page.
* :class:`FunctionScore`: the PSFS: up to three activities the patient names, each rated 0-10.
* :class:`Alert`: a red flag or a pain jump reported between sessions, or an urgent booking;
  open until a practitioner acknowledges it. A program paused by an alert (``pause_reason =
  "alert"``) gets no nudges until then.

Nudges are outbox rows (kind ``nudge``) whose ``dedupe_key`` is ``nudge:{program_id}:{local
date}``: the unique key makes "one nudge per program per local day" a property of the schema.
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking_service.db import Base, UTCDateTime, utcnow

PROGRAM_STATUSES = ("active", "paused", "ended")
PAUSE_REASONS = ("staff", "alert", "patient")
END_REASONS = ("ended", "discharged")
LOG_SOURCES = ("page", "sms", "staff")
ALERT_KINDS = ("red_flag", "pain", "urgent_booking")
ALERT_STATUSES = ("open", "acknowledged")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


class Exercise(Base):
    """One exercise of the clinic's library. ``key`` is stable (the demo and clinic files match on
    it); text comes in English (``*_en``) and Canadian French (``*_fr``)."""

    __tablename__ = "exercises"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name_en: Mapped[str] = mapped_column(String(120))
    name_fr: Mapped[str] = mapped_column(String(120))
    instructions_en: Mapped[str] = mapped_column(Text)
    instructions_fr: Mapped[str] = mapped_column(Text)
    cautions_en: Mapped[str] = mapped_column(Text, default="")
    cautions_fr: Mapped[str] = mapped_column(Text, default="")
    default_reps: Mapped[int | None] = mapped_column(Integer)
    default_sets: Mapped[int | None] = mapped_column(Integer)
    default_hold_seconds: Mapped[int | None] = mapped_column(Integer)
    default_times_per_day: Mapped[int] = mapped_column(Integer, default=1)
    media_url: Mapped[str | None] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def name(self, language: str) -> str:
        return self.name_fr if language == "fr" else self.name_en

    def instructions(self, language: str) -> str:
        return self.instructions_fr if language == "fr" else self.instructions_en

    def cautions(self, language: str) -> str:
        return self.cautions_fr if language == "fr" else self.cautions_en


class Program(Base):
    """A patient's home exercise program: its current schedule and state (see the module)."""

    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    practitioner_id: Mapped[int] = mapped_column(ForeignKey("practitioners.id"), index=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    status: Mapped[str] = mapped_column(String(8), default="active")
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Days as weekday numbers (0 = Monday), the local time of the nudge, and its zone (the
    # patient's, else the location's), copied from the current version for the sweep's sake.
    days: Mapped[list] = mapped_column(JSON, default=list)
    time_of_day: Mapped[time] = mapped_column(Time)
    timezone: Mapped[str] = mapped_column(String(64))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)  # None: until discharge
    pause_reason: Mapped[str | None] = mapped_column(String(8))
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(12))
    token_nonce: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    versions: Mapped[list[ProgramVersion]] = relationship(
        back_populates="program", order_by="ProgramVersion.version", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint(f"status IN {_in(PROGRAM_STATUSES)}", name="status"),
        CheckConstraint(f"pause_reason IS NULL OR pause_reason IN {_in(PAUSE_REASONS)}", name="pause_reason"),
        CheckConstraint(f"end_reason IS NULL OR end_reason IN {_in(END_REASONS)}", name="end_reason"),
        CheckConstraint("end_date IS NULL OR end_date >= start_date", name="dates"),
        Index("ix_programs_status", "status"),
    )

    @property
    def current(self) -> ProgramVersion:
        return next(v for v in self.versions if v.version == self.version)


class ProgramVersion(Base):
    """One version of a program: the schedule and exercises as set at one visit. Never changed
    once a newer version exists."""

    __tablename__ = "program_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    days: Mapped[list] = mapped_column(JSON, default=list)
    time_of_day: Mapped[time] = mapped_column(Time)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")  # staff-only
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    program: Mapped[Program] = relationship(back_populates="versions")
    items: Mapped[list[ProgramItem]] = relationship(
        back_populates="version", order_by="ProgramItem.position", cascade="all, delete-orphan"
    )

    __table_args__ = (UniqueConstraint("program_id", "version"),)


class ProgramItem(Base):
    """One exercise in a program version, with its dose."""

    __tablename__ = "program_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    program_version_id: Mapped[int] = mapped_column(ForeignKey("program_versions.id", ondelete="CASCADE"), index=True)
    exercise_id: Mapped[int] = mapped_column(ForeignKey("exercises.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    reps: Mapped[int | None] = mapped_column(Integer)
    sets: Mapped[int | None] = mapped_column(Integer)
    hold_seconds: Mapped[int | None] = mapped_column(Integer)
    times_per_day: Mapped[int] = mapped_column(Integer, default=1)

    version: Mapped[ProgramVersion] = relationship(back_populates="items")
    exercise: Mapped[Exercise] = relationship()

    __table_args__ = (
        CheckConstraint("reps IS NULL OR reps BETWEEN 1 AND 200", name="reps"),
        CheckConstraint("sets IS NULL OR sets BETWEEN 1 AND 20", name="sets"),
        CheckConstraint("hold_seconds IS NULL OR hold_seconds BETWEEN 1 AND 600", name="hold_seconds"),
        CheckConstraint("times_per_day BETWEEN 1 AND 10", name="times_per_day"),
    )


class ProgramLog(Base):
    """What the patient reported for one local day of a program (one row per day)."""

    __tablename__ = "program_logs"

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    local_date: Mapped[date] = mapped_column(Date)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    pain: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    items: Mapped[list[ProgramLogItem]] = relationship(back_populates="log", cascade="all, delete-orphan")

    __table_args__ = (
        UniqueConstraint("program_id", "local_date"),
        CheckConstraint("pain IS NULL OR pain BETWEEN 0 AND 10", name="pain"),
        CheckConstraint(f"source IN {_in(LOG_SOURCES)}", name="source"),
    )


class ProgramLogItem(Base):
    """One exercise of a day marked done from the program page."""

    __tablename__ = "program_log_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    log_id: Mapped[int] = mapped_column(ForeignKey("program_logs.id", ondelete="CASCADE"))
    program_item_id: Mapped[int] = mapped_column(ForeignKey("program_items.id", ondelete="CASCADE"))
    done_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    log: Mapped[ProgramLog] = relationship(back_populates="items")

    __table_args__ = (UniqueConstraint("log_id", "program_item_id"),)


class FunctionScore(Base):
    """Patient-Specific Functional Scale: an activity the patient finds hard (``position`` 1-3)
    rated 0 (unable) to 10 (as before the problem) on one local day. A change of 2 points is
    the smallest that matters."""

    __tablename__ = "function_scores"

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    local_date: Mapped[date] = mapped_column(Date)
    position: Mapped[int] = mapped_column(Integer)
    activity: Mapped[str] = mapped_column(String(120))
    score: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("program_id", "local_date", "position"),
        CheckConstraint("position BETWEEN 1 AND 3", name="position"),
        CheckConstraint("score BETWEEN 0 AND 10", name="score"),
    )


class Alert(Base):
    """Something a clinician must see now: a red flag or a pain jump reported between sessions,
    or a booking whose red-flag screen was answered yes. ``text`` is for staff only (it may
    quote the patient); it never goes into a message to the patient."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id", ondelete="SET NULL"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))
    inbound_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id", ondelete="SET NULL"))
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioners.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    source: Mapped[str] = mapped_column(String(8))  # sms, page, booking
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    __table_args__ = (
        CheckConstraint(f"kind IN {_in(ALERT_KINDS)}", name="kind"),
        CheckConstraint(f"status IN {_in(ALERT_STATUSES)}", name="status"),
        Index("ix_alerts_status_created", "status", "created_at"),
    )
