"""Benchmark: bookings per second with 1 and 2 web processes, messages per second with 1 and 2
workers, on PostgreSQL, with the stack's own commands and environment.

    .venv/bin/python -m bench.scale            # about three minutes on 2 cores

What runs is what ``docker-compose.yml`` runs (``tests/support/stack.py`` turns its services
into processes here, with the stack's environment: production settings, JSON logs, limits in
Redis): ``web`` is gunicorn with ``WEB_CONCURRENCY=1`` (one process), twice, on two ports;
``worker`` is ``python -m scheduler``, once or twice. They share a throw-away PostgreSQL
database (``BENCH_PG_ADMIN_URL``, see ``bench/common.py``) holding the demo clinic, this
machine's Redis, a Twilio double answering every request after ``--latency-ms`` (a process of
its own, ``tests/support/fake_twilio.py``) and an SMTP sink (``python -m aiosmtpd``, its own).

* **Bookings**: ``--clients`` threads of this process book visits (the 30-minute follow-up, four
  days ahead and on, none overlapping another) through ``POST /api/v1/appointments``, each
  request a client of its own (``X-Forwarded-For``: the limit of 20 a minute per client never
  binds), in chunks of ``--chunk``, alternately through the first web process only ("1 web") and
  through both in turn ("2 web"), so both setups see the same machine load. No worker runs
  meanwhile. Rate = bookings / the chunks' wall time (first request to last answer); every
  answer must be 201. Latency p50/p95 per request; web CPU per booking from ``/proc``.
* **Messages**: after every ``--chunks`` chunks, workers start on what those bookings planned (a
  confirmation e-mail with its calendar file and a confirmation text each: policy checks,
  templates, both transports) and drain it; alternately 1 and 2 workers. Rate = messages / (last
  ``sent_at`` - first ``sent_at``), so start-up is left out; every confirmation must end ``sent``.

Ratios are within this one run. The cores and the load average are printed: this process's
client threads, the doubles and PostgreSQL share the cores with the processes measured.
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
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # also runnable as a plain script
    sys.path.insert(0, str(REPO))

from bench.common import load_average, percentile, table, temporary_database  # noqa: E402
from bench.dispatch import start_fake  # noqa: E402
from tests.support.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_PHONE_NUMBER  # noqa: E402
from tests.support.stack import (  # noqa: E402
    Process,
    app_services,
    client_address,
    command,
    free_port,
    http,
    non_overlapping,
    stack_environment,
    wait_for_http,
    wait_until,
)

WARM_UP = 10  # bookings per round before timing (imports, pools, caches)
TICKS = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / TICKS, sum(fields) / TICKS


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


class Meter:
    """CPU seconds spent between :meth:`start` and :meth:`stop` by: the processes measured (and
    their children), PostgreSQL's server processes for the bench database, this process (the
    clients), and the whole machine (busy and total, every core)."""

    def __init__(self, database_name: str) -> None:
        self.database_name = database_name

    def _backends(self) -> dict[int, float]:
        import psycopg

        from bench.common import PG_ADMIN_URL

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            pids = [
                r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database_name,))
            ]
        return {pid: process_cpu(pid) for pid in pids}

    def start(self, pids: list[int]) -> None:
        self.pids = pids
        self.before = (cpu_seconds(pids), self._backends(), time.process_time(), machine_cpu())

    def stop(self) -> dict[str, float]:
        measured, backends, own, machine = self.before
        now_backends = self._backends()
        return {
            "measured": cpu_seconds(self.pids) - measured,
            "postgres": sum(cpu - backends.get(pid, 0.0) for pid, cpu in now_backends.items()),
            "connections": len(now_backends),  # PostgreSQL connections to the bench database now
            "clients": time.process_time() - own,
            "busy": machine_cpu()[0] - machine[0],
            "total": machine_cpu()[1] - machine[1],
        }


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` and their children (gunicorn's worker processes)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid, utime+stime
    wanted = set(pids)
    wanted |= {pid for pid, (ppid, _) in stats.items() if ppid in wanted}
    return sum(stats[pid][1] for pid in wanted if pid in stats) / TICKS


def start_smtp_sink(log_dir: Path) -> tuple[subprocess.Popen, int]:
    """aiosmtpd's Sink handler (accepts and drops every message) in a process of its own."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l", f"127.0.0.1:{port}"],
        cwd=REPO,
        stdout=(log_dir / "smtp.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    import socket

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    if not wait_until(listening, 30):
        raise RuntimeError("the SMTP sink did not start")
    return process, port


class Services:
    """The stack's web and worker processes for one setup; stopped with SIGTERM."""

    def __init__(self, env: dict[str, dict[str, str]], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[Process] = []

    def web(self, count: int) -> list[str]:
        bases = []
        for n in range(count):
            port = free_port()
            argv = command(app_services()["web"], "--bind", f"127.0.0.1:{port}")
            process = Process.start(f"web-{uuid.uuid4().hex[:4]}-{n}", argv, self.env["web"], self.log_dir)
            self.processes.append(process)
            bases.append((f"http://127.0.0.1:{port}", process))
        for base, process in bases:
            if not wait_for_http(f"{base}/readyz", process, timeout=120):
                raise RuntimeError(f"web did not start:\n{process.text()[-3000:]}")
        return [base for base, _ in bases]

    def workers(self, count: int) -> None:
        started = []
        for n in range(count):
            env = {**self.env["worker"], "WORKER_METRICS_PORT": str(free_port())}
            process = Process.start(
                f"worker-{uuid.uuid4().hex[:4]}-{n}", command(app_services()["worker"]), env, self.log_dir
            )
            self.processes.append(process)
            started.append(process)
        for process in started:
            if not wait_until(lambda p=process: " started: " in p.text() or not p.alive(), 120) or not process.alive():
                raise RuntimeError(f"worker did not start:\n{process.text()[-3000:]}")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            if process.stop(timeout=60) != 0:
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.text()[-2000:]}")
        self.processes.clear()


def catalogue(base: str) -> tuple[int, int]:
    """(the 30-minute follow-up's id, the first location's id), from the public API."""
    services = json.loads(http(f"{base}/api/v1/services")[2])["services"]
    locations = json.loads(http(f"{base}/api/v1/locations")[2])["locations"]
    return next(s["id"] for s in services if s["duration_minutes"] == 30), locations[0]["id"]


def free_slots(base: str, service_id: int, location_id: int, needed: int) -> list[dict]:
    """``needed`` free slots from four days ahead on, no two holding a practitioner at once."""
    found: list[dict] = []
    first = date.today() + timedelta(days=4)
    for chunk in range(3):  # up to 180 days, 60 at a time (the API's limit is 62)
        start = first + timedelta(days=60 * chunk)
        status, _, body = http(
            f"{base}/api/v1/availability?service_id={service_id}&location_id={location_id}"
            f"&start={start.isoformat()}&end={(start + timedelta(days=59)).isoformat()}"
        )
        if status != 200:
            break
        found += json.loads(body)["slots"]
    return non_overlapping(found, 30, needed)


def book_all(
    bases: list[str], slots: list[dict], tag: str, *, first: int, service_id: int, location_id: int, clients: int
) -> tuple[float, list[float]]:
    """Book every slot through ``bases`` in turn with ``clients`` threads, for patients numbered
    from ``first``; (wall seconds, latencies in ms)."""
    next_index = iter(range(len(slots)))
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []

    def client() -> None:
        while True:
            with lock:
                n = next(next_index, None)
            if n is None:
                return
            slot, n = slots[n], first + n
            body = {
                "service_id": service_id,
                "location_id": location_id,
                "practitioner_id": slot["practitioner_id"],
                "start": slot["start"],
                "patient": {
                    "first_name": f"Bench{n}",
                    "last_name": tag,
                    "email": f"bench{n}.{tag.lower()}@example.com",
                    "phone": f"+1416555{n % 10000:04d}",
                    "sms_consent": True,
                    "email_consent": True,
                },
            }
            started = time.perf_counter()
            status, _, answer = http(
                f"{bases[n % len(bases)]}/api/v1/appointments",
                method="POST",
                body=body,
                headers={"X-Forwarded-For": client_address()},
            )
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                if status != 201:
                    failures.append(f"{status} {answer[:200]!r}")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    wall = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} bookings failed, e.g. {failures[:3]}")
    return wall, latencies


