"""treatment plans: a series of visits booked together; appointments.plan_id

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import booking_service.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

FK_NAME = "fk_appointments_plan_id_treatment_plans"


def upgrade() -> None:
    op.create_table(
        "treatment_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=False),
        sa.Column("practitioner_id", sa.Integer(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("every_days", sa.Integer(), nullable=True),
        sa.Column("weekdays", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", booking_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", booking_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by_user_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("count BETWEEN 1 AND 52", name=op.f("ck_treatment_plans_count")),
        sa.CheckConstraint(
            "every_days IS NULL OR every_days BETWEEN 1 AND 90", name=op.f("ck_treatment_plans_every_days")
        ),
        sa.CheckConstraint("source IN ('api', 'staff')", name=op.f("ck_treatment_plans_source")),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_treatment_plans_patient_id_patients"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_treatment_plans_service_id_services"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_treatment_plans_location_id_locations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["practitioner_id"],
            ["practitioners.id"],
            name=op.f("fk_treatment_plans_practitioner_id_practitioners"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_treatment_plans_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["cancelled_by_user_id"],
            ["users.id"],
            name=op.f("fk_treatment_plans_cancelled_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_treatment_plans")),
    )
    op.create_index(op.f("ix_treatment_plans_patient_id"), "treatment_plans", ["patient_id"])
    # SQLite: a plain ADD COLUMN with the reference inline, never a batch "move and copy" of
    # appointments (its overlap triggers, and the rows that point at it, stay as they are).
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            f"ALTER TABLE appointments ADD COLUMN plan_id INTEGER "
            f"CONSTRAINT {FK_NAME} REFERENCES treatment_plans (id) ON DELETE RESTRICT"
        )
    else:
        op.add_column("appointments", sa.Column("plan_id", sa.Integer(), nullable=True))
        op.create_foreign_key(FK_NAME, "appointments", "treatment_plans", ["plan_id"], ["id"], ondelete="RESTRICT")
    op.create_index(op.f("ix_appointments_plan_id"), "appointments", ["plan_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_appointments_plan_id"), table_name="appointments")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite 3.35+ drops the column with its inline reference (no batch copy: see upgrade).
        op.execute("ALTER TABLE appointments DROP COLUMN plan_id")
    else:
        op.drop_constraint(FK_NAME, "appointments", type_="foreignkey")
        op.drop_column("appointments", "plan_id")
    op.drop_index(op.f("ix_treatment_plans_patient_id"), table_name="treatment_plans")
    op.drop_table("treatment_plans")
