"""What the database itself guarantees, with every Python check bypassed.

No double booking (DESIGN.md, "Guarantees") must hold for any writer: a bug in ``book()``, a
staff tool, a hand-written SQL fix. So these tests write Appointment rows directly (ORM and Core
SQL) and expect the database to refuse what the overlap guards forbid, on PostgreSQL (exclusion
constraints) and on SQLite (triggers). They also pin how instants are stored and that the
migration goes down and up again cleanly.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, inspect, select, text, update
from sqlalchemy.exc import IntegrityError, StatementError

from booking_service import migrate
from booking_service.clinic.models import Location
from booking_service.db import Database
from booking_service.patients.models import Patient
from booking_service.scheduling.models import Appointment
from tests.conftest import NOW, PG_ADMIN_URL, local

DAY = "2026-11-24"
TORONTO = ZoneInfo("America/Toronto")
ACTIVE = ("booked", "confirmed", "checked_in", "completed", "no_show")


@pytest.fixture
def clinic(database, make_clinic):
    """The make_clinic clinic plus three patients (ids in ``clinic.patient_ids``)."""
    made = make_clinic()
    with database.unit_of_work() as s:
        people = [Patient(first_name=f"P{n}", last_name="Test", email=f"p{n}@example.com") for n in range(3)]
        s.add_all(people)
        s.flush()
        made.patient_ids = [p.id for p in people]
    return made


def visit(
    clinic,
    *,
    start: str = "09:00",
    minutes: int = 60,
    buffer: int = 0,
    practitioner: int = 0,
    patient: int = 0,
    status: str = "booked",
    location_id: int | None = None,
) -> dict:
    """Column values of one appointment on DAY (local ``start``), written without book()."""
    start_at = local(DAY, start)
    end_at = start_at + timedelta(minutes=minutes)
    nonce = uuid.uuid4().hex
    return {
        "patient_id": clinic.patient_ids[patient],
        "practitioner_id": clinic.practitioner_ids[practitioner],
        "location_id": location_id or clinic.location_id,
        "service_id": clinic.initial_id,
        "start_at": start_at,
        "end_at": end_at,
        "busy_until": end_at + timedelta(minutes=buffer),
        "status": status,
        "cancelled_at": NOW if status == "cancelled" else None,
        "manage_nonce": nonce,
        "manage_token_hash": uuid.uuid4().hex + nonce,
        "created_at": NOW,
        "updated_at": NOW,
    }


def add(database: Database, *rows: dict) -> list[int]:
    """Insert ``rows`` through the ORM, one flush per row, in one committed transaction."""
    with database.unit_of_work() as s:
        appointments = []
        for row in rows:
            appointment = Appointment(**row)
            s.add(appointment)
            s.flush()
            appointments.append(appointment)
        return [a.id for a in appointments]


def refused(database: Database, *rows: dict) -> IntegrityError:
    """Insert ``rows`` expecting the database to refuse; nothing of the attempt is kept."""
    before = count_rows(database)
    with pytest.raises(IntegrityError) as caught:
        add(database, *rows)
    assert count_rows(database) == before
    return caught.value


def count_rows(database: Database) -> int:
    with database.session() as s:
        return s.execute(text("SELECT count(*) FROM appointments")).scalar_one()


def guard(exc: IntegrityError) -> str:
    """Which overlap guard refused: the names ``book()`` maps to SlotTaken / PatientBusy."""
    message = str(exc.orig)
    found = [name for name in ("practitioner_overlap", "patient_overlap") if name in message]
    assert len(found) == 1, message
    return found[0]


# --- practitioner and patient overlaps --------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("09:00", 60), ("09:00", 60)),  # the same time
        (("09:00", 60), ("09:30", 60)),  # starts inside
        (("09:30", 60), ("09:00", 60)),  # ends inside
        (("09:00", 120), ("09:30", 30)),  # inside
        (("09:30", 30), ("09:00", 120)),  # around
        (("09:00", 60), ("09:59", 30)),  # one minute of overlap
    ],
)
def test_database_refuses_overlapping_visits_for_one_practitioner(database, clinic, first, second):
    add(database, visit(clinic, start=first[0], minutes=first[1], patient=0))

    exc = refused(database, visit(clinic, start=second[0], minutes=second[1], patient=1))

    assert guard(exc) == "practitioner_overlap"


def test_visits_that_only_touch_are_allowed(database, clinic):
    add(
        database,
        visit(clinic, start="09:00", patient=0),
        visit(clinic, start="10:00", patient=1),
        visit(clinic, start="08:00", patient=2),
    )
    assert count_rows(database) == 3


def test_other_practitioners_may_see_other_patients_at_the_same_time(database, clinic):
    add(database, visit(clinic, practitioner=0, patient=0), visit(clinic, practitioner=1, patient=1))
    assert count_rows(database) == 2


def test_database_refuses_one_patient_with_two_practitioners_at_overlapping_times(database, clinic):
    add(database, visit(clinic, start="09:00", practitioner=0, patient=0))

    exc = refused(database, visit(clinic, start="09:30", practitioner=1, patient=0))

    assert guard(exc) == "patient_overlap"


def test_practitioner_is_busy_at_every_location(database, clinic):
    with database.unit_of_work() as s:
        uptown = Location(name="Uptown", address="1 Yonge St", timezone="America/Toronto")
        s.add(uptown)
        s.flush()
        uptown_id = uptown.id
    add(database, visit(clinic, patient=0))

    exc = refused(database, visit(clinic, patient=1, location_id=uptown_id))

    assert guard(exc) == "practitioner_overlap"


def test_database_refuses_an_overlap_written_with_core_sql(database, clinic):
    with database.engine.begin() as conn:
        conn.execute(insert(Appointment.__table__), [visit(clinic, patient=0)])
    with pytest.raises(IntegrityError) as caught, database.engine.begin() as conn:
        conn.execute(insert(Appointment.__table__), [visit(clinic, start="09:45", patient=1)])
    assert guard(caught.value) == "practitioner_overlap"
    assert count_rows(database) == 1


def test_database_refuses_an_overlap_inside_one_multi_row_insert(database, clinic):
    # One flush of two new rows is one INSERT of several rows on both engines: the guard still
    # compares the rows of the same statement with each other.
    with pytest.raises(IntegrityError) as caught, database.unit_of_work() as s:
        s.add_all([Appointment(**visit(clinic, patient=0)), Appointment(**visit(clinic, start="09:30", patient=1))])
    assert guard(caught.value) == "practitioner_overlap"
    assert count_rows(database) == 0


@pytest.mark.parametrize("status", ACTIVE)
def test_every_status_but_cancelled_holds_its_time(database, clinic, status):
    add(database, visit(clinic, patient=0, status=status))

    refused(database, visit(clinic, patient=1))


# --- cancelled rows and buffers ----------------------------------------------------------------


def test_cancelled_rows_do_not_block(database, clinic):
    add(
        database,
        visit(clinic, patient=0, status="cancelled"),
        visit(clinic, patient=0, status="cancelled"),  # two cancelled rows may overlap each other
        visit(clinic, patient=0),  # same patient, same practitioner, same time: booked again
        visit(clinic, start="09:30", patient=1, status="cancelled"),  # cancelled over a booked one
    )
    assert count_rows(database) == 4


def test_buffer_blocks_the_practitioner_but_not_the_patient(database, clinic):
    # 09:00-09:30 with a 15-minute buffer: the practitioner is busy until 09:45, the patient not.
    add(database, visit(clinic, start="09:00", minutes=30, buffer=15, practitioner=0, patient=0))

    exc = refused(database, visit(clinic, start="09:30", minutes=30, practitioner=0, patient=1))
    assert guard(exc) == "practitioner_overlap"

    add(
        database,
        visit(clinic, start="09:45", minutes=30, practitioner=0, patient=1),  # after the buffer
        visit(clinic, start="09:30", minutes=30, practitioner=1, patient=0),  # patient moves on
    )
    assert count_rows(database) == 3


def test_new_visit_whose_own_buffer_runs_into_the_next_visit_is_refused(database, clinic):
    add(database, visit(clinic, start="10:00", practitioner=0, patient=0))

    exc = refused(database, visit(clinic, start="09:30", minutes=30, buffer=15, practitioner=0, patient=1))

    assert guard(exc) == "practitioner_overlap"


# --- updates -----------------------------------------------------------------------------------


def test_reinstating_a_cancelled_row_over_a_taken_time_is_refused(database, clinic):
    _, cancelled_id = add(
        database, visit(clinic, patient=0), visit(clinic, start="09:30", patient=1, status="cancelled")
    )

    with pytest.raises(IntegrityError) as caught, database.unit_of_work() as s:
        s.get(Appointment, cancelled_id).status = "booked"

    assert guard(caught.value) == "practitioner_overlap"
    with database.session() as s:
        assert s.get(Appointment, cancelled_id).status == "cancelled"


def test_moving_a_visit_onto_a_taken_time_is_refused(database, clinic):
    _, moving_id = add(database, visit(clinic, start="09:00", patient=0), visit(clinic, start="11:00", patient=1))
    start = local(DAY, "09:30")

    with pytest.raises(IntegrityError) as caught, database.engine.begin() as conn:
        conn.execute(
            update(Appointment.__table__)
            .where(Appointment.__table__.c.id == moving_id)
            .values(start_at=start, end_at=start + timedelta(hours=1), busy_until=start + timedelta(hours=1))
        )

    assert guard(caught.value) == "practitioner_overlap"


def test_handing_a_visit_to_a_busy_practitioner_is_refused(database, clinic):
    _, moving_id = add(database, visit(clinic, practitioner=0, patient=0), visit(clinic, practitioner=1, patient=1))

    with pytest.raises(IntegrityError) as caught, database.unit_of_work() as s:
        s.get(Appointment, moving_id).practitioner_id = clinic.practitioner_ids[0]

    assert guard(caught.value) == "practitioner_overlap"


def test_moving_a_visit_within_its_own_time_is_allowed(database, clinic):
    # A row never conflicts with itself: 09:00-10:00 moved to 09:30-10:30 overlaps its old time.
    [moving_id] = add(database, visit(clinic, start="09:00", patient=0))
    start = local(DAY, "09:30")

    with database.unit_of_work() as s:
        moving = s.get(Appointment, moving_id)
        moving.start_at, moving.end_at, moving.busy_until = (
            start,
            start + timedelta(hours=1),
            start + timedelta(hours=1),
        )

    with database.session() as s:
        assert s.get(Appointment, moving_id).start_at == start


# --- instants ----------------------------------------------------------------------------------


def test_naive_datetimes_are_refused_on_write_and_in_queries(database, clinic):
    naive = visit(clinic)
    naive["start_at"] = datetime(2026, 11, 24, 14, 0)
    with pytest.raises(StatementError) as caught, database.unit_of_work() as s:
        s.add(Appointment(**naive))
    assert isinstance(caught.value.orig, ValueError) and "naive" in str(caught.value.orig)
    assert count_rows(database) == 0

    with pytest.raises(StatementError) as caught, database.session() as s:
        s.execute(select(Appointment.id).where(Appointment.start_at < datetime(2026, 11, 24)))
    assert isinstance(caught.value.orig, ValueError)


@pytest.mark.parametrize(
    "written",
    [
        datetime(2026, 11, 24, 9, 0, tzinfo=TORONTO),  # EST, UTC-5
        datetime(2026, 7, 14, 9, 0, tzinfo=TORONTO),  # EDT, UTC-4
        datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=TORONTO),  # the second 01:30 of fall-back day
        datetime(2026, 11, 24, 14, 0, 0, 123456, tzinfo=UTC),  # microseconds survive
        datetime(2026, 11, 24, 23, 30, tzinfo=ZoneInfo("Asia/Kolkata")),  # a half-hour offset
    ],
)
def test_instants_round_trip_as_aware_utc(database, clinic, written):
    row = visit(clinic)
    row.update(start_at=written, end_at=written + timedelta(hours=1), busy_until=written + timedelta(hours=1))
    [row_id] = add(database, row)

    with database.session() as s:
        read = s.get(Appointment, row_id).start_at
        stored = s.execute(
            text(
                "SELECT start_at FROM appointments WHERE id = :id"
                if database.dialect == "sqlite"
                else "SELECT to_char(start_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') "
                "FROM appointments WHERE id = :id"
            ),
            {"id": row_id},
        ).scalar_one()

    # Compared in UTC: Python (PEP 495) never calls an instant in a fold equal to one in another zone.
    assert read == written.astimezone(UTC)
    assert read.tzinfo is UTC
    # The stored value is the UTC wall time, fixed width on SQLite, so SQL compares instants.
    assert stored == written.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def test_sql_comparisons_order_instants_not_wall_times(database, clinic):
    # 09:00 Toronto (14:00 UTC) is after 13:30 UTC although 09:00 < 13:30 as wall time: a parameter
    # in any zone is converted before it reaches SQL.
    [row_id] = add(database, visit(clinic, start="09:00"))
    with database.session() as s:
        found = s.scalars(
            select(Appointment.id).where(
                Appointment.start_at > datetime(2026, 11, 24, 13, 30, tzinfo=UTC),
                Appointment.start_at < datetime(2026, 11, 24, 19, 31, tzinfo=ZoneInfo("Asia/Kolkata")),
            )
        ).all()
    assert found == [row_id]


# --- migrations ----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request, tmp_path):
    """The URL of a brand-new, empty database of its own (not the shared test template)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    import psycopg

    name = f"pbs_migrate_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:  # no server: skip (a failure under REQUIRE_ALL)
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _schema(database: Database) -> dict:
    """Tables with their columns, indexes and constraints, and the overlap guards."""
    with database.engine.connect() as conn:
        inspector = inspect(conn)
        tables = {
            table: (
                sorted(c["name"] for c in inspector.get_columns(table)),
                sorted(i["name"] for i in inspector.get_indexes(table)),
                sorted(str(c["name"]) for c in inspector.get_check_constraints(table)),
                sorted(str(c["name"]) for c in inspector.get_foreign_keys(table)),
                sorted(str(c["name"]) for c in inspector.get_unique_constraints(table)),
            )
            for table in inspector.get_table_names()
        }
        if database.dialect == "sqlite":
            guards = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars().all()
        else:
            guards = conn.execute(text("SELECT conname FROM pg_constraint WHERE contype = 'x'")).scalars().all()
    return {"tables": tables, "guards": sorted(guards)}


