"""patients marked as possible duplicates; booking drafts held server side

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import booking_service.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite: a plain ADD COLUMN with the reference inline. Alembic would want a batch "move and
    # copy" of patients, and with foreign keys on, dropping the old table would cascade into
    # appointments' and consents' rows.
    fk_name = op.f("fk_patients_possible_duplicate_of_id_patients")
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            f"ALTER TABLE patients ADD COLUMN possible_duplicate_of_id INTEGER "
            f"CONSTRAINT {fk_name} REFERENCES patients (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("patients", sa.Column("possible_duplicate_of_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            fk_name, "patients", "patients", ["possible_duplicate_of_id"], ["id"], ondelete="SET NULL"
        )
    op.create_index(op.f("ix_patients_possible_duplicate_of_id"), "patients", ["possible_duplicate_of_id"])
    op.create_table(
        "booking_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", booking_service.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", booking_service.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_drafts")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_booking_drafts_key_hash")),
    )
    op.create_index(op.f("ix_booking_drafts_expires_at"), "booking_drafts", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_booking_drafts_expires_at"), table_name="booking_drafts")
    op.drop_table("booking_drafts")
    op.drop_index(op.f("ix_patients_possible_duplicate_of_id"), table_name="patients")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite 3.35+ drops the column with its inline reference (no batch copy: see upgrade).
        op.execute("ALTER TABLE patients DROP COLUMN possible_duplicate_of_id")
    else:
        op.drop_constraint(op.f("fk_patients_possible_duplicate_of_id_patients"), "patients", type_="foreignkey")
        op.drop_column("patients", "possible_duplicate_of_id")
