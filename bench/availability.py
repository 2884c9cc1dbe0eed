"""Availability benchmark: how long a free-slot search takes end to end on PostgreSQL.

    .venv/bin/python -m bench.availability [--repeat 200] [--warmup 20] [--appointments 2000]

Creates its own database ``bench_availability_<pid>``, migrates it, loads the demo clinic, then
writes ``--appointments`` rows for the five Downtown practitioners over the 28 days searched:
active visits fill their calendars (Downtown and Midtown hours) to about 85% with the demo's
services, and the remainder are cancelled rows, which the queries must skip. A few afternoons
of time off and one closure day are added too. The database is dropped at the end.

Two searches, as ``GET /api/v1/availability`` runs them:

(a) one practitioner, 7 days;  (b) the location's five practitioners ("anyone"), 28 days.

For each, measured with ``time.perf_counter`` in a fresh session per call (what a request gets):

whole    ``slots.find_slots``: the database fetch and the engine;
fetch    the statements ``load_calendars`` sends in a fresh transaction (the catalogue's
         version; busy appointments and time off in one UNION ALL: hours and closures come
         from the catalogue cache, clinic/cache.py), compiled once by SQLAlchemy and replayed raw on the DBAPI
         connection of the same pool (psycopg, sessions in UTC), rows fetched as plain tuples:
         the floor. Before measuring, the bench checks that ``find_slots`` sends exactly these
         SQL texts and parameters, so both fetch the same rows the same way;
load     ``slots.load_calendars`` alone: the fetch plus building the engine's input;
engine   ``availability.free_slots_any`` on calendars loaded beforehand (as ``load_calendars``
         returns them): pure computation, the busy index rebuilt on every call.

The four are interleaved within each repetition (the machine is shared and noisy, so a ratio
is only meaningful between figures of one run). Targets: p95 of "whole" <= 20 ms for (a) and
<= 60 ms for (b), and whole/fetch <= 2x.
"""

from __future__ import annotations

import argparse
import random
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import event, insert, select

from bench.common import load_average, seed_demo, settle, summary, table, temporary_database, timed_ms
from booking_service.clinic import cache
from booking_service.clinic.models import (
    ClinicSettings,
    Closure,
    Location,
    Practitioner,
    Service,
    TimeOff,
    WorkingHours,
)
from booking_service.db import Database
from booking_service.patients.models import Patient
from booking_service.scheduling import availability, slots
from booking_service.scheduling.models import Appointment

NOW = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)  # a Monday, 08:00 in Toronto
FIRST_DAY = date(2026, 11, 24)
SPAN_DAYS = 28
CLOSED_DAY = date(2026, 12, 8)  # "staff training": every location closed
UTILISATION = 0.85
SERVICE_NAME = "Follow-up (30 min)"
RATIO_TARGET = 2.0


# --- data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    active: int
    cancelled: int
    time_off: int


