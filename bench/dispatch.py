"""Benchmark: the outbox worker against a Twilio that answers in 50 ms, on PostgreSQL.

    .venv/bin/python -m bench.dispatch            # about three minutes on 2 cores

Creates its own PostgreSQL database on the server of ``BENCH_PG_ADMIN_URL`` (dropped at the
end, see ``bench/common.py``) and a standalone FakeTwilio process, then measures:

1. **throughput**: due SMS rows sent per second by one and by two ``python -m scheduler``
   processes (rate = rows / (last ``sent_at`` - first ``sent_at``), so start-up is excluded),
   and the workers' CPU time per message;
2. **bare client**: the same number of processes and threads doing nothing but
   ``Client.messages.create`` with the twilio SDK (and the app's HTTP client settings)
   against the same fake, in the same run: the ceiling the worker's database work, checks
   and bookkeeping are compared with;
3. **lateness**: rows due at a steady 50 messages a second for a while, two workers;
   lateness = ``sent_at - due_at``; p50/p99/max with a 1 s and with the default 5 s poll;
4. **memory**: each worker's peak RSS (``VmHWM`` in ``/proc/<pid>/status``);
5. **crashes** (``--crash``, instead of the above): rows due at a steady rate, two workers, one
   of them SIGKILLed every ``--kill-every`` seconds and restarted; lateness p50/p95/max and
   throughput (rows / (last ``sent_at`` - first ``due_at``)), the rows each kill stranded
   (``sending`` under the dead worker's claim, waiting for lease and reaper), and any message
   Twilio got twice.

    .venv/bin/python -m bench.dispatch --crash    # about a minute

Targets (docs/benchmarks.md, "Dispatch"): two workers >= 200 messages/s on 2 cores, >= 0.7x
the bare client, lateness p99 <= poll interval + 1 s, RSS <= 150 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # also runnable as a plain script
    sys.path.insert(0, str(REPO))

ACCOUNT_SID = "AC" + "0" * 30 + "01"
AUTH_TOKEN = "fake-twilio-auth-token-0001"
FROM_NUMBER = "+15005550006"
PATIENTS = 200
TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- plumbing


def start_fake(latency_ms: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_twilio", "--port", "0", "--latency-ms", str(latency_ms)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    return process, process.stdout.readline().strip()


def fake_control(base_url: str, path: str, method: str = "GET") -> dict:
    request = urllib.request.Request(f"{base_url}{path}", method=method, data=b"{}" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def seed(database) -> list[tuple[int, str]]:
    """The clinic and PATIENTS patients consenting to texts; returns (patient id, phone)."""
    from booking_service.clinic.models import ClinicSettings, Location
    from booking_service.patients.models import Patient

    with database.unit_of_work() as s:
        s.add(ClinicSettings(id=1, name="Bench Physio", phone="+14165550100", timezone="America/Toronto"))
        s.add(Location(name="Main", address="1 Main St", timezone="America/Toronto"))
        patients = [
            Patient(first_name=f"P{n}", last_name="Bench", phone=f"+1416555{n:04d}", sms_consent=True)
            for n in range(PATIENTS)
        ]
        s.add_all(patients)
        s.flush()
        return [(p.id, p.phone) for p in patients]


def insert_rows(database, patients, due_times: list[datetime]) -> None:
    """Texts as a reply is planned (a body, no template: never held for quiet hours, never
    capped, no template rendering, so the figures are the dispatch path's), due at ``due_times``."""
    from sqlalchemy import insert

    OutboxMessage = _outbox_model()

    now = datetime.now(UTC)
    rows = []
    for n, due in enumerate(due_times):
        patient_id, phone = patients[n % len(patients)]
        rows.append(
            {
                "patient_id": patient_id,
                "channel": "sms",
                "kind": "reply",
                "to": phone,
                "body": f"Bench Physio: thanks, your visit is confirmed (ref {n:06d}).",
                "payload": {},
                "due_at": due,
                "next_attempt_at": due,
                "status": "pending",
                "attempts": 0,
                "dedupe_key": f"bench:{uuid.uuid4().hex}",
                "created_at": now,
                "updated_at": now,
            }
        )
    with database.unit_of_work() as s:
        for start in range(0, len(rows), 1000):
            s.execute(insert(OutboxMessage), rows[start : start + 1000])


def _outbox_model():
    # The model's home before the outbox package, so the same bench measures both versions.
    try:
        from booking_service.outbox.models import OutboxMessage
    except ImportError:
        from booking_service.messaging.models import OutboxMessage
    return OutboxMessage


def clear_rows(database) -> None:
    from sqlalchemy import text

    with database.engine.begin() as conn:
        conn.execute(text("TRUNCATE outbox_messages RESTART IDENTITY"))


def sent_rows(database) -> list[tuple[datetime, datetime, str]]:
    from sqlalchemy import select

    m = _outbox_model()

    with database.unit_of_work() as s:
        return [tuple(r) for r in s.execute(select(m.due_at, m.sent_at, m.status))]


def count_unsent(database) -> int:
    from sqlalchemy import func, select

    m = _outbox_model()

    with database.unit_of_work() as s:
        return s.scalar(select(func.count()).where(m.status.not_in(("sent", "delivered", "failed", "skipped"))))


def count_stranded(database, pid: int) -> int:
    """Rows left ``sending`` under a claim of the (dead) worker process ``pid``: they wait for
    their lease to run out and the reaper."""
    from sqlalchemy import func, select

    m = _outbox_model()

    with database.unit_of_work() as s:
        return s.scalar(select(func.count()).where(m.status == "sending", m.claimed_by.like(f"%:{pid}:%")))


def wait_all_sent(database, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while count_unsent(database):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count_unsent(database)} rows still unsent after {timeout}s")
        time.sleep(0.25)


class Workers:
    """``count`` ``python -m scheduler`` processes; their logs in ``log_dir``."""

    def __init__(
        self, count: int, *, db_url: str, fake_url: str, threads: int, poll: float, log_dir: Path, lease: float = 30
    ):
        self.log_dir = log_dir
        self.env = env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "SECRET_KEY": "bench-secret",
            "INSTANCE_DIR": str(log_dir),
            "PUBLIC_BASE_URL": "http://bench.local",
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": FROM_NUMBER,
            "TWILIO_API_BASE_URL": fake_url,
            "SCHEDULER_POLL_SECONDS": str(poll),
            "SCHEDULER_THREADS": str(threads),
            "SCHEDULER_LEASE_SECONDS": str(lease),
        }
        self.logs = [log_dir / f"worker-{uuid.uuid4().hex[:6]}.log" for _ in range(count)]
        self.processes = []
        for path in self.logs:
            with path.open("w") as log:
                self.processes.append(
                    subprocess.Popen([sys.executable, "-m", "scheduler"], cwd=REPO, env=env, stdout=log, stderr=log)
                )

    def kill_and_restart(self, index: int) -> int:
        """SIGKILL worker ``index`` wherever it is, and start a fresh one in its place.
        Returns the pid killed."""
        killed = self.processes[index].pid
        self.processes[index].send_signal(signal.SIGKILL)
        self.processes[index].wait()
        path = self.log_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
        self.logs[index] = path
        with path.open("w") as log:
            self.processes[index] = subprocess.Popen(
                [sys.executable, "-m", "scheduler"], cwd=REPO, env=self.env, stdout=log, stderr=log
            )
        return killed

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not all(" started: " in path.read_text() for path in self.logs):
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start:\n" + "\n".join(p.read_text() for p in self.logs))
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User + system CPU time of all the workers so far."""
        total = 0
        for process in self.processes:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / TICKS

    def peak_rss_mb(self) -> list[float]:
        peaks = []
        for process in self.processes:
            status = Path(f"/proc/{process.pid}/status").read_text()
            line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
            peaks.append(int(line.split()[1]) / 1024)
        return peaks

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            if process.wait(timeout=60) != 0:
                raise RuntimeError(f"worker exited with {process.returncode}")


# --------------------------------------------------------------------------- measurements


def measure_throughput(database, patients, *, processes: int, messages: int, **worker_args) -> dict:
    clear_rows(database)
    fake_control(worker_args["fake_url"], "/_fake/reset", "POST")
    insert_rows(database, patients, [datetime.now(UTC)] * messages)
    workers = Workers(processes, **worker_args)
    try:
        workers.wait_ready()
        cpu_before = workers.cpu_seconds()
        wait_all_sent(database, timeout=600)
        cpu = workers.cpu_seconds() - cpu_before
        rss = workers.peak_rss_mb()
    finally:
        workers.stop()
    rows = sent_rows(database)
    if any(status != "sent" for _, _, status in rows):
        raise RuntimeError("some rows were not sent")
    received = len(fake_control(worker_args["fake_url"], "/_fake/messages")["messages"])
    if received != messages:
        raise RuntimeError(f"Twilio received {received} messages for {messages} rows")
    sent = sorted(s for _, s, _ in rows)
    span = (sent[-1] - sent[0]).total_seconds()
    return {"rate": (len(sent) - 1) / span, "cpu_ms": cpu / messages * 1000, "rss": rss}


def measure_lateness(database, patients, *, processes: int, rate: float, seconds: float, **worker_args) -> dict:
    from bench.common import percentile

    clear_rows(database)
    fake_control(worker_args["fake_url"], "/_fake/reset", "POST")
    workers = Workers(processes, **worker_args)
    try:
        workers.wait_ready()
        t0 = datetime.now(UTC) + timedelta(seconds=2)
        count = int(rate * seconds)
        insert_rows(database, patients, [t0 + timedelta(seconds=n / rate) for n in range(count)])
        time.sleep(max(0.0, (t0 - datetime.now(UTC)).total_seconds() + seconds))
        wait_all_sent(database, timeout=120)
        rss = workers.peak_rss_mb()
    finally:
        workers.stop()
    late = [(sent - due).total_seconds() for due, sent, _ in sent_rows(database)]
    return {
        "p50": percentile(late, 50),
        "p99": percentile(late, 99),
        "max": max(late),
        "rss": rss,
        "count": len(late),
    }


def measure_crashes(
    database, patients, *, processes: int, rate: float, seconds: float, kill_every: float, **worker_args
) -> dict:
    """Rows due at ``rate`` a second for ``seconds``; a random worker SIGKILLed and restarted
    every ``kill_every`` seconds until every row is final."""
    import random

    from bench.common import percentile

    clear_rows(database)
    fake_control(worker_args["fake_url"], "/_fake/reset", "POST")
    workers = Workers(processes, **worker_args)
    rng = random.Random(1)
    kills = 0
    stranded: list[int] = []
    try:
        workers.wait_ready()
        t0 = datetime.now(UTC) + timedelta(seconds=2)
        count = int(rate * seconds)
        insert_rows(database, patients, [t0 + timedelta(seconds=n / rate) for n in range(count)])
        deadline = time.monotonic() + seconds + 300
        while count_unsent(database) and time.monotonic() < deadline:
            time.sleep(kill_every)
            stranded.append(count_stranded(database, workers.kill_and_restart(rng.randrange(processes))))
            kills += 1
        wait_all_sent(database, timeout=120)
        workers.wait_ready()  # a worker still importing would die of the SIGTERM below
    finally:
        workers.stop()
    rows = sent_rows(database)
    late = [(sent - due).total_seconds() for due, sent, status in rows if status in ("sent", "delivered")]
    bodies = [m["body"] for m in fake_control(worker_args["fake_url"], "/_fake/messages")["messages"]]
    span = (max(sent for _, sent, _ in rows) - min(due for due, _, _ in rows)).total_seconds()
    return {
        "p50": percentile(late, 50),
        "p95": percentile(late, 95),
        "max": max(late),
        "rate": len(late) / span,
        "count": len(late),
        "kills": kills,
        "stranded": sum(stranded),
        "stranded_max": max(stranded, default=0),
        "duplicates": len(bodies) - len(set(bodies)),
    }


def baseline_child(base_url: str, threads: int, count: int, start_at: float) -> None:
    """One process of the bare-client baseline: ``threads`` threads, ``count`` creates in all.
    Prints its start, end and CPU time as JSON."""
    from twilio.rest import Client

    from booking_service.integrations.twilio.transport import make_http_client

    # The HTTP client the app's transport uses (pooled session, a timeout, the base URL).
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=make_http_client(base_url, 10))
    _ = client.messages
    remaining = iter(range(count))
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                n = next(remaining, None)
            if n is None:
                return
            client.messages.create(to=f"+1416556{n % 10000:04d}", from_=FROM_NUMBER, body=f"baseline {n}")

    time.sleep(max(0.0, start_at - time.time()))
    started, cpu = time.time(), time.process_time()
    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    result = {"start": started, "end": time.time(), "count": count, "cpu": time.process_time() - cpu}
    print(json.dumps(result), flush=True)


def measure_baseline(fake_url: str, *, processes: int, threads: int, messages: int) -> dict:
    fake_control(fake_url, "/_fake/reset", "POST")
    start_at = time.time() + 5  # after every process has imported the SDK (kept light for that)
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.dispatch",
                "--baseline-child",
                fake_url,
                str(threads),
                str(messages // processes),
                str(start_at),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    results = [json.loads(child.communicate(timeout=600)[0]) for child in children]
    if max(r["start"] for r in results) > start_at + 0.5:
        print("warning: a baseline process started late; its rate is understated", flush=True)
    total = sum(r["count"] for r in results)
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {"rate": total / span, "cpu_ms": sum(r["cpu"] for r in results) / total * 1000}


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--threads", type=int, default=8, help="SCHEDULER_THREADS of each worker (default 8)")
    parser.add_argument("--messages", type=int, default=3000, help="rows per throughput run")
    parser.add_argument("--offered-rate", type=float, default=50, help="messages/s for the lateness runs")
    parser.add_argument("--offered-seconds", type=float, default=20)
    parser.add_argument("--crash", action="store_true", help="only the crash run (see the module docstring)")
    parser.add_argument("--kill-every", type=float, default=3.0)
    parser.add_argument("--lease", type=float, default=5.0, help="SCHEDULER_LEASE_SECONDS of the crash run")
    parser.add_argument("--skip-lateness", action="store_true", help="throughput only")
    args = parser.parse_args()

    from bench.common import temporary_database
    from booking_service.db import Database

    print(
        f"# bench.dispatch: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, Twilio latency "
        f"{args.latency_ms:.0f} ms, {args.threads} threads per worker, PostgreSQL",
        flush=True,
    )
    fake, fake_url = start_fake(args.latency_ms)
    try:
        with contextlib.ExitStack() as stack:
            db_url = stack.enter_context(temporary_database("bench_dispatch"))
            database = Database(db_url)
            stack.callback(database.dispose)
            patients = seed(database)
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-dispatch-")))
            common = {"db_url": db_url, "fake_url": fake_url, "threads": args.threads, "log_dir": log_dir}
            if args.crash:
                crash = measure_crashes(
                    database,
                    patients,
                    processes=2,
                    rate=args.offered_rate,
                    seconds=args.offered_seconds,
                    kill_every=args.kill_every,
                    poll=1.0,
                    lease=args.lease,
                    **common,
                )
                print(
                    f"crashes: {crash['count']} rows at {args.offered_rate:.0f} msg/s offered, 2 workers, lease "
                    f"{args.lease:.0f} s, one SIGKILLed every {args.kill_every:.0f} s ({crash['kills']} kills): "
                    f"lateness p50 {crash['p50']:.2f} s, p95 {crash['p95']:.2f} s, max {crash['max']:.2f} s; "
                    f"{crash['rate']:.1f} msg/s; stranded by kills: {crash['stranded']} rows "
                    f"(at most {crash['stranded_max']} per kill); sent twice: {crash['duplicates']}",
                    flush=True,
                )
                return 0
            rates = {}
            for n in (1, 2):
                base = measure_baseline(fake_url, processes=n, threads=args.threads, messages=args.messages)
                ours = measure_throughput(database, patients, processes=n, messages=args.messages, poll=1.0, **common)
                rates[n] = ours["rate"]
                print(
                    f"throughput, {n} worker(s): {ours['rate']:.0f} msg/s, {ours['cpu_ms']:.2f} ms CPU/msg; "
                    f"bare SDK client, {n} process(es): {base['rate']:.0f} msg/s, {base['cpu_ms']:.2f} ms CPU/msg; "
                    f"ratio {ours['rate'] / base['rate']:.2f}; peak RSS {max(ours['rss']):.0f} MB "
                    f"(load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
            print(f"two workers / one worker: {rates[2] / rates[1]:.2f}x", flush=True)
            for poll in () if args.skip_lateness else (1.0, 5.0):
                late = measure_lateness(
                    database,
                    patients,
                    processes=2,
                    rate=args.offered_rate,
                    seconds=args.offered_seconds,
                    poll=poll,
                    **common,
                )
                print(
                    f"lateness at {args.offered_rate:.0f} msg/s offered for {args.offered_seconds:.0f} s "
                    f"({late['count']} rows), 2 workers, poll {poll:.0f} s: p50 {late['p50']:.2f} s, "
                    f"p99 {late['p99']:.2f} s, max {late['max']:.2f} s (target p99 <= {poll + 1:.0f} s); "
                    f"peak RSS {max(late['rss']):.0f} MB",
                    flush=True,
                )
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--baseline-child":
        baseline_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
        sys.exit(0)
    sys.exit(main())
