"""Helpers shared by the benchmarks: a throw-away PostgreSQL database, the demo clinic in it,
timing loops and percentiles, and a compact text table.

Benchmarks create their own database (never the developer's or the tests'), drop it at the end
even when interrupted, and take every "now" explicitly so runs are comparable.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from booking_service import demo, migrate
from booking_service.db import Database

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret-key"


def _admin():
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)


def database_url(name: str) -> str:
    """The SQLAlchemy URL of database ``name`` on the server of PG_ADMIN_URL."""
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN_URL)
    return admin.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


def create_database(name: str) -> str:
    """Create the empty PostgreSQL database ``name`` (dropping a leftover of that name) and
    return its URL."""
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def drop_database(name: str) -> None:
    """Drop ``name``, disconnecting whoever is still connected to it."""
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def temporary_database(prefix: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database ``<prefix>_<pid>`` for the duration of the block."""
    name = f"{prefix}_{os.getpid()}"
    url = create_database(name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        drop_database(name)


@contextlib.contextmanager
def scratch_database(prefix: str, *, postgres: bool) -> Iterator[tuple[str, str]]:
    """(url, engine name) of a fresh migrated database: PostgreSQL (see :func:`temporary_database`)
    or a SQLite file in a temporary folder, gone after the block."""
    if postgres:
        with temporary_database(prefix) as url:
            yield url, "PostgreSQL"
        return
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        migrate.upgrade(url)
        yield url, "SQLite"


def seed_demo(database: Database, *, now: datetime, appointments: int = 0) -> None:
    """Load the demo clinic (five practitioners at Downtown, services 1..5) and commit."""
    with database.unit_of_work() as session:
        demo.seed(session, secret_key=SECRET, now=now, appointments=appointments)


def percentile(samples: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) with linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and mean of ``samples_ms``."""
    return {
        "p50": percentile(samples_ms, 50),
        "p95": percentile(samples_ms, 95),
        "p99": percentile(samples_ms, 99),
        "mean": sum(samples_ms) / len(samples_ms),
    }


def timed_ms(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, cpu) time of one call of ``fn`` in milliseconds: ``time.perf_counter`` and this
    process's CPU time (``time.process_time``). On a shared machine wall minus CPU is time spent
    waiting: for the database, or for a core."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def load_average() -> str:
    """The 1-minute load average and the core count, e.g. ``"6.2 on 2 cores"``."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def settle() -> None:
    """Collect garbage between setup and measurement, so setup's garbage is not timed."""
    gc.collect()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A compact, aligned plain-text table: text columns to the left, figures (floats shown with
    two decimals, ints) to the right."""

    def cell(value: object) -> str:
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    text = [all(isinstance(row[i], str) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if left else v.rjust(w) for v, w, left in zip(values, widths, text, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in cells)])
