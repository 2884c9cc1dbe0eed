"""Benchmark: bookings per second through gunicorn, as a ratio of ``/healthz`` requests per
second measured the same way in the same run; booking latency and CPU; availability over HTTP.

    .venv/bin/python -m bench.booking                      # this checkout, about two minutes
    .venv/bin/python -m bench.booking --before c282e09     # and REV, interleaved, about four
    .venv/bin/python -m bench.booking --floor              # and the stack's floor (bench/floor_app.py)

Each side (this checkout, and with ``--before REV`` a ``git worktree`` of REV made in a
temporary folder) gets its own throw-away PostgreSQL database (``BENCH_PG_ADMIN_URL``, see
``bench/common.py``), migrated and loaded with the demo clinic by that side's own code, and its
own gunicorn: the stack's ``web`` command (``gunicorn --config gunicorn.conf.py``, that side's
file) with ``--workers 4`` and the stack's environment (production settings, JSON logs, rate
limits in this machine's Redis; see ``tests/support/stack.py``). No worker runs: a booking
writes its outbox rows and nothing is sent.

Then ``--rounds`` rounds; in each, every side in turn (the order alternates between rounds, so
neither always goes first on a machine that is shared and noisy) measures:

* **bookings**: ``--chunk`` visits (the 30-minute follow-up at Downtown, from four days ahead,
  none overlapping another) booked with ``POST /api/v1/appointments`` by ``--clients`` threads,
  each request a client of its own (``X-Forwarded-For``: the per-client rate limit never binds).
  Every answer must be 201. Rate = bookings / wall time; latency p50/p95 per request; CPU per
  booking from ``/proc``: gunicorn (master and workers) and PostgreSQL's backends of that
  database.
* **healthz**: ``--clients`` threads send ``GET /healthz`` (no database) for as many requests
  as there were bookings times ``--healthz-factor``, the same way (a new connection per request,
  ``urllib``). The figure is **bookings/s / healthz/s**: the request handling, the client and
  the machine's load cancel out (issue 13's target: at least 0.25).
* **availability**: one sequential client, ``--availability`` requests of each of two searches,
  alternating: (a) one practitioner, 7 days; (b) "anyone": every practitioner offering the
  follow-up at Downtown (four of the demo's five: the fifth only gives massages), 28 days; both
  from a week ahead, on the calendar the bookings so far have filled. p50/p95. This is the
  availability-over-HTTP figure of issue 13 (``bench/availability.py`` stays in-process: the
  search alone, against its floor).

With ``--floor``, a third side is measured the same way in the same rounds (bookings and
healthz; no searches): ``bench/floor_app.py`` under the same gunicorn command and environment,
a booking-shaped request with the booking's round trips and none of its work, on an empty
database of its own. Its ratio is the highest a booking can reach on this stack and machine.

Everything started is stopped, and the databases and the worktree removed, also on Ctrl-C or
SIGTERM. Figures and the command that made them: docs/benchmarks.md ("Hot paths (issue 13)").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # also runnable as a plain script
    sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    PG_ADMIN_URL,
    create_database,
    drop_database,
    load_average,
    percentile,
    table,
)
from bench.scale import Meter, book_all, free_slots  # noqa: E402
from tests.support.stack import Process, free_port, http, stack_environment, wait_for_http  # noqa: E402

WEB_PROCESSES = 4
WARM_UP = 16  # bookings per side before timing, by every client (imports, pools, each worker)
FOLLOW_UP_MINUTES = 30
RATIO_TARGET = 0.25

# Run by each side's own code (cwd and PYTHONPATH: its tree): its migrations, its demo clinic.
PREPARE = """
import sys
from datetime import UTC, datetime
from booking_service import demo, migrate
from booking_service.db import Database
url, secret = sys.argv[1], sys.argv[2]
migrate.upgrade(url)
database = Database(url)
with database.unit_of_work() as session:
    demo.seed(session, secret_key=secret, now=datetime.now(UTC), appointments=0)