def load_data(database: Database, *, appointments: int, seed: int = 2026) -> Loaded:
    """Demo clinic plus ``appointments`` rows over the searched 28 days (see the module doc)."""
    seed_demo(database, now=NOW, appointments=0)
    rng = random.Random(seed)
    last_day = FIRST_DAY + timedelta(days=SPAN_DAYS - 1)
    with database.unit_of_work() as s:
        downtown = s.scalars(select(Location).where(Location.name == "Downtown")).one()
        tz = ZoneInfo(downtown.timezone)
        practitioners = list(s.scalars(select(Practitioner).order_by(Practitioner.id)))
        hours = list(s.scalars(select(WorkingHours)))

        s.add(Closure(location_id=None, day=CLOSED_DAY, name="Staff training", created_at=NOW))
        time_off: dict[int, tuple[datetime, datetime]] = {}
        for n, practitioner in enumerate(practitioners):  # one afternoon off each, week two
            day = FIRST_DAY + timedelta(days=6 + n)
            while day.weekday() > 4:
                day += timedelta(days=1)
            off = (_at(day, time(13), tz), _at(day, time(17), tz))
            time_off[practitioner.id] = off
            s.add(TimeOff(practitioner_id=practitioner.id, start_at=off[0], end_at=off[1], reason="Course"))

        patient_ids = _insert_patients(s, len(practitioners) * 150)
        pools = {p.id: patient_ids[i * 150 : (i + 1) * 150] for i, p in enumerate(practitioners)}
        durations = {
            p.id: [(svc.id, svc.duration_minutes, svc.buffer_minutes) for svc in p.services] for p in practitioners
        }

        active: list[dict] = []
        periods: list[tuple[int, int, datetime, datetime]] = []  # practitioner, location, start, end
        day = FIRST_DAY
        while day <= last_day:
            for wh in hours:
                if wh.weekday != day.weekday() or day == CLOSED_DAY:
                    continue
                pieces = [(wh.start_time, wh.end_time)]
                if wh.break_start is not None:
                    pieces = [(wh.start_time, wh.break_start), (wh.break_end, wh.end_time)]
                for start, end in pieces:
                    period = (_at(day, start, tz), _at(day, end, tz))
                    periods.append((wh.practitioner_id, wh.location_id, *period))
                    active += _fill(period, wh, durations[wh.practitioner_id], time_off[wh.practitioner_id], rng)
            day += timedelta(days=1)
        if len(active) > appointments:
            active = rng.sample(active, appointments)
        for row in active:  # one pool per practitioner, whose visits never overlap: nor do the patient's
            row["patient_id"] = rng.choice(pools[row["practitioner_id"]])
        cancelled = [
            _cancelled(rng.choice(periods), durations, patient_ids, rng) for _ in range(appointments - len(active))
        ]
        s.execute(insert(Appointment.__table__), [_complete(row) for row in active + cancelled])
    return Loaded(active=len(active), cancelled=len(cancelled), time_off=len(time_off))


def _at(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tz).astimezone(UTC)


def _insert_patients(s, count: int) -> list[int]:
    rows = [
        {
            "first_name": f"Bench{n}",
            "last_name": "Patient",
            "email": f"bench{n}@example.com",
            "created_at": NOW,
            "updated_at": NOW,
        }
        for n in range(count)
    ]
    return list(s.scalars(insert(Patient.__table__).returning(Patient.__table__.c.id), rows))


def _fill(period, wh, services, off, rng) -> list[dict]:
    """Back-to-back visits through one working period with random gaps, about UTILISATION full."""
    step = timedelta(minutes=15)
    cursor, end = period
    rows = []
    while cursor < end:
        service_id, minutes, buffer = rng.choice(services)
        visit_end = cursor + timedelta(minutes=minutes)
        busy_until = visit_end + timedelta(minutes=buffer)
        if visit_end > end:
            break
        if rng.random() > UTILISATION or (cursor < off[1] and off[0] < busy_until):
            cursor += step * rng.choice((1, 2, 3))  # a gap someone may still book
            continue
        rows.append(
            {
                "practitioner_id": wh.practitioner_id,
                "location_id": wh.location_id,
                "service_id": service_id,
                "start_at": cursor,
                "end_at": visit_end,
                "busy_until": busy_until,
                "status": "booked",
            }
        )
        cursor = busy_until
    return rows


def _cancelled(period, durations, patient_ids, rng) -> dict:
    practitioner_id, location_id, start, end = period
    service_id, minutes, buffer = rng.choice(durations[practitioner_id])
    quarters = max(0, int((end - start - timedelta(minutes=minutes)) / timedelta(minutes=15)))
    start_at = start + timedelta(minutes=15 * rng.randint(0, quarters))
    end_at = start_at + timedelta(minutes=minutes)
    return {
        "practitioner_id": practitioner_id,
        "location_id": location_id,
        "service_id": service_id,
        "patient_id": rng.choice(patient_ids),
        "start_at": start_at,
        "end_at": end_at,
        "busy_until": end_at + timedelta(minutes=buffer),
        "status": "cancelled",
        "cancelled_at": NOW,
        "cancelled_by": "patient",
    }


def _complete(row: dict) -> dict:
    nonce = secrets.token_hex(16)
    return {
        **row,
        "manage_nonce": nonce,
        "manage_token_hash": secrets.token_hex(32),
        "created_at": NOW,
        "updated_at": NOW,
    }


# --- the raw fetch -------------------------------------------------------------------------------


