"""Shared fixtures.

- Every database-facing test runs on SQLite and on PostgreSQL (``db_url`` is parametrized).
  PostgreSQL tests create their own database and drop it at the end of the session.
- ``REQUIRE_ALL=1`` (set by CI) turns every skip into a failure, so no test silently stops.
- Any connection to a non-loopback address fails the test (Indico's ``disallow`` fixture).
- Factories return callables with defaults (Indico's habit): ``make_clinic()``.
- ``frozen`` stops the clock at ``NOW``; ``clinic`` is the default clinic made then; ``pages``
  a client of the patient pages with CSRF checks off (tests/test_pages.py proves them on by
  default). A module defines its own where it needs another (tests/test_webhooks.py).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from sqlalchemy import text

from booking_service import migrate
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service, WorkingHours
from booking_service.db import Database
from booking_service.models import Base

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_ALL = os.environ.get("REQUIRE_ALL") == "1"
SECRET = "test-secret-key"
# A Monday, 08:00 in Toronto (EST): the default "now" of domain tests.
NOW = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


# --- skips are failures in CI ----------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"REQUIRE_ALL=1: a skipped test is a failure ({reason})"


# --- no network but loopback -------------------------------------------------------------------

_real_connect = socket.socket.connect


def _guarded_connect(sock, address):
    host = address[0] if isinstance(address, tuple) else address
    is_ip = sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(host, str)
    if is_ip and not (host.startswith("127.") or host in ("::1", "localhost")):
        raise RuntimeError(f"test tried to reach the network: {address!r}")
    return _real_connect(sock, address)


@pytest.fixture(autouse=True)
def _disallow_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


# --- databases ---------------------------------------------------------------------------------


def _pg_admin():
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "test.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def _postgres_template() -> Iterator[str]:
    name = f"pbs_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # no server: skip (a failure under REQUIRE_ALL)
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    migrate.upgrade(url)
    yield url
    with _pg_admin() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _empty_all_tables(database: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with database.engine.begin() as conn:
        if database.dialect == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            # The audit trail refuses DELETE (its triggers): lift them for the emptying only.
            from booking_service.audit.models import SQLITE_DROP_TRIGGERS, SQLITE_TRIGGERS

            for statement in SQLITE_DROP_TRIGGERS:
                conn.execute(text(statement))
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))
            for statement in SQLITE_TRIGGERS:
                conn.execute(text(statement))
            conn.execute(text("DELETE FROM sqlite_sequence")) if _has_sqlite_sequence(conn) else None


def _has_sqlite_sequence(conn) -> bool:
    return conn.execute(text("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'")).first() is not None


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """The URL of an empty, migrated database on each engine in turn."""
    template = "_sqlite_template" if request.param == "sqlite" else "_postgres_template"
    return request.getfixturevalue(template)


@pytest.fixture
def database(db_url) -> Iterator[Database]:
    database = Database(db_url)
    _empty_all_tables(database)
    yield database
    database.dispose()


@pytest.fixture
def session(database):
    session = database.session()
    yield session
    session.rollback()
    session.close()


# --- local doubles of Twilio and SMTP (real protocols, loopback only) ---------------------------


@pytest.fixture(scope="session")
def _fake_server():
    from tests.support.fake_twilio import FakeTwilio

    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def fake(_fake_server):
    """The local Twilio-compatible server, emptied, answering at once, with Twilio's page size."""
    _fake_server.reset()
    _fake_server.latency = 0.0
    _fake_server.max_page_size = 1000
    return _fake_server


@pytest.fixture(scope="session")
def _smtp_server():
    from tests.support.smtp_server import SmtpServer

    with SmtpServer() as smtp:
        yield smtp


@pytest.fixture
def smtp(_smtp_server):
    """The local SMTP server (aiosmtpd), emptied and accepting everything."""
    _smtp_server.reset()
    return _smtp_server


# --- factories ---------------------------------------------------------------------------------


@pytest.fixture
def make_clinic(database):
    """``make_clinic(**policy)``: a clinic with one Toronto location, two physiotherapists working
    Monday to Friday 09:00-17:00 (lunch 12:00-13:00), an initial assessment (60 min) and a
    follow-up (30 min, 15 min buffer). Returns a namespace of ids; committed."""

    def make(**policy) -> _Clinic:
        with database.unit_of_work() as s:
            settings = ClinicSettings(
                id=1,
                name="Lakeshore Physio",
                phone="+14165550100",
                country="CA",
                timezone="America/Toronto",
                **policy,
            )
            location = Location(name="Downtown", address="120 King St W", timezone="America/Toronto")
            initial = Service(
                name="Initial assessment", name_fr="Évaluation initiale", kind="initial", duration_minutes=60
            )
            follow_up = Service(
                name="Follow-up", name_fr="Suivi", kind="follow_up", duration_minutes=30, buffer_minutes=15
            )
            people = [
                Practitioner(first_name="Maya", last_name="Chen", profession="Physiotherapist"),
                Practitioner(first_name="Daniel", last_name="Okafor", profession="Physiotherapist"),
            ]
            s.add_all([settings, location, initial, follow_up, *people])
            for p in people:
                p.locations = [location]
                p.services = [initial, follow_up]
            s.flush()
            for p in people:
                for weekday in range(5):
                    s.add(
                        WorkingHours(
                            practitioner_id=p.id,
                            location_id=location.id,
                            weekday=weekday,
                            start_time=time(9),
                            end_time=time(17),
                            break_start=time(12),
                            break_end=time(13),
                        )
                    )
            return _Clinic(location.id, initial.id, follow_up.id, [p.id for p in people])

    return make


class _Clinic:
    def __init__(self, location_id: int, initial_id: int, follow_up_id: int, practitioner_ids: list[int]):
        self.location_id = location_id
        self.initial_id = initial_id
        self.follow_up_id = follow_up_id
        self.practitioner_ids = practitioner_ids


@pytest.fixture
def app(db_url, database):
    """The Flask app on the test database (rate limits off unless a test turns them on)."""
    from booking_service import create_app

    app = create_app(
        {
            "DATABASE_URL": db_url,
            "SECRET_KEY": SECRET,
            "TESTING": True,
            "RATELIMIT_ENABLED": False,
            "PUBLIC_BASE_URL": "http://testserver.local",
        }
    )
    yield app
    app.extensions["database"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def clinic(make_clinic, frozen):
    return make_clinic()


@pytest.fixture
def pages(app, clinic):
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client()


def local(day: str, hhmm: str, tz: str = "America/Toronto") -> datetime:
    """An aware datetime for a local wall time: ``local("2026-11-24", "09:00")``."""
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=ZoneInfo(tz))


__all__ = ["NOW", "SECRET", "local", "timedelta"]
