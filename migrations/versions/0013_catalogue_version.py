"""the catalogue's version: one row every catalogue change raises in its own transaction

Each process keeps the clinic's catalogue (settings, locations, services, practitioners, weekly
hours, closures) in memory (``booking_service.clinic.cache``) and reads this one row once per
transaction; a number other than the one it loaded with makes it load the catalogue again.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "catalogue_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_catalogue_version_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_version")),
    )
    op.bulk_insert(table, [{"id": 1, "version": 1}])


def downgrade() -> None:
    op.drop_table("catalogue_version")
