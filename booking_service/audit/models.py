"""The audit trail's one table. Append-only: database triggers refuse UPDATE and DELETE.

No foreign keys: an event must outlive what it names (a deleted user, a removed time off), and
must never block or follow a delete. Ids only, never names, contacts or clinical text; the
detail is a small JSON object checked by :func:`booking_service.audit.operations.record`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.audit.context import ACTOR_KINDS
from booking_service.db import Base, UTCDateTime

# The triggers, per engine. Migration 0006 writes the same statements (migrations are frozen
# history, so it carries its own copy); the tests' table emptying drops and re-creates the
# SQLite ones around its DELETE (PostgreSQL's TRUNCATE fires no row triggers).
SQLITE_TRIGGERS = (
    "CREATE TRIGGER trg_audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "CREATE TRIGGER trg_audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
)
SQLITE_DROP_TRIGGERS = (
    "DROP TRIGGER IF EXISTS trg_audit_events_no_update",
    "DROP TRIGGER IF EXISTS trg_audit_events_no_delete",
)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_label: Mapped[str | None] = mapped_column(String(254))  # staff email, worker id, OS user
    actor_token_id: Mapped[int | None] = mapped_column(Integer)
    actor_appointment_id: Mapped[int | None] = mapped_column(Integer)  # the manage link's appointment
    action: Mapped[str] = mapped_column(String(48))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[int | None] = mapped_column(Integer)
    patient_id: Mapped[int | None] = mapped_column(Integer)  # the patient concerned, if any
    address: Mapped[str | None] = mapped_column(String(45))
    request_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (
        CheckConstraint("actor_kind IN (" + ", ".join(f"'{kind}'" for kind in ACTOR_KINDS) + ")", name="actor_kind"),
        Index("ix_audit_events_occurred_at", "occurred_at"),
        Index("ix_audit_events_patient_id", "patient_id", "occurred_at"),
        Index("ix_audit_events_actor_user_id", "actor_user_id", "occurred_at"),
        Index("ix_audit_events_action", "action", "occurred_at"),
    )
