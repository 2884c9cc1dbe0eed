"""clinic setup: the clinic's address and languages; keys, directions, photos, prices and
preparation notes of the catalogue; practitioners bookable online or not, and who left

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 09:00:00

Every column is a plain ADD COLUMN (no batch copy on SQLite: appointments reference these
tables, and a copy would have to drop them). A key is NOT NULL: on SQLite the column is added
with an empty default, on PostgreSQL it is added nullable; the existing rows then get the slug
of their name, made unique (``-2``, ``-3`` ...), before the unique index is built.
"""

import re
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

KEY_LENGTH = 64
# table -> the columns its key is made from
_KEYED = {
    "locations": ("name",),
    "practitioners": ("first_name", "last_name"),
    "services": ("name",),
}


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:KEY_LENGTH].rstrip("-")


def _add_key(table: str, name_columns: tuple[str, ...]) -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        op.execute(f"ALTER TABLE {table} ADD COLUMN key VARCHAR({KEY_LENGTH}) NOT NULL DEFAULT ''")
    else:
        op.add_column(table, sa.Column("key", sa.String(length=KEY_LENGTH), nullable=True))
    rows = bind.execute(sa.text(f"SELECT id, {', '.join(name_columns)} FROM {table} ORDER BY id")).all()
    taken: set[str] = set()
    for row in rows:
        base = _slug(" ".join(str(value or "") for value in row[1:])) or table[:-1]
        key, n = base, 1
        while key in taken:
            n += 1
            key = f"{base[: KEY_LENGTH - len(str(n)) - 1]}-{n}"
        taken.add(key)
        bind.execute(sa.text(f"UPDATE {table} SET key = :key WHERE id = :id"), {"key": key, "id": row[0]})
    if not sqlite:
        op.alter_column(table, "key", existing_type=sa.String(length=KEY_LENGTH), nullable=False)
    op.create_index(op.f(f"ix_{table}_key"), table, ["key"], unique=True)


def upgrade() -> None:
    op.add_column("clinic_settings", sa.Column("address", sa.String(length=255), nullable=False, server_default=""))
    op.add_column("clinic_settings", sa.Column("languages", sa.JSON(), nullable=False, server_default='["en", "fr"]'))
    op.add_column("locations", sa.Column("directions", sa.Text(), nullable=False, server_default=""))
    op.add_column("practitioners", sa.Column("photo_url", sa.String(length=500), nullable=True))
    op.add_column("practitioners", sa.Column("online_bookable", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.add_column("practitioners", sa.Column("left_on", sa.Date(), nullable=True))
    op.add_column("services", sa.Column("price_cents", sa.Integer(), nullable=True))
    op.add_column("services", sa.Column("preparation_notes", sa.Text(), nullable=False, server_default=""))
    for table, name_columns in _KEYED.items():
        _add_key(table, name_columns)


def downgrade() -> None:
    # SQLite 3.35+ drops a plain column in place (no batch copy: see the module's docstring).
    for table in reversed(_KEYED):
        op.drop_index(op.f(f"ix_{table}_key"), table_name=table)
        op.drop_column(table, "key")
    op.drop_column("services", "preparation_notes")
    op.drop_column("services", "price_cents")
    op.drop_column("practitioners", "left_on")
    op.drop_column("practitioners", "online_bookable")
    op.drop_column("practitioners", "photo_url")
    op.drop_column("locations", "directions")
    op.drop_column("clinic_settings", "languages")
    op.drop_column("clinic_settings", "address")