def raw_statements(
    dialect, *, location_id: int, ids: list[int], first_day: date, last_day: date, tz: ZoneInfo
) -> list[tuple[str, dict]]:
    """The SQL and parameters ``slots.load_calendars`` sends for this search in a fresh
    transaction (the catalogue's version, then the busy time; weekly hours and closures come from
    the process's catalogue cache), compiled by SQLAlchemy for ``dialect`` with the IN lists
    expanded, to replay raw."""
    span = availability.local_day_bounds(first_day, tz).start, availability.local_day_bounds(last_day, tz).end
    params = {
        "ids": ids,
        "location_id": location_id,
        "first_day": first_day,
        "last_day": last_day,
        "span_start": span[0],
        "span_end": span[1],
    }
    queries = slots._calendar_queries()
    statements = []
    for statement in (cache.version_query(), queries.busy):
        state = statement.compile(dialect=dialect).construct_expanded_state(params)
        statements.append((state.statement, state.parameters))
    return statements


def statements_sent(database: Database, run: Callable[[], object]) -> list[tuple[str, dict]]:
    """The SQL and parameters ``run`` sends through ``database``'s engine."""
    sent: list[tuple[str, dict]] = []

    def record(_conn, _cursor, statement, parameters, _context, _executemany) -> None:
        sent.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    return sent


def raw_fetch(dbapi_connection, statements: list[tuple[str, dict]]) -> int:
    """Run ``statements`` on the DBAPI connection and fetch every row as a plain tuple, with no
    SQLAlchemy result processing and no conversion. Returns the number of rows."""
    rows = 0
    with dbapi_connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
            rows += len(cursor.fetchall())
    return rows


# --- measuring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    practitioner_ids: list[int]
    days: int
    target_p95_ms: float


class Probe:
    """Runs each measured operation of one case in a fresh session, the objects a request would
    have loaded already in hand (their queries are not timed)."""

    def __init__(self, database: Database, case: Case, service_id: int, location_id: int) -> None:
        self.database, self.case = database, case
        self.service_id, self.location_id = service_id, location_id
        self.first_day = FIRST_DAY
        self.last_day = FIRST_DAY + timedelta(days=case.days - 1)
        with database.session() as s:
            args = self._args(s)
            self.calendars = slots.load_calendars(
                s,
                location=args["location"],
                practitioners=args["practitioners"],
                first_day=self.first_day,
                last_day=self.last_day,
            )
            self.options = slots.engine_options(args["clinic"], args["service"], NOW)
            self.slots = len(slots.find_slots(s, **args, first_day=self.first_day, last_day=self.last_day, now=NOW))
            self.busy = sum(len(c.busy) for c in self.calendars)
            self.statements = raw_statements(
                database.engine.dialect,
                location_id=self.location_id,
                ids=case.practitioner_ids,
                first_day=self.first_day,
                last_day=self.last_day,
                tz=ZoneInfo(args["location"].timezone),
            )
            self.rows = raw_fetch(s.connection().connection.dbapi_connection, self.statements)
        with database.session() as s:  # a fresh transaction, as "whole" runs in
            args = self._args(s)
            sent = statements_sent(
                database,
                lambda: slots.find_slots(s, **args, first_day=self.first_day, last_day=self.last_day, now=NOW),
            )
            if sent != self.statements:  # the floor must be the very SQL and parameters of "whole"
                raise RuntimeError(f"find_slots sent other statements than the raw fetch replays: {sent}")

    def _args(self, s) -> dict:
        return {
            "clinic": s.get(ClinicSettings, 1),
            "service": s.get(Service, self.service_id),
            "location": s.get(Location, self.location_id),
            "practitioners": [s.get(Practitioner, i) for i in self.case.practitioner_ids],
        }

    def whole(self) -> tuple[float, float]:
        with self.database.session() as s:
            args = self._args(s)
            return timed_ms(
                lambda: slots.find_slots(s, **args, first_day=self.first_day, last_day=self.last_day, now=NOW)
            )

    def load(self) -> tuple[float, float]:
        with self.database.session() as s:
            args = self._args(s)
            return timed_ms(
                lambda: slots.load_calendars(
                    s,
                    location=args["location"],
                    practitioners=args["practitioners"],
                    first_day=self.first_day,
                    last_day=self.last_day,
                )
            )

    def fetch(self) -> tuple[float, float]:
        with self.database.session() as s:
            self._args(s)  # the same untimed preamble as the others, so the connection is as warm
            raw = s.connection().connection.dbapi_connection
            return timed_ms(lambda: raw_fetch(raw, self.statements))

    def engine(self) -> tuple[float, float]:
        return timed_ms(
            lambda: availability.free_slots_any(
                self.calendars, first_day=self.first_day, last_day=self.last_day, **self.options
            )
        )


