"""audit trail (append-only, enforced by triggers); patients.erased_at

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import booking_service.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# A copy, not an import: a migration is history (booking_service.audit.models keeps the live one).
PG_FUNCTION = """
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$
"""
PG_TRIGGER = (
    "CREATE TRIGGER trg_audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
)
SQLITE_TRIGGERS = {
    "trg_audit_events_no_update": "UPDATE",
    "trg_audit_events_no_delete": "DELETE",
}
ACTOR_KINDS = "'staff', 'api_token', 'patient_link', 'public', 'webhook', 'worker', 'cli', 'system'"


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("occurred_at", booking_service.db.UTCDateTime(), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=254), nullable=True),
        sa.Column("actor_token_id", sa.Integer(), nullable=True),
        sa.Column("actor_appointment_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=45), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.CheckConstraint(f"actor_kind IN ({ACTOR_KINDS})", name=op.f("ck_audit_events_actor_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_occurred_at", ["occurred_at"], unique=False)
        batch_op.create_index("ix_audit_events_patient_id", ["patient_id", "occurred_at"], unique=False)
        batch_op.create_index("ix_audit_events_actor_user_id", ["actor_user_id", "occurred_at"], unique=False)
        batch_op.create_index("ix_audit_events_action", ["action", "occurred_at"], unique=False)
    # A plain ALTER on both engines: a batch copy of `patients` on SQLite would drop and re-create
    # the table other tables reference (see 0004).
    op.add_column("patients", sa.Column("erased_at", booking_service.db.UTCDateTime(), nullable=True))

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    elif dialect == "sqlite":
        for name, event in SQLITE_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS trg_audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    elif dialect == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    if dialect == "sqlite":
        op.execute("ALTER TABLE patients DROP COLUMN erased_at")  # SQLite 3.35+, no table copy
    else:
        op.drop_column("patients", "erased_at")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_action")
        batch_op.drop_index("ix_audit_events_actor_user_id")
        batch_op.drop_index("ix_audit_events_patient_id")
        batch_op.drop_index("ix_audit_events_occurred_at")
    op.drop_table("audit_events")
