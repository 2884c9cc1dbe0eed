"""two-step sign-in for staff: a TOTP secret and single-use recovery codes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 08:00:00
"""

import sqlalchemy as sa
from alembic import op

import booking_service.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("totp_enabled_at", booking_service.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))
    op.create_table(
        "staff_recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", booking_service.db.UTCDateTime(), nullable=False),
        sa.Column("used_at", booking_service.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_staff_recovery_codes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_recovery_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_staff_recovery_codes_code_hash")),
    )
    with op.batch_alter_table("staff_recovery_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_recovery_codes_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("staff_recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_recovery_codes_user_id"))
    op.drop_table("staff_recovery_codes")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_enabled_at")
        batch_op.drop_column("totp_secret")
