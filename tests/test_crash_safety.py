"""Crash safety: workers SIGKILLed at random while sending never lose nor duplicate a message.

A standalone FakeTwilio process (200 ms per answer, so that many kills land mid-send) and
three ``python -m scheduler`` processes (4 threads, 3 s lease) share one database. Every
0.5-1 s one worker, chosen at random among those that have been working for a second, is
killed with SIGKILL (mid-claim, mid-send or mid-record: wherever it happens to be) and
restarted. When every row is final, Twilio must hold each message exactly once and every row
must be ``sent`` with the SID Twilio gave that message.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from booking_service.db import utcnow
from booking_service.outbox.models import FINAL_STATUSES, OutboxMessage
from booking_service.patients.models import Patient
from tests.conftest import SECRET
from tests.support.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_PHONE_NUMBER

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
WORKERS = 3
ROWS = {"postgresql": 500, "sqlite": 250}
# A worker is killed only after it has worked this long (start-up takes seconds on a busy box).
MIN_UPTIME = 1.0
DEADLINE_SECONDS = 100


@pytest.fixture
def fake_twilio_process(tmp_path):
    """The standalone fake: ``python -m tests.support.fake_twilio``; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_twilio", "--port", "0", "--latency-ms", "200"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "fake.log").open("w"),
        text=True,
    )
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), base_url
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def add_due_texts(database, count: int) -> dict[str, int]:
    """``count`` due SMS rows for 50 consenting patients; returns body -> row id."""
    now = utcnow()
    with database.unit_of_work() as s:
        patients = [
            Patient(first_name=f"P{n}", last_name="Test", phone=f"+1416555{n:04d}", sms_consent=True) for n in range(50)
        ]
        s.add_all(patients)
        s.flush()
        rows = [
            OutboxMessage(
                patient_id=patients[n % 50].id,
                channel="sms",
                kind="reply",
                to=patients[n % 50].phone,
                body=f"Lakeshore Physio: test message {n:04d}",
                payload={},
                due_at=now,
                next_attempt_at=now,
                status="pending",
                attempts=0,
                dedupe_key=f"crash:{n}:{secrets.token_hex(4)}",
            )
            for n in range(count)
        ]
        s.add_all(rows)
        s.flush()
        return {r.body: r.id for r in rows}


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def unfinished(database) -> int:
    with database.unit_of_work() as s:
        return s.scalar(select(func.count()).where(OutboxMessage.status.not_in((*FINAL_STATUSES, "sent"))))


def test_killed_workers_neither_lose_nor_duplicate_a_message(
    db_url, database, make_clinic, fake_twilio_process, tmp_path
):
    make_clinic()
    expected = add_due_texts(database, ROWS[database.dialect])
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SECRET_KEY": SECRET,
        "INSTANCE_DIR": str(tmp_path),
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": DEFAULT_PHONE_NUMBER,
        "TWILIO_API_BASE_URL": fake_twilio_process,
        "SCHEDULER_POLL_SECONDS": "0.2",
        "SCHEDULER_LEASE_SECONDS": "3",
        "SCHEDULER_THREADS": "4",
    }
    logs: list[Path] = []

    def start(slot: int) -> tuple[subprocess.Popen, Path]:
        path = tmp_path / f"worker-{slot}-{len(logs)}.log"
        logs.append(path)
        with path.open("w") as log:
            process = subprocess.Popen([sys.executable, "-m", "scheduler"], cwd=REPO, env=env, stdout=log, stderr=log)
        return process, path

    ready_since: dict[Path, float] = {}

    def ready(slot: int) -> bool:
        path = workers[slot][1]
        if path not in ready_since and " started: " in path.read_text():
            ready_since[path] = time.monotonic()
        return path in ready_since

    def working(slot: int) -> bool:
        return ready(slot) and time.monotonic() - ready_since[workers[slot][1]] >= MIN_UPTIME

    rng = random.Random(os.getpid())
    workers = [start(slot) for slot in range(WORKERS)]
    kills = 0
    started = time.monotonic()
    try:
        while unfinished(database) and time.monotonic() - started < DEADLINE_SECONDS:
            time.sleep(rng.uniform(0.5, 1.0))
            candidates = [slot for slot in range(WORKERS) if working(slot)]
            if not candidates:
                continue
            slot = rng.choice(candidates)
            workers[slot][0].send_signal(signal.SIGKILL)
            workers[slot][0].wait()
            kills += 1
            workers[slot] = start(slot)
        elapsed = time.monotonic() - started
        remaining = unfinished(database)
        # Stop the survivors cleanly: SIGTERM lets in-flight sends finish and record.
        assert wait_until(lambda: all(ready(slot) for slot in range(WORKERS)), timeout=30)
        for process, _ in workers:
            process.send_signal(signal.SIGTERM)
        for process, _ in workers:
            assert process.wait(timeout=30) == 0
    finally:
        for process, _ in workers:
            if process.poll() is None:
                process.kill()
                process.wait()

    with urllib.request.urlopen(f"{fake_twilio_process}/_fake/messages", timeout=10) as response:
        provider = json.load(response)
    with database.unit_of_work() as s:
        rows = {r.body: r for r in s.scalars(select(OutboxMessage))}
    log_text = "\n".join(path.read_text() for path in logs)
    recovered = log_text.count(" recovered message ")
    reconciled = len(re.findall(r" recovered message \d+ sms reply (?:sent|delivered) ", log_text))
    print(
        f"\n{database.dialect}: {len(expected)} messages, {kills} kills, {elapsed:.1f}s, "
        f"{recovered} rows recovered by the reaper ({reconciled} found at Twilio, not resent), "
        f"{sum(r.attempts > 1 for r in rows.values())} claimed more than once, "
        f"{log_text.count('Traceback')} tracebacks in the logs, truncated requests: {provider['rejected']}"
    )

    assert remaining == 0, f"{remaining} rows unfinished after {DEADLINE_SECONDS}s"
    assert kills >= 5
    counts = Counter(m["body"] for m in provider["messages"])
    duplicates = {body: n for body, n in counts.items() if n > 1}
    assert duplicates == {}, f"sent more than once: {duplicates}"
    assert set(counts) == set(expected), "some messages never reached Twilio"
    # A worker killed while writing its POST leaves a truncated request, which Twilio refuses;
    # anything else refused would be a real error.
    refused = [r for r in provider["rejected"] if r["code"] not in (21602, 21603, 21604)]
    assert refused == [], provider["rejected"]
    sid_of = {m["body"]: m["sid"] for m in provider["messages"]}
    wrong = [
        (body, r.status, r.provider_id)
        for body, r in rows.items()
        if r.status != "sent" or r.provider_id != sid_of.get(body)
    ]
    assert wrong == []
