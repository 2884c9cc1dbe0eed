"""the desk: patient birth dates and notes, the triage queue's reviews, the waitlist's openings
and offer chains, the offer answer time

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import booking_service.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs (no batch copy of patients: with foreign keys on, dropping the old table
    # would cascade into appointments' and consents' rows).
    op.add_column("patients", sa.Column("birth_date", sa.Date(), nullable=True))
    op.create_index(op.f("ix_patients_birth_date"), "patients", ["birth_date"])
    op.add_column(
        "clinic_settings", sa.Column("waitlist_offer_minutes", sa.Integer(), server_default="120", nullable=False)
    )

    op.create_table(
        "patient_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", booking_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_user_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", booking_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_patient_notes_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_patient_notes_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_user_id"],
            ["users.id"],
            name=op.f("fk_patient_notes_updated_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_notes")),
    )
    op.create_index(op.f("ix_patient_notes_patient_id"), "patient_notes", ["patient_id"])

    op.create_table(
        "triage_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("handled_by_user_id", sa.Integer(), nullable=True),
        sa.Column("handled_at", booking_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("(appointment_id IS NULL) <> (alert_id IS NULL)", name=op.f("ck_triage_reviews_one_item")),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_triage_reviews_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_triage_reviews_appointment_id_appointments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["handled_by_user_id"],
            ["users.id"],
            name=op.f("fk_triage_reviews_handled_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_reviews")),
        sa.UniqueConstraint("alert_id", name=op.f("uq_triage_reviews_alert_id")),
        sa.UniqueConstraint("appointment_id", name=op.f("uq_triage_reviews_appointment_id")),
    )
    # What was dealt with before the queue existed does not flood it: alerts already acknowledged
    # (by whoever did), urgent bookings whose alert was acknowledged, and urgent visits completed.
    op.execute(
        "INSERT INTO triage_reviews (alert_id, handled_by_user_id, handled_at) "
        "SELECT id, acknowledged_by_user_id, acknowledged_at FROM alerts "
        "WHERE status = 'acknowledged' AND acknowledged_at IS NOT NULL"
    )
    op.execute(
        "INSERT INTO triage_reviews (appointment_id, handled_by_user_id, handled_at) "
        "SELECT a.id, NULL, COALESCE(a.completed_at, a.updated_at) FROM appointments a "
        "WHERE a.triage = 'urgent' AND (a.status = 'completed' OR EXISTS ("
        "SELECT 1 FROM alerts l WHERE l.appointment_id = a.id AND l.kind = 'urgent_booking' "
        "AND l.status = 'acknowledged'))"
    )

    op.create_table(
        "waitlist_openings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=False),
        sa.Column("practitioner_id", sa.Integer(), nullable=False),
        sa.Column("start_at", booking_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_at", booking_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("created_at", booking_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", booking_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("booked_appointment_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("reason IN ('cancelled', 'rescheduled')", name=op.f("ck_waitlist_openings_reason")),
        sa.CheckConstraint(
            "status IN ('open', 'booked', 'taken', 'lapsed', 'closed')", name=op.f("ck_waitlist_openings_status")
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_waitlist_openings_appointment_id_appointments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["booked_appointment_id"],
            ["appointments.id"],
            name=op.f("fk_waitlist_openings_booked_appointment_id_appointments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_waitlist_openings_location_id_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["practitioner_id"],
            ["practitioners.id"],
            name=op.f("fk_waitlist_openings_practitioner_id_practitioners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_waitlist_openings_service_id_services"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_openings")),
    )
    op.create_index("ix_waitlist_openings_status_start", "waitlist_openings", ["status", "start_at"])

    op.create_table(
        "waitlist_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("opening_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("offered_at", booking_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sends_at", booking_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", booking_service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", booking_service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("token_nonce", sa.String(length=32), nullable=False),
        sa.Column("offered_by_user_id", sa.Integer(), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('offered', 'expired', 'passed', 'booked', 'withdrawn', 'skipped')",
            name=op.f("ck_waitlist_offers_status"),
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_waitlist_offers_appointment_id_appointments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["waitlist_entries.id"],
            name=op.f("fk_waitlist_offers_entry_id_waitlist_entries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["offered_by_user_id"],
            ["users.id"],
            name=op.f("fk_waitlist_offers_offered_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["opening_id"],
            ["waitlist_openings.id"],
            name=op.f("fk_waitlist_offers_opening_id_waitlist_openings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_offers")),
        sa.UniqueConstraint("opening_id", "entry_id", name="uq_waitlist_offers_opening_entry"),
    )
    op.create_index(op.f("ix_waitlist_offers_entry_id"), "waitlist_offers", ["entry_id"])
    op.create_index("ix_waitlist_offers_status_expires", "waitlist_offers", ["status", "expires_at"])
    # One live offer per opening: the database's last word when two workers pass an offer on.
    op.create_index(
        "uq_waitlist_offers_live",
        "waitlist_offers",
        ["opening_id"],
        unique=True,
        sqlite_where=sa.text("status = 'offered'"),
        postgresql_where=sa.text("status = 'offered'"),
    )


def downgrade() -> None:
    op.drop_index("uq_waitlist_offers_live", table_name="waitlist_offers")
    op.drop_index("ix_waitlist_offers_status_expires", table_name="waitlist_offers")
    op.drop_index(op.f("ix_waitlist_offers_entry_id"), table_name="waitlist_offers")
    op.drop_table("waitlist_offers")
    op.drop_index("ix_waitlist_openings_status_start", table_name="waitlist_openings")
    op.drop_table("waitlist_openings")
    op.drop_table("triage_reviews")
    op.drop_index(op.f("ix_patient_notes_patient_id"), table_name="patient_notes")
    op.drop_table("patient_notes")
    op.drop_index(op.f("ix_patients_birth_date"), table_name="patients")
    # SQLite 3.35+ drops a plain column in place (no batch copy: see upgrade).
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE clinic_settings DROP COLUMN waitlist_offer_minutes")
        op.execute("ALTER TABLE patients DROP COLUMN birth_date")
    else:
        op.drop_column("clinic_settings", "waitlist_offer_minutes")
        op.drop_column("patients", "birth_date")