database.dispose()
"""


class BenchError(RuntimeError):
    """A setup step failed; the message says which and how to fix it."""


@dataclass
class Side:
    """One revision under test: its tree, database and gunicorn, and what was measured."""

    label: str
    tree: Path
    database: str
    floor: bool = False  # bench/floor_app.py rather than the app
    url: str = ""
    web: Process | None = None
    base: str = ""
    slots: list[dict] = field(default_factory=list)
    service_id: int = 0
    location_id: int = 0
    practitioner_id: int = 0
    anyone: int = 0  # practitioners offering the service at the location
    booked: int = 0
    booking_wall: float = 0.0
    healthz_count: int = 0
    healthz_wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    web_cpu: float = 0.0
    postgres_cpu: float = 0.0
    searches: dict[str, list[float]] = field(default_factory=dict)
    slot_counts: dict[str, int] = field(default_factory=dict)

    @property
    def booking_rate(self) -> float:
        return self.booked / self.booking_wall

    @property
    def healthz_rate(self) -> float:
        return self.healthz_count / self.healthz_wall


# --- setup and teardown ------------------------------------------------------------------------


def check_services(redis_url: str) -> None:
    import psycopg
    import redis

    try:
        psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5).close()
    except psycopg.Error as exc:
        raise BenchError(f"PostgreSQL is not reachable at {PG_ADMIN_URL} (set BENCH_PG_ADMIN_URL): {exc}") from None
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise BenchError(f"Redis is not reachable at {redis_url} (the stack keeps rate limits there): {exc}") from None


def add_worktree(rev: str, folder: Path) -> Path:
    """A detached ``git worktree`` of ``rev`` under ``folder``."""
    resolved = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if resolved.returncode != 0:
        raise BenchError(f"--before {rev}: not a commit of this repository")
    tree = folder / f"before-{resolved.stdout.strip()[:9]}"
    made = subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), resolved.stdout.strip()],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        raise BenchError(f"git worktree add failed: {made.stderr.strip()}")
    return tree


def remove_worktree(tree: Path) -> None:
    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)
    subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], capture_output=True)


def side_environment(side: Side, *, redis_url: str, log_dir: Path) -> dict[str, str]:
    env = stack_environment(
        "web",
        database_url=side.url,
        redis_url=redis_url,
        smtp_port=free_port(),  # nothing is sent: no worker runs
        web_port=8000,  # PUBLIC_BASE_URL only
        tmp_path=log_dir,
        WEB_CONCURRENCY=str(WEB_PROCESSES),
    )
    env["PYTHONPATH"] = str(side.tree)
    return env


def start(side: Side, *, redis_url: str, log_dir: Path) -> None:
    """Database, migrations and demo clinic by the side's code, then its gunicorn (the floor:
    an empty database and bench/floor_app.py)."""
    side.url = create_database(side.database)
    env = side_environment(side, redis_url=redis_url, log_dir=log_dir)
    if not side.floor:
        prepare(side, env)
    port = free_port()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    app = "bench.floor_app:create_floor_app()" if side.floor else "booking_service:create_app()"
    argv = [gunicorn, "--config", "gunicorn.conf.py", app]
    argv += ["--bind", f"127.0.0.1:{port}", "--workers", str(WEB_PROCESSES)]
    log = log_dir / f"web-{side.database}.log"
    with log.open("w") as out:
        popen = subprocess.Popen(argv, cwd=side.tree, env=env, stdout=out, stderr=subprocess.STDOUT)
    side.web = Process(f"web {side.label}", popen, log)
    side.base = f"http://127.0.0.1:{port}"
    ready = "/healthz" if side.floor else "/readyz"
    if not wait_for_http(f"{side.base}{ready}", side.web, timeout=120):
        raise BenchError(f"{side.label}: gunicorn did not answer {ready}:\n{side.web.text()[-3000:]}")


def prepare(side: Side, env: dict[str, str]) -> None:
    prepared = subprocess.run(
        [sys.executable, "-c", PREPARE, side.url, env["SECRET_KEY"]],
        cwd=side.tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if prepared.returncode != 0:
        raise BenchError(f"{side.label}: migrating and loading the demo clinic failed:\n{prepared.stderr[-3000:]}")


def stop(side: Side) -> None:
    if side.web is not None:
        side.web.stop(timeout=30)
    if side.url:
        try:
            drop_database(side.database)
        except Exception as exc:  # report it and go on cleaning up
            print(f"could not drop database {side.database}: {exc}", file=sys.stderr)


def get_json(side: Side, path: str) -> dict:
    status, _, body = http(f"{side.base}{path}")
    if status != 200:
        raise BenchError(f"{side.label}: GET {path} answered {status}: {body[:500]!r}\n{side.web.text()[-3000:]}")
    return json.loads(body)


def catalogue(side: Side) -> None:
    """The 30-minute follow-up, Downtown (the demo's first location) and its first practitioner."""
    services = get_json(side, "/api/v1/services")["services"]
    locations = get_json(side, "/api/v1/locations")["locations"]
    side.service_id = next(s["id"] for s in services if s["duration_minutes"] == FOLLOW_UP_MINUTES)
    side.location_id = locations[0]["id"]
    people = get_json(side, f"/api/v1/practitioners?location_id={side.location_id}&service_id={side.service_id}")[
        "practitioners"
    ]
    if not people:
        raise BenchError(f"{side.label}: no practitioner offers the follow-up at {locations[0]['name']}")
    side.practitioner_id = people[0]["id"]
    side.anyone = len(people)


# --- measurements ------------------------------------------------------------------------------


def healthz(base: str, count: int, clients: int) -> float:
    """Wall seconds for ``count`` ``GET /healthz`` by ``clients`` threads; every answer must be 200."""
    remaining = iter(range(count))
    lock = threading.Lock()
    failures: list[int | str] = []

    def client() -> None:
        while True:
            with lock:
                if next(remaining, None) is None:
                    return
            try:
                status = http(f"{base}/healthz")[0]
            except OSError as exc:  # a thread's exception would be lost in its future
                status = f"{type(exc).__name__}: {exc}"
            if status != 200:
                with lock:
                    failures.append(status)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    wall = time.perf_counter() - started
    if failures:
        raise BenchError(f"/healthz answered {failures[:5]}")
    return wall


def searches(side: Side) -> dict[str, str]:
    first = date.today() + timedelta(days=7)
    query = f"{side.base}/api/v1/availability?service_id={side.service_id}&location_id={side.location_id}"
    return {
        "1 practitioner, 7 days": f"{query}&practitioner_id={side.practitioner_id}"
        f"&start={first}&end={first + timedelta(days=6)}",
        f"anyone ({side.anyone} practitioners), 28 days": f"{query}&start={first}&end={first + timedelta(days=27)}",
    }


def availability(side: Side, repeat: int) -> None:
    """``repeat`` requests of each search, alternating, one at a time."""
    urls = searches(side)
    for _ in range(repeat):
        for name, url in urls.items():
            started = time.perf_counter()
            status, _, body = http(url)
            elapsed = (time.perf_counter() - started) * 1000
            if status != 200:
                raise BenchError(f"{side.label}: availability answered {status}: {body[:300]!r}")
            side.searches.setdefault(name, []).append(elapsed)
            side.slot_counts[name] = len(json.loads(body)["slots"])


def round_of(side: Side, *, chunk: int, clients: int, healthz_factor: int, repeat: int, number: int) -> None:
    meter = Meter(side.database)
    part, side.slots = side.slots[:chunk], side.slots[chunk:]
    ids = {"service_id": side.service_id, "location_id": side.location_id}
    meter.start([side.web.popen.pid])
    tag = f"Round{number}{uuid.uuid4().hex[:4]}"
    # Patients numbered apart from the warm-up's and other rounds' (their phones differ too).
    wall, latencies = book_all([side.base], part, tag, first=1000 * (number + 1), clients=clients, **ids)
    cpu = meter.stop()
    if len(latencies) != len(part):  # a client thread died (its exception stays in its future)
        raise BenchError(f"{side.label}: {len(part) - len(latencies)} of {len(part)} bookings got no answer")
    side.booked += len(part)
    side.booking_wall += wall
    side.latencies += latencies
    side.web_cpu += cpu["measured"]
    side.postgres_cpu += cpu["postgres"]
    count = chunk * healthz_factor
    side.healthz_wall += healthz(side.base, count, clients)
    side.healthz_count += count
    if not side.floor:
        availability(side, repeat)


# --- the run -----------------------------------------------------------------------------------


_STARTED = time.monotonic()


def note(text: str) -> None:
    """Progress on stderr (the figures go to stdout)."""
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {text}", file=sys.stderr, flush=True)


def _interrupt(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.booking", description=__doc__.split("\n")[0])
    parser.add_argument("--before", metavar="REV", help="also measure REV (a git worktree of it), interleaved")
    parser.add_argument("--rounds", type=int, default=4, help="rounds; each side books --chunk per round")
    parser.add_argument("--chunk", type=int, default=60, help="bookings per side per round")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--healthz-factor", type=int, default=5, help="/healthz requests per booking")
    parser.add_argument("--floor", action="store_true", help="also measure the stack's floor (bench/floor_app.py)")
    parser.add_argument("--availability", type=int, default=30, help="requests of each search per side per round")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _interrupt)  # cleaned up as on Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored (`&`)
    redis_url = f"redis://127.0.0.1:6379/{random.randint(1, 15)}"
    sides: list[Side] = []
    loads = [load_average()]
    folder = Path(tempfile.mkdtemp(prefix="bench-booking-"))
    tree: Path | None = None
    try:
        check_services(redis_url)
        sides.append(Side("this checkout", REPO, f"bench_booking_after_{os.getpid()}"))
        if args.before:
            tree = add_worktree(args.before, folder)
            sides.append(Side(f"before ({args.before})", tree, f"bench_booking_before_{os.getpid()}"))
        if args.floor:
            sides.append(Side("floor (bench/floor_app.py)", REPO, f"bench_booking_floor_{os.getpid()}", floor=True))
        needed = WARM_UP + args.rounds * args.chunk
        for side in sides:
            note(f"{side.label}: database, migrations, demo clinic, gunicorn")
            start(side, redis_url=redis_url, log_dir=folder)
            note(f"{side.label}: warming up")
            if side.floor:  # any body of the booking's shape: the floor reads it and books nothing
                side.slots = [{"practitioner_id": 1, "start": "2030-01-07T09:00:00+00:00"}] * needed
            else:
                catalogue(side)
                try:
                    side.slots = free_slots(side.base, side.service_id, side.location_id, needed)
                except AssertionError as exc:
                    raise BenchError(
                        f"{side.label}: {exc} for {needed} bookings: ask fewer (--rounds, --chunk)"
                    ) from None
            warm, side.slots = side.slots[:WARM_UP], side.slots[WARM_UP:]
            ids = {"service_id": side.service_id, "location_id": side.location_id}
            book_all([side.base], warm, "Warm", first=0, clients=args.clients, **ids)
            healthz(side.base, 4 * WARM_UP, args.clients)
            if not side.floor:
                availability(side, 2)
                side.searches.clear()
        for number in range(args.rounds):
            note(f"round {number + 1} of {args.rounds}")
            for side in sides if number % 2 == 0 else sides[::-1]:
                round_of(
                    side,
                    chunk=args.chunk,
                    clients=args.clients,
                    healthz_factor=args.healthz_factor,
                    repeat=args.availability,
                    number=number,
                )
            loads.append(load_average())
    except RuntimeError as exc:  # BenchError, and bench.scale's "bookings failed"
        print(f"bench.booking: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench.booking: interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not stop the clean-up
            signal.signal(number, signal.SIG_IGN)
        for side in sides:
            note(f"{side.label}: stopping gunicorn, dropping {side.database}")
            stop(side)
        if tree is not None:
            note(f"removing the worktree {tree}")
            remove_worktree(tree)
        subprocess.run(["rm", "-rf", str(folder)])
        if args.before:  # a worktree interrupted while being made: its folder is gone, forget it
            subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], capture_output=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    report(sides, args, loads)
    return 0


def report(sides: list[Side], args, loads: list[str]) -> None:
    print(
        f"bench.booking: {args.rounds} rounds of {args.chunk} bookings per side by {args.clients} clients, "
        f"then {args.healthz_factor}x as many /healthz; gunicorn --workers {WEB_PROCESSES} per side on "
        f"PostgreSQL; {os.cpu_count()} cores"
    )
    print(f"load average (1 min) at the start and after each round: {', '.join(loads)}")
    print()
    print(
        table(
            [
                "side",
                "bookings",
                "bookings/s",
                "healthz/s",
                "ratio",
                "p50 ms",
                "p95 ms",
                "CPU ms/booking: web",
                "PostgreSQL",
            ],
            [
                (
                    s.label,
                    s.booked,
                    s.booking_rate,
                    s.healthz_rate,
                    s.booking_rate / s.healthz_rate,
                    percentile(s.latencies, 50),
                    percentile(s.latencies, 95),
                    1000 * s.web_cpu / s.booked,
                    1000 * s.postgres_cpu / s.booked,
                )
                for s in sides
            ],
        )
    )
    print(f"ratio = bookings/s / healthz/s; issue 13's target: at least {RATIO_TARGET}")
    print()
    rows = []
    for s in sides:
        for name, samples in s.searches.items():
            rows.append((s.label, name, s.slot_counts[name], len(samples), *(percentile(samples, p) for p in (50, 95))))
    print(table(["side", "availability over HTTP", "slots", "requests", "p50 ms", "p95 ms"], rows))
    apps = [s for s in sides if not s.floor]
    floor = next((s for s in sides if s.floor), None)
    if floor is not None:
        print()
        floor_ratio = floor.booking_rate / floor.healthz_rate
        for s in apps:
            print(
                f"{s.label}: booking:healthz ratio {s.booking_rate / s.healthz_rate:.3f} = "
                f"{s.booking_rate / s.healthz_rate / floor_ratio:.0%} of the floor's {floor_ratio:.3f}"
            )
    if len(apps) == 2:
        after, before = apps
        print()
        print(
            f"this checkout / before: bookings/s {after.booking_rate / before.booking_rate:.2f}x, "
            f"booking:healthz ratio {(after.booking_rate / after.healthz_rate):.3f} vs "
            f"{(before.booking_rate / before.healthz_rate):.3f}, web CPU per booking "
            f"{after.web_cpu / after.booked * 1000:.1f} vs {before.web_cpu / before.booked * 1000:.1f} ms"
        )


if __name__ == "__main__":
    sys.exit(main())
