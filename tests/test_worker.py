"""The worker process: APScheduler jobs, the thread pool, shutdown, the reaper and its lock.

Both engines, real time (the worker's clock is the wall clock), the real twilio SDK against
FakeTwilio. ``python -m scheduler`` itself is run as a subprocess and stopped with SIGTERM.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from booking_service.config import ConfigError, Settings, load_settings
from booking_service.db import Database, utcnow
from booking_service.outbox import claim
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient
from scheduler.worker import Worker, once_across_workers
from tests.conftest import SECRET
from tests.support.environ import settings_from, variables
from tests.support.fake_twilio import FakeTwilio

REPO = Path(__file__).resolve().parents[1]
PHONE = "+14165550123"


@pytest.fixture
def patient_id(database, make_clinic) -> int:
    make_clinic()
    with database.unit_of_work() as s:
        patient = Patient(first_name="Sam", last_name="Lee", phone=PHONE, sms_consent=True)
        s.add(patient)
        s.flush()
        return patient.id


def add_rows(database, patient_id: int, count: int, *, prefix="msg", **values) -> list[int]:
    now = utcnow()
    with database.unit_of_work() as s:
        fields = {"status": "pending", "attempts": 0, **values}
        rows = [
            OutboxMessage(
                patient_id=patient_id,
                channel="sms",
                kind="reply",
                body=f"{prefix} {n}",
                payload={},
                due_at=now,
                next_attempt_at=now,
                dedupe_key=f"test:{secrets.token_hex(8)}",
                **fields,
            )
            for n in range(count)
        ]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def statuses(database) -> dict[str, int]:
    with database.unit_of_work() as s:
        return dict(s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def worker_settings(db_url: str, fake: FakeTwilio, **overrides) -> Settings:
    values = {"DATABASE_URL": db_url, "SECRET_KEY": SECRET, "SCHEDULER_POLL_SECONDS": 0.2, "SCHEDULER_THREADS": 4}
    return settings_from(fake.environ(), variables(**{**values, **overrides}))


class Running:
    """A Worker running on a thread (signals are the subprocess test's business)."""

    def __init__(self, settings: Settings) -> None:
        self.worker = Worker(settings, database=Database(settings.DATABASE_URL))
        self.result: list[int] = []
        self.thread = threading.Thread(target=lambda: self.result.append(self.worker.run()), daemon=True)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, timeout: float = 20) -> int:
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not stop"
        return self.result[0]


# --------------------------------------------------------------------------- the loop


def test_the_worker_sends_due_messages_once_and_stops_with_status_0(db_url, database, fake, patient_id):
    ids = add_rows(database, patient_id, 10)
    running = Running(worker_settings(db_url, fake))
    with running:
        assert wait_for(lambda: statuses(database) == {"sent": 10}, timeout=15)
    assert running.result == [0]
    assert sorted(m["body"] for m in fake.messages) == sorted(f"msg {n}" for n in range(10))
    assert len(ids) == 10


def test_a_backlog_is_claimed_as_threads_free_up_not_once_per_poll(db_url, database, fake, patient_id):
    # 2 threads, a 5 s poll and 40 messages: one batch per poll would take 100 s.
    fake.latency = 0.02
    add_rows(database, patient_id, 40)
    started = time.monotonic()
    with Running(worker_settings(db_url, fake, SCHEDULER_POLL_SECONDS=5.0, SCHEDULER_THREADS=2)):
        assert wait_for(lambda: statuses(database) == {"sent": 40}, timeout=30)
        elapsed = time.monotonic() - started
    assert elapsed < 5, f"took {elapsed:.1f}s"
    assert len(fake.messages) == 40


def test_stop_lets_in_flight_sends_finish_and_record(db_url, database, fake, patient_id):
    fake.latency = 1.0
    add_rows(database, patient_id, 4)
    running = Running(worker_settings(db_url, fake))
    with running:
        assert wait_for(lambda: statuses(database).get("sending") == 4, timeout=10)
        assert running.stop() == 0
    assert statuses(database) == {"sent": 4}
    assert len(fake.messages) == 4


def test_rows_claimed_as_the_worker_stops_are_given_back(database, patient_id):
    ids = add_rows(database, patient_id, 3)
    now = utcnow()
    claimed = claim.claim_due(database, worker_id="w", now=now, limit=10)
    assert claim.release(database, claimed, worker_id="someone-else", now=now) == 0
    assert claim.release(database, claimed, worker_id="w", now=now) == 3
    with database.unit_of_work() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids))).all()
        assert {(r.status, r.attempts, r.claimed_by) for r in rows} == {("pending", 0, None)}


