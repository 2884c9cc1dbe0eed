"""French preparation notes and directions: what a patient who chose French reads instead

``services.preparation_notes_fr`` and ``locations.directions_fr``, empty by default (an empty
French text falls back to the English one in e-mails and on the patient pages).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 18:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("services", sa.Column("preparation_notes_fr", sa.Text(), nullable=False, server_default=""))
    op.add_column("locations", sa.Column("directions_fr", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("locations", "directions_fr")
    op.drop_column("services", "preparation_notes_fr")
