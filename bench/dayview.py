"""Server time of the staff day view and of its live-update check, beside /healthz in the same run.

    .venv/bin/python -m bench.dayview --postgres     # a throw-away PostgreSQL database (the target)
    .venv/bin/python -m bench.dayview                # SQLite (temporary file)

Builds one location with 8 practitioners (07:30-19:00, half an hour for lunch) and books 120
appointments on one weekday through the real booking use case (three services, confirmations
and reminders planned), then signs a front-desk user in and times, through Flask's test client
(server time only: no network, no browser), in interleaved rounds so all see the same load:

* **day page**: ``GET /staff/?date=D`` (the whole page: navigation, board, script tag);
* **board fragment**: ``GET /staff/day/fragment?date=D&location_id=L`` without an ETag (what a
  poll costs when something changed);
* **live check, unchanged**: the same with ``If-None-Match`` (304: what every poll costs while
  nothing changes);
* **/readyz** (one ``SELECT 1``: a database round trip on this machine now) and **/healthz**
  (the app's floor: no database, no session), for scale.

Prints a Markdown table (docs/benchmarks.md, "Day view") with wall-clock and CPU percentiles,
each request's SQL statement count and its ratio to /healthz; exits 1 when the day page's p95
misses 50 ms or the unchanged check's p95 misses 5 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from datetime import date, timedelta
from datetime import time as clock

from sqlalchemy import event

from bench.common import SECRET, load_average, percentile, scratch_database, settle
from booking_service import create_app
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service, WorkingHours
from booking_service.db import Database, utcnow
from booking_service.errors import DomainError
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling import slots
from booking_service.staff.operations import create_user
from booking_service.usecases.booking import BookingRequest, book

PRACTITIONERS = 8
APPOINTMENTS = 120
DAY_TARGET_P95_MS = 50.0
CHECK_TARGET_P95_MS = 5.0
EMAIL, PASSWORD = "desk@bench.example", "bench-desk-password"


def next_weekday(today: date) -> date:
    """Two days ahead or later, Monday to Friday: every slot is bookable (no minimum notice)."""
    day = today + timedelta(days=2)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def build(database: Database) -> tuple[int, date, int]:
    """The clinic, the desk login and the day's bookings: (location id, day, appointments made)."""
    now = utcnow()
    rng = random.Random(11)
    with database.unit_of_work() as s:
        s.add(
            ClinicSettings(
                id=1,
                name="Bench Physio",
                phone="+14165550100",
                email="clinic@bench.example",
                country="CA",
                timezone="America/Toronto",
            )
        )
        location = Location(name="Downtown", address="1 King St W", timezone="America/Toronto")
        services = [
            Service(name="Initial assessment", kind="initial", duration_minutes=60, sort_order=0),
            Service(name="Follow-up (30 min)", kind="follow_up", duration_minutes=30, sort_order=1),
            Service(name="Follow-up (45 min)", kind="follow_up", duration_minutes=45, buffer_minutes=15, sort_order=2),
        ]
        people = [
            Practitioner(first_name=f"Physio{n}", last_name="Bench", profession="Physiotherapist")
            for n in range(PRACTITIONERS)
        ]
        s.add_all([location, *services, *people])
        for person in people:
            person.locations = [location]
            person.services = services
        s.flush()
        for person in people:
            for weekday in range(5):
                s.add(
                    WorkingHours(
                        practitioner_id=person.id,
                        location_id=location.id,
                        weekday=weekday,
                        start_time=clock(7, 30),
                        end_time=clock(19),
                        break_start=clock(12),
                        break_end=clock(12, 30),
                    )
                )
        create_user(s, EMAIL, role="frontdesk", password=PASSWORD, name="Bench Desk")
        s.flush()
        day = next_weekday(slots.local_date(now, location))
        clinic = s.get(ClinicSettings, 1)
        made = 0
        for n in range(APPOINTMENTS * 3):
            if made == APPOINTMENTS:
                break
            person = people[n % PRACTITIONERS]
            service = rng.choices(services, weights=(1, 4, 1))[0]  # mostly 30-minute follow-ups
            free = slots.find_slots(
                s,
                clinic=clinic,
                service=service,
                location=location,
                practitioners=[person],
                first_day=day,
                last_day=day,
                now=now,
            )
            if not free:
                continue
            slot = free[rng.randrange(len(free))]
            try:
                book(
                    s,
                    BookingRequest(
                        service_id=service.id,
                        location_id=location.id,
                        practitioner_id=person.id,
                        start=slot.start,
                        source="staff",
                        red_flags={"leg_weakness": True} if n % 17 == 0 else {},
                        patient=PatientDetails(
                            first_name=f"Bench{n}",
                            last_name="Patient",
                            email=f"bench{n}@example.com",
                            phone=f"+1416555{n:04d}",
                            sms_consent=True,
                            email_consent=True,
                        ),
                    ),
                    secret_key=SECRET,
                    now=now,
                )
            except DomainError:
                continue
            made += 1
        return location.id, day, made


