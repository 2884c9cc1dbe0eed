"""request ids on outbox rows; content purge marks (outbox and inbound texts)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import booking_service.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = (
    ("outbox_messages", "request_id", sa.String(length=64)),
    ("outbox_messages", "content_purged_at", booking_service.db.UTCDateTime()),
    ("inbound_messages", "content_purged_at", booking_service.db.UTCDateTime()),
)


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN on both engines: nullable columns, no table copy.
    for table, column, type_ in COLUMNS:
        op.add_column(table, sa.Column(column, type_, nullable=True))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, column, _type in reversed(COLUMNS):
        if sqlite:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # SQLite 3.35+, no table copy
        else:
            op.drop_column(table, column)
