"""provider status events: a delivery report kept until a row holds its message id

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

import booking_service.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_status_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("bad_address", sa.Boolean(), nullable=False),
        sa.Column("opt_out_source", sa.String(length=32), nullable=True),
        sa.Column("received_at", booking_service.db.UTCDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('sent', 'delivered', 'failed')", name=op.f("ck_provider_status_events_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_status_events")),
    )
    with op.batch_alter_table("provider_status_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_provider_status_events_provider_id"), ["provider_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("provider_status_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_status_events_provider_id"))
    op.drop_table("provider_status_events")
