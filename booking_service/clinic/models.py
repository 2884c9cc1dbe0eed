"""The clinic's schedule: settings and policy, locations, practitioners, services, hours, absences."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime, time

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    Time,
    select,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking_service.db import Base, UTCDateTime, utcnow

SERVICE_KINDS = ("initial", "follow_up", "other")
# The languages the patient pages and messages speak; a clinic offers one or both.
CLINIC_LANGUAGES = ("en", "fr")
KEY_LENGTH = 64

# Defaults of clinic policy. The database row overrides them; an admin edits the row.
DEFAULT_REMINDER_RULES: list[dict] = [
    {"channel": "email", "days_before": 2, "at": "09:00"},
    {"channel": "sms", "hours_before": 24},
]


def slugify(text: str) -> str:
    """``text`` as a key: lower-case ASCII letters, digits and single hyphens ("Évaluation
    initiale" -> "evaluation-initiale"); empty when nothing of it is a letter or digit."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:KEY_LENGTH].rstrip("-")


def unique_key(base: str, taken: set[str], fallback: str) -> str:
    """``base`` (or ``fallback`` when empty), with ``-2``, ``-3`` ... until it is not in ``taken``."""
    base = base or fallback
    key, n = base, 1
    while key in taken:
        n += 1
        suffix = f"-{n}"
        key = base[: KEY_LENGTH - len(suffix)] + suffix
    return key


def _default_key(table: str, *name_columns: str) -> Callable[[DefaultExecutionContext], str]:
    """The key of a row inserted without one: the slug of its name, made unique against the
    rows already stored (the catalogue's save functions always give one; this covers rows made
    directly, such as the demo clinic's and tests')."""

    def default(context: DefaultExecutionContext) -> str:
        values = context.get_current_parameters()
        base = slugify(" ".join(str(values.get(column) or "") for column in name_columns)) or table[:-1]
        key_column = Base.metadata.tables[table].c.key
        taken = set(context.connection.execute(select(key_column).where(key_column.like(f"{base}%"))).scalars())
        return unique_key(base, taken, base)

    return default


practitioner_locations = Table(
    "practitioner_locations",
    Base.metadata,
    Column("practitioner_id", ForeignKey("practitioners.id", ondelete="CASCADE"), primary_key=True),
    Column("location_id", ForeignKey("locations.id", ondelete="CASCADE"), primary_key=True),
)

# One row (id 1): a number every change to the catalogue (clinic settings, locations, services,
# practitioners and what they offer where, weekly hours, closures) raises in the same
# transaction. Each process keeps the catalogue in memory (clinic.cache) and reloads it when the
# number it reads differs from the one it loaded with.
catalogue_version = Table(
    "catalogue_version",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="one_row"),
)

practitioner_services = Table(
    "practitioner_services",
    Base.metadata,
    Column("practitioner_id", ForeignKey("practitioners.id", ondelete="CASCADE"), primary_key=True),
    Column("service_id", ForeignKey("services.id", ondelete="CASCADE"), primary_key=True),
)


class ClinicSettings(Base):
    """The clinic itself and its policies: one row (id 1)."""

    __tablename__ = "clinic_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    country: Mapped[str] = mapped_column(String(2), default="CA")
    timezone: Mapped[str] = mapped_column(String(64), default="America/Toronto")
    default_language: Mapped[str] = mapped_column(String(5), default="en")
    brand_color: Mapped[str] = mapped_column(String(7), default="#0f6e6e")
    address: Mapped[str] = mapped_column(String(255), default="")
    # The languages offered to patients (pages, messages), a subset of CLINIC_LANGUAGES.
    languages: Mapped[list] = mapped_column(JSON, default=lambda: list(CLINIC_LANGUAGES))
    min_notice_minutes: Mapped[int] = mapped_column(Integer, default=120)
    horizon_days: Mapped[int] = mapped_column(Integer, default=90)
    slot_step_minutes: Mapped[int] = mapped_column(Integer, default=15)
    cancellation_window_hours: Mapped[int] = mapped_column(Integer, default=24)
    # "block": inside the window the patient is asked to phone; "record": allowed, marked late.
    late_cancellation_policy: Mapped[str] = mapped_column(String(16), default="record")
    reminder_rules: Mapped[list] = mapped_column(JSON, default=lambda: list(DEFAULT_REMINDER_RULES))
    quiet_hours_start: Mapped[time] = mapped_column(Time, default=time(8, 0))
    quiet_hours_end: Mapped[time] = mapped_column(Time, default=time(20, 0))
    sms_daily_cap: Mapped[int] = mapped_column(Integer, default=1)
    sms_weekly_cap: Mapped[int] = mapped_column(Integer, default=3)
    follow_up_prompt: Mapped[bool] = mapped_column(Boolean, default=True)
    # A waitlist offer unanswered this long passes to the next person (waitlist.offers).
    waitlist_offer_minutes: Mapped[int] = mapped_column(Integer, default=120, server_default="120")

    __table_args__ = (
        CheckConstraint("late_cancellation_policy IN ('block', 'record')", name="late_cancellation_policy"),
        CheckConstraint("slot_step_minutes > 0", name="slot_step_positive"),
    )


