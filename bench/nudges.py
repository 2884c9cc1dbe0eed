"""Benchmark the exercise nudges: the sweep that plans a day of nudges, and the program page.

    .venv/bin/python -m bench.nudges --postgres      # a throw-away PostgreSQL database (the target)
    .venv/bin/python -m bench.nudges                 # SQLite (temporary file)

Loads the demo clinic plus ``--programs`` (5,000) patients, each with an active program every
day at a time spread from 06:00 to 21:00 Toronto time, three exercises each. Then, at 00:05
local time:

* **sweep**: ``plan_nudges`` in one unit of work (commit included), as the worker's job runs
  it: the first sweep plans the day's 5,000 nudges; the next ones plan nothing (the cost of
  running it every five minutes). Target: the first under 2 s on PostgreSQL.
* **page**: ``GET /p/<token>`` through Flask's test client (server time only), 300 requests
  after 20 warm-ups, interleaved with ``GET /healthz`` in the same run for scale. Target: p95
  under 30 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from datetime import date, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bench.common import SECRET, load_average, percentile, scratch_database, seed_demo, settle
from booking_service import create_app
from booking_service.clinic.models import Location, Practitioner
from booking_service.db import Database
from booking_service.exercises.models import Exercise
from booking_service.exercises.nudges import plan_nudges
from booking_service.exercises.programs import ItemSpec, create_program, program_token
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient

TORONTO = ZoneInfo("America/Toronto")
DAY = date(2026, 11, 24)  # a Tuesday
NOW = datetime.combine(DAY, clock(0, 5), tzinfo=TORONTO)
SWEEP_TARGET_S = 2.0
PAGE_TARGET_P95_MS = 30.0


def load_programs(database: Database, count: int) -> list[str]:
    """``count`` patients with a program each; returns a few program tokens."""
    rng = random.Random(7)
    tokens = []
    with database.unit_of_work() as s:
        location = s.scalars(select(Location).order_by(Location.id)).first()
        practitioners = [p.id for p in s.scalars(select(Practitioner).order_by(Practitioner.id))]
        exercises = [
            Exercise(
                key=f"bench-{n}",
                name_en=f"Exercise {n}",
                name_fr=f"Exercice {n}",
                instructions_en="Lie on your back, knees bent. Breathe out and tighten your belly; hold, then relax.",
                instructions_fr="Couché sur le dos, genoux pliés. Expirez et serrez le ventre; tenez, puis relâchez.",
                cautions_en="Stop if pain spreads down the leg.",
                cautions_fr="Arrêtez si la douleur descend dans la jambe.",
                default_reps=10,
                default_sets=2,
            )
            for n in range(3)
        ]
        s.add_all(exercises)
        s.flush()
        for i in range(count):
            patient = Patient(
                first_name="Bench",
                last_name=f"Patient {i}",
                phone=f"+1416{5550000 + i:07d}"[:12],
                language="fr" if i % 3 == 0 else "en",
                sms_consent=True,
                exercise_sms_consent=True,
            )
            s.add(patient)
            s.flush()
            program = create_program(
                s,
                patient_id=patient.id,
                practitioner_id=practitioners[i % len(practitioners)],
                location_id=location.id,
                items=[ItemSpec(exercise_id=e.id) for e in exercises],
                days=list(range(7)),
                time_of_day=clock(6 + rng.randrange(15), rng.randrange(60)),
                start=DAY - timedelta(days=14),
                secret_key=SECRET,
                now=NOW,
            )
            if i < 50:
                tokens.append(program_token(program, SECRET))
    return tokens


def sweep(database: Database, now: datetime) -> tuple[int, float, float]:
    """(nudges planned, wall seconds, this process's CPU seconds) of one sweep, commit included."""
    started, started_cpu = time.perf_counter(), time.process_time()
    with database.unit_of_work() as s:
        planned = plan_nudges(s, now=now)
    return planned, time.perf_counter() - started, time.process_time() - started_cpu


def measure(client, paths: list[str], requests: int, warmup: int = 20) -> tuple[list[float], list[float]]:
    for n in range(warmup):
        assert client.get(paths[n % len(paths)]).status_code == 200
    wall, cpu = [], []
    for n in range(requests):
        started, started_cpu = time.perf_counter(), time.thread_time()
        response = client.get(paths[n % len(paths)])
        cpu.append((time.thread_time() - started_cpu) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return wall, cpu


def run(url: str, *, programs: int, requests: int, engine: str) -> bool:
    database = Database(url)
    seed_demo(database, now=NOW)
    started = time.perf_counter()
    tokens = load_programs(database, programs)
    print(f"\n### {engine}: {programs} active programs (loaded in {time.perf_counter() - started:.0f} s)\n")
    settle()
    first, first_s, first_cpu = sweep(database, NOW)
    again = [sweep(database, NOW + timedelta(minutes=5 * n)) for n in range(1, 4)]
    with database.unit_of_work() as s:
        rows = s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "nudge"))
    print("| sweep | nudges planned | wall s | CPU s (this process) |")
    print("|---|---:|---:|---:|")
    print(f"| first of the day | {first} | {first_s:.2f} | {first_cpu:.2f} |")
    for planned, seconds, cpu in again:
        print(f"| again 5 minutes later | {planned} | {seconds:.2f} | {cpu:.2f} |")
    print(f"\nnudge rows after the sweeps: {rows}\n")

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "RATELIMIT_ENABLED": False})
    client = app.test_client()
    # The page at noon local: a day half logged is the common case; the clock is the page's own.
    page_wall, page_cpu, health_wall, health_cpu = [], [], [], []
    for _ in range(3):  # interleaved rounds, so both see the same machine load
        w, c = measure(client, [f"/p/{t}" for t in tokens], requests // 3)
        page_wall += w
        page_cpu += c
        w, c = measure(client, ["/healthz"], requests // 3)
        health_wall += w
        health_cpu += c
    print("| request | wall p50 ms | wall p95 ms | wall max ms | CPU p50 ms | CPU p95 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, wall, cpu in (("program page /p/<token>", page_wall, page_cpu), ("/healthz", health_wall, health_cpu)):
        print(
            f"| {label} | {percentile(wall, 50):.1f} | {percentile(wall, 95):.1f} | {max(wall):.1f} "
            f"| {percentile(cpu, 50):.1f} | {percentile(cpu, 95):.1f} |"
        )
    ratio = percentile(page_wall, 95) / percentile(health_wall, 95)
    print(f"\nprogram page p95 / healthz p95 (same run): {ratio:.1f}x")
    app.extensions["database"].dispose()
    database.dispose()
    ok_sweep = first == programs and first_s < SWEEP_TARGET_S and all(p == 0 for p, _, _ in again)
    ok_page = percentile(page_wall, 95) < PAGE_TARGET_P95_MS
    print(
        f"sweep target {SWEEP_TARGET_S:.0f} s: {'met' if ok_sweep else 'MISSED'}; "
        f"page p95 target {PAGE_TARGET_P95_MS:.0f} ms: {'met' if ok_page else 'MISSED'}"
    )
    return ok_sweep and ok_page


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", action="store_true", help="use a scratch PostgreSQL database")
    parser.add_argument("--programs", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, load {load_average()}")
    with scratch_database("bench_nudges", postgres=args.postgres) as (url, engine):
        ok = run(url, programs=args.programs, requests=args.requests, engine=engine)
    print(f"(load {load_average()} at the end)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