def test_migration_goes_down_to_base_and_up_again(fresh_url):
    migrate.upgrade(fresh_url)
    database = Database(fresh_url)
    try:
        first = _schema(database)
        assert "appointments" in first["tables"]
        if database.dialect == "sqlite":
            assert first["guards"] == sorted(
                [
                    f"tr_appointments_{who}_overlap_{when}"
                    for who in ("patient", "practitioner")
                    for when in ("insert", "update")
                ]
                + ["trg_audit_events_no_delete", "trg_audit_events_no_update"]  # the audit trail is append-only
            )
        else:
            assert first["guards"] == ["xc_appointments_patient_overlap", "xc_appointments_practitioner_overlap"]

        migrate.downgrade(fresh_url, "base")
        down = _schema(database)
        assert set(down["tables"]) <= {"alembic_version"}
        assert down["guards"] == []

        migrate.upgrade(fresh_url)
        assert _schema(database) == first
        _assert_overlap_refused(database)
    finally:
        database.dispose()


def _assert_overlap_refused(database: Database) -> None:
    from booking_service.clinic.models import Practitioner, Service

    with database.unit_of_work() as s:
        location = Location(name="Downtown", address="1 King St", timezone="America/Toronto")
        practitioner = Practitioner(first_name="Maya", last_name="Chen", profession="Physiotherapist")
        service = Service(name="Initial assessment", kind="initial", duration_minutes=60)
        people = [Patient(first_name=f"P{n}", last_name="Test", email=f"p{n}@example.com") for n in range(2)]
        s.add_all([location, practitioner, service, *people])
        s.flush()
        ids = SimpleNamespace(
            patient_ids=[p.id for p in people],
            practitioner_ids=[practitioner.id],
            location_id=location.id,
            initial_id=service.id,
        )
    add(database, visit(ids, patient=0))
    assert guard(refused(database, visit(ids, start="09:30", patient=1))) == "practitioner_overlap"