MEASURES = ("whole", "fetch", "load", "engine")
Samples = dict[tuple[int, str], list[tuple[float, float]]]


def measure(probes: list[Probe], *, repeat: int, warmup: int) -> Samples:
    """(wall, cpu) ms of every measure of every probe, interleaved within each repetition."""
    samples: Samples = {(i, m): [] for i in range(len(probes)) for m in MEASURES}
    for rep in range(warmup + repeat):
        for i, probe in enumerate(probes):
            # Rotate the order each repetition so no measure always runs first (or after another).
            order = MEASURES[rep % len(MEASURES) :] + MEASURES[: rep % len(MEASURES)]
            for name in order:
                run: Callable[[], tuple[float, float]] = getattr(probe, name)
                timing = run()
                if rep >= warmup:
                    samples[(i, name)].append(timing)
    return samples


def report(probes: list[Probe], samples: Samples) -> list[str]:
    """The table and one verdict line per case."""
    rows, verdicts = [], []
    for i, probe in enumerate(probes):
        wall = {m: summary([w for w, _ in samples[(i, m)]]) for m in MEASURES}
        cpu = {m: summary([c for _, c in samples[(i, m)]]) for m in MEASURES}
        for m in MEASURES:
            label = probe.case.label if m == MEASURES[0] else ""
            rows.append([label, m, wall[m]["p50"], wall[m]["p95"], wall[m]["p99"], cpu[m]["p50"], cpu[m]["p95"]])
        ratio50 = wall["whole"]["p50"] / wall["fetch"]["p50"]
        ratio95 = wall["whole"]["p95"] / wall["fetch"]["p95"]
        p95, target = wall["whole"]["p95"], probe.case.target_p95_ms
        verdicts.append(
            f"{probe.case.label}: {probe.rows} rows fetched ({probe.busy} busy intervals), {probe.slots} free slots; "
            f"whole p95 {p95:.2f} ms (target <= {target:.0f}: {'met' if p95 <= target else 'MISSED'}); "
            f"whole/fetch p50 {ratio50:.2f}x, p95 {ratio95:.2f}x "
            f"(target <= {RATIO_TARGET:.0f}x: {'met' if ratio50 <= RATIO_TARGET else 'MISSED'})"
        )
    headers = ["case", "measure", "p50", "p95", "p99", "cpu p50", "cpu p95"]
    return [table(headers, rows), *verdicts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.availability", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--appointments", type=int, default=2000)
    args = parser.parse_args(argv)

    with temporary_database("bench_availability") as url:
        # Database() opens PostgreSQL sessions in UTC (db.make_engine), as the app does.
        database = Database(url)
        try:
            loaded = load_data(database, appointments=args.appointments)
            with database.session() as s:
                location_id = s.scalars(select(Location.id).where(Location.name == "Downtown")).one()
                service_id = s.scalars(select(Service.id).where(Service.name == SERVICE_NAME)).one()
                everyone = list(
                    s.scalars(
                        select(Practitioner.id)
                        .where(Practitioner.locations.any(Location.id == location_id))
                        .order_by(Practitioner.id)
                    )
                )
            probes = [
                Probe(database, case, service_id, location_id)
                for case in (
                    Case("(a) one practitioner, 7 days", everyone[:1], 7, 20.0),
                    Case(f"(b) anyone ({len(everyone)}), {SPAN_DAYS} days", everyone, SPAN_DAYS, 60.0),
                )
            ]
            settle()
            load_before = load_average()
            samples = measure(probes, repeat=args.repeat, warmup=args.warmup)
            load_after = load_average()
        finally:
            database.dispose()

    print(
        f"PostgreSQL; {loaded.active} active + {loaded.cancelled} cancelled appointments over {SPAN_DAYS} days, "
        f"{loaded.time_off} time-off rows, 1 closure; service {SERVICE_NAME!r}; {args.repeat} repetitions "
        f"after {args.warmup} warm-up; ms (wall: perf_counter, cpu: process_time); "
        f"load average {load_before} before, {load_after} after"
    )
    print("\n".join(report(probes, samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
