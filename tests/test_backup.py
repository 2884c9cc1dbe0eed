"""Backups as docs/operations.md tells them: ``pg_dump`` of the clinic's database, restored with
``pg_restore`` (custom format) or ``psql`` (plain SQL) into a new database, and the app on the
restored copy still knows the booking, its manage link, its messages and its audit trail, with
the database's guarantees (overlap constraints, append-only audit) in place."""

from __future__ import annotations

import os
import subprocess
import uuid

import psycopg
import pytest
from sqlalchemy import text

from booking_service import migrate
from booking_service.db import Database
from tests.conftest import PG_ADMIN_URL
from tests.test_observability import book, make_app

pytestmark = pytest.mark.postgres


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as the PostgreSQL tools take it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def restored_url():
    """An empty database for the restore, dropped afterwards."""
    name = f"pbs_restore_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, timeout=120, **kwargs)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("form", ["custom", "plain"])
def test_a_pg_dump_restored_into_a_new_database_keeps_the_booking(
    client, database, db_url, make_clinic, restored_url, tmp_path, form
):
    clinic = make_clinic()
    booked = book(client, clinic, request_id="before-backup").get_json()
    token = booked["manage_url"].rstrip("/").rsplit("/", 1)[1]

    dump = tmp_path / f"clinic.{'dump' if form == 'custom' else 'sql'}"
    # docs/operations.md: pg_dump --format=custom --no-owner (or --format=plain) of the database.
    run(["pg_dump", f"--format={form}", "--no-owner", f"--file={dump}", libpq_url(db_url)])
    if form == "custom":
        run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={libpq_url(restored_url)}", str(dump)])
    else:
        run(["psql", "--quiet", "--set=ON_ERROR_STOP=1", f"--file={dump}", libpq_url(restored_url)])

    app = make_app(restored_url)
    try:
        restored = app.test_client()
        shown = restored.get(f"/api/v1/manage/{token}")
        assert shown.status_code == 200, shown.get_json()
        assert shown.get_json()["start"] == booked["start"]
        assert restored.get("/readyz").status_code == 200
    finally:
        app.extensions["database"].dispose()

    copy = Database(restored_url)
    try:
        with copy.engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            rows = conn.execute(text("SELECT kind, request_id FROM outbox_messages")).all()
            audit = conn.execute(text("SELECT count(*) FROM audit_events WHERE action = 'appointment.book'")).scalar()
            guards = conn.execute(text("SELECT conname FROM pg_constraint WHERE contype = 'x' ORDER BY 1")).scalars()
            assert list(guards) == ["xc_appointments_patient_overlap", "xc_appointments_practitioner_overlap"]
        with copy.engine.connect() as conn, pytest.raises(Exception, match="append-only"):
            conn.execute(text("DELETE FROM audit_events"))
    finally:
        copy.dispose()
    assert version == _head()
    assert ("confirmation", "before-backup") in [tuple(r) for r in rows]
    assert audit == 1


def _head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_current_head()