def message_rate(database, tag: str, expected: int, timeout: float = 600) -> tuple[float, int]:
    """Wait until the ``expected`` confirmations of patients tagged ``tag`` are sent; (rate, count)."""
    from sqlalchemy import select

    from booking_service.outbox.models import OutboxMessage
    from booking_service.patients.models import Patient

    def rows():
        with database.unit_of_work() as session:
            return session.execute(
                select(OutboxMessage.status, OutboxMessage.sent_at)
                .join(Patient, OutboxMessage.patient_id == Patient.id)
                .where(Patient.last_name == tag, OutboxMessage.kind == "confirmation")
            ).all()

    deadline = time.monotonic() + timeout
    while True:
        found = rows()
        if len(found) == expected and all(status == "sent" for status, _ in found):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"confirmations not all sent: {sorted({s for s, _ in found})}")
        time.sleep(0.25)
    sent = sorted(at for _, at in found)
    return (len(sent) - 1) / (sent[-1] - sent[0]).total_seconds(), len(sent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drains", type=int, default=4, help="worker runs, alternately 1 and 2 workers")
    parser.add_argument(
        "--chunks", type=int, default=4, help="booking chunks before each drain, alternately 1 and 2 web"
    )
    parser.add_argument("--chunk", type=int, default=40, help="bookings per chunk")
    parser.add_argument("--clients", type=int, default=8, help="concurrent booking clients")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the Twilio double's answer time")
    parser.add_argument("--threads", type=int, default=8, help="SCHEDULER_THREADS per worker")
    args = parser.parse_args(argv)

    import redis

    from booking_service import demo
    from booking_service.db import Database, utcnow

    redis_url = f"redis://127.0.0.1:6379/{random.randint(1, 15)}"
    redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    booking = {1: Tally(), 2: Tally()}  # by web processes
    drains: list[tuple[int, float, int, dict]] = []  # workers, messages/s, messages, CPU seconds
    loads = [load_average()]
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder, temporary_database("bench_scale") as db_url:
        log_dir = Path(folder)
        database = Database(db_url)
        fake, fake_url = start_fake(args.latency_ms)
        smtp, smtp_port = start_smtp_sink(log_dir)
        web: Services | None = None
        try:
            options = {
                "database_url": db_url,
                "redis_url": redis_url,
                "smtp_port": smtp_port,
                "web_port": 8000,  # PUBLIC_BASE_URL only: links in the messages
                "tmp_path": log_dir,
                "SMS_BACKEND": "twilio",
                "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
                "TWILIO_FROM_NUMBER": DEFAULT_PHONE_NUMBER,
                "TWILIO_API_BASE_URL": fake_url,
                "SCHEDULER_THREADS": str(args.threads),
            }
            env = {
                "web": stack_environment("web", WEB_CONCURRENCY="1", **options),
                "worker": stack_environment("worker", **options),
            }
            web = Services(env, log_dir)
            meter = Meter(make_url(db_url).database)
            with database.unit_of_work() as session:
                demo.seed(session, secret_key=env["web"]["SECRET_KEY"], now=utcnow(), appointments=0)

            bases = web.web(2)  # two web services of one process each; "1 web" sends to the first only
            processes = {base: process for base, process in zip(bases, web.processes, strict=True)}
            service_id, location_id = catalogue(bases[0])
            ids = {"service_id": service_id, "location_id": location_id}
            per_drain = args.chunks * args.chunk
            slots = free_slots(bases[0], service_id, location_id, 2 * WARM_UP + args.drains * per_drain)
            warm, slots = slots[: 2 * WARM_UP], slots[2 * WARM_UP :]
            book_all(bases, warm, f"Warm{uuid.uuid4().hex[:4]}", first=0, clients=2, **ids)

            for drain in range(args.drains):
                tag = f"Drain{drain}{uuid.uuid4().hex[:4]}"
                mine, slots = slots[:per_drain], slots[per_drain:]
                for chunk in range(args.chunks):
                    webs = 1 if (drain * args.chunks + chunk) % 2 == 0 else 2
                    meter.start([processes[base].popen.pid for base in bases[:webs]])
                    part = mine[chunk * args.chunk : (chunk + 1) * args.chunk]
                    wall, latencies = book_all(
                        bases[:webs], part, tag, first=chunk * args.chunk, clients=args.clients, **ids
                    )
                    booking[webs].add(len(part), wall, latencies, meter.stop())
                workers = Services(env, log_dir)
                count = 1 if drain % 2 == 0 else 2
                workers.workers(count)
                meter.start([p.popen.pid for p in workers.processes] + [fake.pid, smtp.pid])
                rate, sent = message_rate(database, tag, expected=2 * per_drain)
                drains.append((count, rate, sent, meter.stop()))
                workers.stop()
                loads.append(load_average())
        finally:
            if web is not None:
                web.stop()
            for process in (fake, smtp):
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
            database.dispose()

    print(
        f"bench.scale: bookings in chunks of {args.chunk} by {args.clients} clients, alternately through 1 and 2 "
        f"web processes; {args.drains} drains, alternately 1 and 2 workers of {args.threads} threads; Twilio "
        f"double at {args.latency_ms:.0f} ms, SMTP sink; {os.cpu_count()} cores"
    )
    print(f"load average (1 min) at the start and after each drain: {', '.join(loads)}")
    print()
    print(
        table(
            [
                "web",
                "bookings",
                "bookings/s",
                "p50 ms",
                "p95 ms",
                "CPU ms/booking: web",
                "PostgreSQL",
                "clients",
                "busy",
                "connections",
            ],
            [
                (
                    webs,
                    t.count,
                    t.rate,
                    percentile(t.latencies, 50),
                    percentile(t.latencies, 95),
                    *(1000 * t.cpu[key] / t.count for key in ("measured", "postgres", "clients")),
                    f"{100 * t.cpu['busy'] / t.cpu['total']:.0f}%",
                    t.connections,
                )
                for webs, t in booking.items()
            ],
        )
    )
    print()
    print(
        table(
            [
                "drain",
                "workers",
                "messages",
                "messages/s",
                "CPU ms/message: workers+doubles",
                "PostgreSQL",
                "busy",
                "connections",
            ],
            [
                (
                    n + 1,
                    workers,
                    sent,
                    rate,
                    *(1000 * cpu[key] / sent for key in ("measured", "postgres")),
                    f"{100 * cpu['busy'] / cpu['total']:.0f}%",
                    cpu["connections"],
                )
                for n, (workers, rate, sent, cpu) in enumerate(drains)
            ],
        )
    )
    mean = {n: sum(d[1] for d in drains if d[0] == n) / max(1, sum(d[0] == n for d in drains)) for n in (1, 2)}
    print()
    print(
        f"bookings/s, 2 web / 1 web: {booking[2].rate / booking[1].rate:.2f}x; "
        f"messages/s (mean of drains), 1 worker {mean[1]:.1f}, 2 workers {mean[2]:.1f}: {mean[2] / mean[1]:.2f}x"
    )
    return 0


class Tally:
    """Bookings made in one setup, over all its chunks."""

    def __init__(self) -> None:
        self.count = 0
        self.wall = 0.0
        self.latencies: list[float] = []
        self.cpu: dict[str, float] = {}  # CPU seconds by whom (see Meter)
        self.connections = 0  # the most PostgreSQL connections seen after a chunk

    def add(self, count: int, wall: float, latencies: list[float], cpu: dict[str, float]) -> None:
        self.count += count
        self.wall += wall
        self.latencies += latencies
        for key, seconds in cpu.items():
            if key == "connections":
                self.connections = max(self.connections, int(seconds))
            else:
                self.cpu[key] = self.cpu.get(key, 0.0) + seconds

    @property
    def rate(self) -> float:
        return self.count / self.wall


if __name__ == "__main__":
    sys.exit(main())