class Location(Base):
    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    # A stable slug naming the location in the clinic file (``[a-z0-9-]+``).
    key: Mapped[str] = mapped_column(
        String(KEY_LENGTH), unique=True, index=True, default=_default_key("locations", "name")
    )
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64))
    # Directions or parking, shown to patients in the confirmation and on the manage page; the
    # French text for patients who chose French (empty: the English one).
    directions: Mapped[str] = mapped_column(Text, default="")
    directions_fr: Mapped[str] = mapped_column(Text, default="", server_default="")
    # False: closed (kept for the history of its appointments, no longer bookable).
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    practitioners: Mapped[list[Practitioner]] = relationship(
        secondary=practitioner_locations, back_populates="locations"
    )

    def localized_directions(self, language: str) -> str:
        """The directions in ``language``: the French text when asked for and written."""
        if language == "fr" and (self.directions_fr or "").strip():
            return self.directions_fr
        return self.directions or ""


class Practitioner(Base):
    __tablename__ = "practitioners"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(
        String(KEY_LENGTH), unique=True, index=True, default=_default_key("practitioners", "first_name", "last_name")
    )
    first_name: Mapped[str] = mapped_column(String(80))
    last_name: Mapped[str] = mapped_column(String(80))
    profession: Mapped[str] = mapped_column(String(80))
    bio: Mapped[str] = mapped_column(Text, default="")
    photo_url: Mapped[str | None] = mapped_column(String(500))
    # False: staff book them, the patient pages and the public API do not offer them.
    online_bookable: Mapped[bool] = mapped_column(Boolean, default=True)
    # False: left the clinic (``left_on``, the local day it was recorded); their history stays.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    left_on: Mapped[date | None] = mapped_column(Date)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    locations: Mapped[list[Location]] = relationship(secondary=practitioner_locations, back_populates="practitioners")
    services: Mapped[list[Service]] = relationship(secondary=practitioner_services, back_populates="practitioners")
    working_hours: Mapped[list[WorkingHours]] = relationship(
        back_populates="practitioner", cascade="all, delete-orphan"
    )

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Service(Base):
    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(
        String(KEY_LENGTH), unique=True, index=True, default=_default_key("services", "name")
    )
    name: Mapped[str] = mapped_column(String(120))
    name_fr: Mapped[str | None] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    description_fr: Mapped[str] = mapped_column(Text, default="")
    duration_minutes: Mapped[int] = mapped_column(Integer)
    buffer_minutes: Mapped[int] = mapped_column(Integer, default=0)
    # None: no price shown. Shown to patients as information only (no payment is taken).
    price_cents: Mapped[int | None] = mapped_column(Integer)
    # What to bring or wear, shown in the confirmation and on the manage page (no clinical detail).
    preparation_notes: Mapped[str] = mapped_column(Text, default="")
    preparation_notes_fr: Mapped[str] = mapped_column(Text, default="", server_default="")
    online_bookable: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)

    practitioners: Mapped[list[Practitioner]] = relationship(secondary=practitioner_services, back_populates="services")

    __table_args__ = (
        CheckConstraint("kind IN ('initial', 'follow_up', 'other')", name="kind"),
        CheckConstraint("duration_minutes > 0", name="duration_positive"),
        CheckConstraint("buffer_minutes >= 0", name="buffer_not_negative"),
    )

    def localized_name(self, language: str) -> str:
        return self.name_fr if language == "fr" and self.name_fr else self.name

    def localized_preparation_notes(self, language: str) -> str:
        """The preparation notes in ``language``: the French text when asked for and written."""
        if language == "fr" and (self.preparation_notes_fr or "").strip():
            return self.preparation_notes_fr
        return self.preparation_notes or ""


class WorkingHours(Base):
    """Weekly hours of one practitioner at one location, in the location's local wall time."""

    __tablename__ = "working_hours"

    id: Mapped[int] = mapped_column(primary_key=True)
    practitioner_id: Mapped[int] = mapped_column(ForeignKey("practitioners.id", ondelete="CASCADE"), index=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)  # 0 = Monday
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    break_start: Mapped[time | None] = mapped_column(Time)
    break_end: Mapped[time | None] = mapped_column(Time)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)

    practitioner: Mapped[Practitioner] = relationship(back_populates="working_hours")
    location: Mapped[Location] = relationship()

    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint("end_time > start_time", name="ends_after_start"),
    )


class TimeOff(Base):
    """A practitioner's absence, as UTC instants (holiday, course, sick day)."""

    __tablename__ = "time_off"

    id: Mapped[int] = mapped_column(primary_key=True)
    practitioner_id: Mapped[int] = mapped_column(ForeignKey("practitioners.id", ondelete="CASCADE"), index=True)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (CheckConstraint("end_at > start_at", name="ends_after_start"),)


class Closure(Base):
    """A day a location (or, with no location, the whole clinic) is closed: a public holiday."""

    __tablename__ = "closures"

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date, index=True)
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
