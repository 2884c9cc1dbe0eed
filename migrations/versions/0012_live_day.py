"""the live day view and staff moves: appointments.revision, appointments.outside_hours_reason

``revision`` rises by one on every UPDATE of an appointment (the model's ``onupdate``), so the
day view's change token (``scheduling.queries.day_change_token``) sees a change even when two
transactions' ``updated_at`` values arrive out of order. ``outside_hours_reason`` is why staff
booked or moved an appointment to a time that is not one of the free times (outside working
hours, off the slot grid, inside the minimum notice).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = ("revision", "outside_hours_reason")


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN on both engines: no table copy (SQLite would drop the
    # overlap triggers with a batch copy of appointments).
    op.add_column("appointments", sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
    op.add_column("appointments", sa.Column("outside_hours_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite 3.35+ and PostgreSQL both drop a column in place; neither column is in an index,
    # a constraint or a trigger.
    for name in reversed(COLUMNS):
        op.execute(f"ALTER TABLE appointments DROP COLUMN {name}")