# --------------------------------------------------------------------------- the reaper


def test_the_worker_recovers_a_dead_workers_rows_reconciling_with_twilio(db_url, database, fake, patient_id):
    now = utcnow()
    values = {
        "status": "sending",
        "claimed_by": "dead:1:x",
        "claimed_at": now - timedelta(seconds=40),
        "lease_expires_at": now - timedelta(seconds=10),
        "attempts": 1,
        "to": PHONE,
    }
    [at_twilio] = add_rows(database, patient_id, 1, prefix="already sent", **values)
    [lost] = add_rows(database, patient_id, 1, prefix="never sent", **values)
    seeded = fake.seed_message(PHONE, "already sent 0", date_created=now - timedelta(seconds=39), status="sent")

    with Running(worker_settings(db_url, fake)):
        assert wait_for(lambda: statuses(database) == {"sent": 2}, timeout=15)
    with database.unit_of_work() as s:
        assert s.get(OutboxMessage, at_twilio).provider_id == seeded["sid"]
        assert s.get(OutboxMessage, lost).attempts == 2
    assert sorted(m["body"] for m in fake.messages) == ["already sent 0", "never sent 0"]


def test_default_lease_and_sweep_recover_within_60_seconds(db_url, fake):
    settings = worker_settings(db_url, fake, SCHEDULER_POLL_SECONDS=5.0)
    worker = Worker(settings, database=Database(db_url))
    try:
        assert settings.SCHEDULER_LEASE_SECONDS == 30
        assert worker.lease.total_seconds() + worker.reap_seconds <= 45
        # A live worker finishes a send well inside its lease.
        assert worker.transports.sms.timeout <= worker.lease.total_seconds() / 3
    finally:
        worker.drain()


def test_only_one_worker_at_a_time_holds_the_reaper_lock(database):
    other = Database(database.url)
    try:
        with (
            once_across_workers(database, "outbox-reaper") as first,
            once_across_workers(other, "outbox-reaper") as second,
        ):
            assert first is True
            assert second is (database.dialect != "postgresql")
        with once_across_workers(other, "outbox-reaper") as again:
            assert again is True  # released
    finally:
        other.dispose()


def test_scheduler_lease_seconds_is_parsed_strictly():
    base = {"SECRET_KEY": "k"}
    assert load_settings(base).SCHEDULER_LEASE_SECONDS == 30.0
    assert load_settings({**base, "SCHEDULER_LEASE_SECONDS": "12"}).SCHEDULER_LEASE_SECONDS == 12.0
    for junk in ("soon", "0.5", "-3"):
        with pytest.raises(ConfigError, match="SCHEDULER_LEASE_SECONDS"):
            load_settings({**base, "SCHEDULER_LEASE_SECONDS": junk})


# --------------------------------------------------------------------------- the process


def test_python_m_scheduler_sends_logs_and_exits_0_on_sigterm(db_url, database, fake, patient_id, tmp_path):
    add_rows(database, patient_id, 5)
    env = {
        **os.environ,
        **fake.environ(),
        "DATABASE_URL": db_url,
        "SECRET_KEY": SECRET,
        "INSTANCE_DIR": str(tmp_path),
        "SCHEDULER_POLL_SECONDS": "0.2",
        "SCHEDULER_THREADS": "2",
    }
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "scheduler"], cwd=REPO, env=env, stdout=out, stderr=out)
        try:
            assert wait_for(lambda: statuses(database) == {"sent": 5}, timeout=30), log.read_text()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
    text = log.read_text()
    sends = [line for line in text.splitlines() if " sms reply sent " in line]
    assert len(sends) == 5, text
    assert PHONE not in text  # numbers are masked in logs
    assert "SIGTERM" in text and "stopped: 5 sent, 0 failed" in text


def test_python_m_scheduler_rejects_a_bad_setting_with_status_2(tmp_path):
    env = {**os.environ, "SECRET_KEY": SECRET, "INSTANCE_DIR": str(tmp_path), "SCHEDULER_LEASE_SECONDS": "x"}
    result = subprocess.run(
        [sys.executable, "-m", "scheduler"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "SCHEDULER_LEASE_SECONDS" in result.stderr