def run(url: str, *, requests: int, engine: str) -> bool:
    database = Database(url)
    location_id, day, made = build(database)
    settle()
    # CSRF off for the one sign-in POST (a test client has no form to read the token from).
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "RATELIMIT_ENABLED": False, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    signed_in = client.post("/staff/login", data={"email": EMAIL, "password": PASSWORD})
    assert signed_in.status_code == 302, signed_in.status_code
    fragment = f"/staff/day/fragment?date={day.isoformat()}&location_id={location_id}"
    first = client.get(fragment)
    assert first.status_code == 200 and first.get_data(as_text=True).count('class="appt-link"') == made
    etag = first.headers["ETag"]
    cases = [
        ("day page `/staff/?date=D`", f"/staff/?date={day.isoformat()}&location={location_id}", {}, 200),
        ("board fragment, changed (200)", fragment, {}, 200),
        ("live check, unchanged (304)", fragment, {"If-None-Match": etag}, 304),
        ("`/readyz` (one `SELECT 1`)", "/readyz", {}, 200),
        ("`/healthz`", "/healthz", {}, 200),
    ]

    statements: list[int] = [0]

    def count(*_args) -> None:
        statements[0] += 1

    engine_ = app.extensions["database"].engine
    wall: dict[str, list[float]] = {label: [] for label, *_ in cases}
    cpu: dict[str, list[float]] = {label: [] for label, *_ in cases}
    per_request: dict[str, int] = {}
    for label, path, headers, status in cases:  # warm-up, and the statement count of each
        for _ in range(10):
            assert client.get(path, headers=headers).status_code == status, (label, status)
        event.listen(engine_, "before_cursor_execute", count)
        statements[0] = 0
        client.get(path, headers=headers)
        event.remove(engine_, "before_cursor_execute", count)
        per_request[label] = statements[0]
    rounds = 10
    for _ in range(rounds):
        for label, path, headers, status in cases:
            for _ in range(max(1, requests // rounds)):
                started, started_cpu = time.perf_counter(), time.thread_time()
                response = client.get(path, headers=headers)
                cpu[label].append((time.thread_time() - started_cpu) * 1000)
                wall[label].append((time.perf_counter() - started) * 1000)
                assert response.status_code == status, (label, response.status_code)
    size = len(client.get(cases[0][1]).get_data())

    health = percentile(wall["`/healthz`"], 50)
    print(
        f"\n### {engine}: {PRACTITIONERS} practitioners, {made} appointments on {day:%a %d %b %Y}, "
        f"{len(wall[cases[0][0]])} requests each, load {load_average()}\n"
    )
    print("| request | wall p50 ms | wall p95 ms | wall max ms | CPU p50 ms | CPU p95 ms | p50 / healthz p50 | SQL |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, *_ in cases:
        w, c = wall[label], cpu[label]
        print(
            f"| {label} | {percentile(w, 50):.1f} | {percentile(w, 95):.1f} | {max(w):.1f} "
            f"| {percentile(c, 50):.1f} | {percentile(c, 95):.1f} | {percentile(w, 50) / health:.1f}x "
            f"| {per_request[label]} |"
        )
    print(f"\nday page: {size // 1024} KiB of HTML")
    app.extensions["database"].dispose()
    database.dispose()
    day_p95 = percentile(wall[cases[0][0]], 95)
    check_p95 = percentile(wall[cases[2][0]], 95)
    ok = day_p95 < DAY_TARGET_P95_MS and check_p95 < CHECK_TARGET_P95_MS
    print(
        f"day page p95 target {DAY_TARGET_P95_MS:.0f} ms: {'met' if day_p95 < DAY_TARGET_P95_MS else 'MISSED'}; "
        f"unchanged check p95 target {CHECK_TARGET_P95_MS:.0f} ms: "
        f"{'met' if check_p95 < CHECK_TARGET_P95_MS else 'MISSED'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", action="store_true", help="use a scratch PostgreSQL database")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, load {load_average()}")
    with scratch_database("bench_dayview", postgres=args.postgres) as (url, engine):
        ok = run(url, requests=args.requests, engine=engine)
    print(f"(load {load_average()} at the end)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
