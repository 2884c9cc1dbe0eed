"""Benchmark: what one booking and one availability request send to the database, on PostgreSQL.

    .venv/bin/python -m bench.roundtrips            # a few seconds; --sqlite for the embedded engine

Through the Flask app (``POST /api/v1/appointments`` and ``GET /api/v1/availability`` of the
demo clinic, one practitioner over 7 days), on a throw-away database, after warm-up requests so
that per-process caches and the connection pool are as in production. It prints every
statement of the measured requests and the counts:

* **statements**: what the application executes (SQLAlchemy's ``before_cursor_execute``);
* **round trips**: those plus what the driver sends on its own that waits for an answer: the
  pool's pre-ping on checkout, ``BEGIN`` (psycopg sends it before the first statement of a
  transaction), ``COMMIT`` or ``ROLLBACK``; a savepoint's ``SAVEPOINT``/``RELEASE`` are
  statements already. Counted from the pool's and the connection's events, not estimated.
* **app CPU** per booking: this process's CPU time over many bookings divided by their number
  (the database server's CPU is not in it).

``tests/test_statement_budget.py`` holds the statement counts; docs/benchmarks.md keeps the
figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import SECRET, load_average, scratch_database, seed_demo, table  # noqa: E402
from booking_service import create_app  # noqa: E402
from booking_service.db import Database  # noqa: E402
from tests.support.stack import non_overlapping  # noqa: E402

NOW = datetime(2026, 12, 1, 14, tzinfo=UTC)


class Traffic:
    """Statements and driver round trips through ``engine`` while active."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.statements: list[str] = []
        self.extra = 0  # pre-ping, BEGIN, COMMIT/ROLLBACK

    def _statement(self, _conn, _cursor, statement, *_args) -> None:
        self.statements.append(" ".join(statement.split()))

    def _begin(self, _conn) -> None:
        self.extra += 1

    def _end(self, _conn) -> None:
        self.extra += 1

    def _checkout(self, *_args) -> None:
        self.extra += 1  # pool_pre_ping: one ping per checkout

    def __enter__(self) -> Traffic:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "begin", self._begin)
        event.listen(self.engine, "commit", self._end)
        event.listen(self.engine, "rollback", self._end)
        event.listen(self.engine.pool, "checkout", self._checkout)
        return self

    def __exit__(self, *_exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "begin", self._begin)
        event.remove(self.engine, "commit", self._end)
        event.remove(self.engine, "rollback", self._end)
        event.remove(self.engine.pool, "checkout", self._checkout)

    @property
    def round_trips(self) -> int:
        # SQLite's explicit BEGIN (db.py) goes through the cursor and is counted as a statement.
        return len(self.statements) + self.extra


def booking_body(number: int, slot: dict) -> dict:
    return {
        "service_id": 2,
        "location_id": 1,
        "practitioner_id": slot["practitioner_id"],
        "start": slot["start"],
        "patient": {
            "first_name": "Bench",
            "last_name": f"Patient{number}",
            "email": f"bench{number}@example.org",
            "phone": f"+1416555{number:04d}",
            "sms_consent": True,
            "email_consent": True,
            "exercise_sms_consent": False,
        },
    }


def free_slots(client, *, first: str, last: str, practitioner_id: int | None = None) -> list[dict]:
    query = f"/api/v1/availability?service_id=2&location_id=1&start={first}&end={last}"
    if practitioner_id is not None:
        query += f"&practitioner_id={practitioner_id}"
    response = client.get(query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["slots"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite", action="store_true", help="the embedded engine instead of PostgreSQL")
    parser.add_argument("--bookings", type=int, default=200, help="bookings timed for app CPU")
    parser.add_argument("--quiet", action="store_true", help="counts only, not each statement")
    args = parser.parse_args()

    with scratch_database("bench_roundtrips", postgres=not args.sqlite) as (url, engine_name):
        seed_demo(Database(url), now=NOW, appointments=0)
        app = create_app(
            {
                "DATABASE_URL": url,
                "SECRET_KEY": SECRET,
                "TESTING": True,
                "RATELIMIT_ENABLED": False,
                "PUBLIC_BASE_URL": "http://bench.local",
            }
        )
        engine = app.extensions["database"].engine
        client = app.test_client()
        today = datetime.now(UTC).date()
        first, last = (today + timedelta(days=2)).isoformat(), (today + timedelta(days=60)).isoformat()
        starts = non_overlapping(free_slots(client, first=first, last=last), 60, args.bookings + 6)
        week = (today + timedelta(days=2)).isoformat(), (today + timedelta(days=8)).isoformat()
        number = iter(range(1, 10_000))

        def post(slot: dict) -> int:
            n = next(number)
            response = client.post("/api/v1/appointments", json=booking_body(n, slot))
            if response.status_code != 201:
                print(response.get_data(as_text=True)[:300])
            return response.status_code

        for slot in starts[:5]:  # warm-up: imports, pools, per-process caches
            assert post(slot) == 201
        free_slots(client, first=week[0], last=week[1], practitioner_id=1)

        with Traffic(engine) as booking:
            status = post(starts[5])
        assert status == 201, status
        with Traffic(engine) as search:
            free_slots(client, first=week[0], last=week[1], practitioner_id=1)

        if not args.quiet:
            for title, traffic in (("one booking", booking), ("one availability request", search)):
                print(f"-- {title}: {len(traffic.statements)} statements")
                for statement in traffic.statements:
                    print("  ", statement[:160])
        timed = starts[6 : 6 + args.bookings]
        cpu = time.process_time()
        for slot in timed:
            assert post(slot) == 201
        cpu_ms = (time.process_time() - cpu) * 1000 / len(timed)

        print(
            f"\n{engine_name}, demo clinic, load {load_average()}, python {sys.version.split()[0]}, pid {os.getpid()}"
        )
        print(
            table(
                ["request", "statements", "round trips", "app CPU ms"],
                [
                    ("POST /api/v1/appointments", len(booking.statements), booking.round_trips, cpu_ms),
                    (
                        "GET /api/v1/availability (1 practitioner, 7 days)",
                        len(search.statements),
                        search.round_trips,
                        "-",
                    ),
                ],
            )
        )


if __name__ == "__main__":
    main()
