"""The worker process: APScheduler jobs that claim due outbox rows and send them.

The pipeline of one worker over the steps of :mod:`booking_service.outbox` (which states the
guarantees):

* **claim** job (every ``SCHEDULER_POLL_SECONDS``, on APScheduler's thread): claims due rows
  up to :func:`~booking_service.outbox.claim.claim_limit` in flight (at most twice
  ``SCHEDULER_THREADS``: one pool sending, one prepared and ready; fewer when sends are slow
  against the lease, so a kill strands few rows), prepares the batch in one transaction
  (policy checks, rendering, ``to``/body committed)
  and hands each sendable row to a bounded pool of ``SCHEDULER_THREADS`` send threads. While
  a backlog lasts it keeps claiming as room frees up (in batches of half a pool, not a row
  per transaction), so a busy worker never idles for a poll interval; APScheduler skips the
  ticks that pass meanwhile (``max_instances=1``, ``coalesce``).
* **send** threads: one provider call each, no database.
* **record** thread: writes finished sends back in batches, one transaction per batch.
* **nudge sweep** job (every :data:`NUDGE_SWEEP_SECONDS`, once across workers): plans the
  exercise nudges now due or soon due (:func:`booking_service.exercises.nudges.plan_nudges`,
  idempotent by its dedupe keys), which the claim job then sends like any other row.
* **retention** job (every :data:`RETENTION_SWEEP_SECONDS`, once across workers): purges the
  content of messages and patients' texts older than ``MESSAGE_RETENTION_DAYS``
  (:mod:`booking_service.usecases.retention`), in short transactions.
* **waitlist** job (every :data:`WAITLIST_SWEEP_SECONDS`, once across workers): a waitlist
  offer unanswered in the clinic's time passes to the next person, and freed times that can no
  longer be booked stop (:func:`booking_service.waitlist.offers.expire_offers`; a conditional
  update per offer and a unique index keep even two concurrent runs from offering twice).
* **reap** job (every few seconds, a third of the lease, at most 10 s): recovers rows whose
  worker died, reconciling SMS with Twilio first. Several workers may run; the reaper takes a
  PostgreSQL advisory lock so one sweeps at a time (on SQLite, one machine, it simply runs).

**The database going away** (a restart, a failover, a network cut) stops nothing for good: each
job's next run tries again (the pool pings a connection before lending it, so a dead one is
replaced), the worker logs the outage once (``database unreachable``) and its end (``database
reachable again``), and the record step keeps trying a batch of finished sends for up to a lease
rather than leave it to the reaper (which would resend an e-mail it cannot look up).

Jobs live in memory only: the outbox table is the state, so a restart loses nothing.
Every outcome is logged with the row's ``request_id`` (the web request that planned it),
``message_id``, ``kind``, ``channel`` and ``status``, and counted in the metrics
(:mod:`booking_service.observability.metrics`), which the worker serves itself on
``WORKER_METRICS_PORT`` when that and ``METRICS_TOKEN`` are set.
SIGTERM or SIGINT: stop claiming, give back rows claimed as the stop arrived, let in-flight
sends finish and record, exit 0. Never started inside gunicorn: web processes only write rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import queue
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.base import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import text
from sqlalchemy.orm import configure_mappers

from booking_service.audit import context as audit_context
from booking_service.audit.context import Actor, acting_as
from booking_service.config import Settings
from booking_service.db import Database, describe_unavailable, unavailable, utcnow
from booking_service.exercises.nudges import plan_nudges
from booking_service.integrations.registry import Transports, build_transports
from booking_service.observability import metrics
from booking_service.outbox.claim import claim_due, claim_limit, release
from booking_service.outbox.outcome import Outcome
from booking_service.outbox.prepare import Prepared, prepare
from booking_service.outbox.reconcile import recover_expired
from booking_service.outbox.record import record
from booking_service.outbox.send import Delivery, deliver, send_timeout_for
from booking_service.usecases import retention
from booking_service.waitlist.offers import expire_offers

logger = logging.getLogger("scheduler")

# How often the nudge sweep runs. It plans a day ahead of the nudge times (see
# exercises/nudges.py: today's, and tomorrow's within two hours), so a few minutes is plenty.
NUDGE_SWEEP_SECONDS = 300.0
# How often the retention job looks for content past MESSAGE_RETENTION_DAYS (cheap when none),
# and how long after start it first runs (not while a restarted worker catches up).
RETENTION_SWEEP_SECONDS = 3600.0
RETENTION_FIRST_DELAY = 60.0
# How often unanswered waitlist offers are passed on: offers wait two hours by default, so a
# minute late is nothing.
WAITLIST_SWEEP_SECONDS = 60.0
RECORD_GATHER_SECONDS = 0.02
RECORD_BATCH = 200
# While the database is unreachable, the recorder tries a batch again after these waits (the
# last repeats), for at most a lease.
RECORD_RETRY_WAITS = (0.25, 0.5, 1.0, 2.0)
# Weight of the newest send in the running mean of send times that claim_limit() uses.
SEND_TIME_WEIGHT = 0.1


def make_worker_id() -> str:
    """``host:pid:random``; fits ``outbox_messages.claimed_by`` (64 characters)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock`` from a job name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def once_across_workers(database: Database, name: str) -> Iterator[bool]:
    """Yields True when this process may run job ``name`` now, and no other worker will.

    PostgreSQL: a session advisory lock held on a dedicated connection for the duration (a
    crashed holder's lock dies with its connection). SQLite: always True (one machine).
    """
    if database.dialect != "postgresql":
        yield True
        return
    key = advisory_key(name)
    with database.engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()  # the lock is the session's, not the transaction's: do not sit idle in one
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


def _fields(outcome: Outcome) -> dict:
    """The structured fields of an outcome's log line (``LOG_FORMAT=json``)."""
    return {
        "request_id": outcome.request_id,
        "message_id": outcome.message_id,
        "kind": outcome.kind,
        "channel": outcome.channel,
        "status": outcome.status,
    }


def _skip_notice_filter(record: logging.LogRecord) -> bool:
    return "maximum number of running instances reached" not in record.getMessage()


class Worker:
    """One worker process. ``run()`` blocks until SIGTERM/SIGINT and returns the exit status."""

    def __init__(
        self,
        settings: Settings,
        *,
        database: Database | None = None,
        transports: Transports | None = None,
        worker_id: str | None = None,
        now_fn: Callable[[], datetime] = utcnow,
    ) -> None:
        lease_seconds = float(getattr(settings, "SCHEDULER_LEASE_SECONDS", 30.0))
        if not math.isfinite(lease_seconds) or lease_seconds < 1:
            raise ValueError(f"SCHEDULER_LEASE_SECONDS must be a finite number >= 1, not {lease_seconds!r}")
        self.settings = settings
        self.threads = settings.SCHEDULER_THREADS
        self.poll_seconds = settings.SCHEDULER_POLL_SECONDS
        self.lease = timedelta(seconds=lease_seconds)
        # Recovery within lease + one sweep: 30 s + 10 s by default, inside the 60 s promise.
        self.reap_seconds = min(10.0, max(lease_seconds / 3, 0.5))
        # Up to one pool's worth of prepared rows waits for a free thread, so the threads never
        # idle while the claim job prepares the next batch (their lease was renewed on
        # prepare; they wait milliseconds). While a backlog lasts, claim in batches of half a
        # pool rather than a row per transaction.
        self.capacity = 2 * self.threads
        self.send_seconds = 0.0  # running mean of the provider's answer time, for claim_limit()
        self.min_batch = max(1, self.threads // 2)
        self.worker_id = worker_id or make_worker_id()
        self.now_fn = now_fn
        self.database = database or Database(settings.DATABASE_URL, pool_size=4)
        self.transports = transports or build_transports(settings, send_timeout=send_timeout_for(self.lease))
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="send")
        self._in_flight = 0
        self._slots = threading.Condition()
        self._stopping = threading.Event()
        self._claiming = threading.Lock()  # held while the claim job runs
        self._reaping = threading.Lock()
        self._scheduler: BlockingScheduler | None = None
        self._deliveries: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()
        self._recorder = threading.Thread(target=self._record_loop, name="record", daemon=True)
        self._recorder.start()
        self.sent = 0  # counters, for logs and tests
        self.failed = 0
        self._unreachable_since: float | None = None  # monotonic time the database was lost
        self._outage_lock = threading.Lock()
        self.metrics_server = None  # the WORKER_METRICS_PORT server, while running

    # ------------------------------------------------------------------ jobs

    def claim_and_submit(self) -> int:
        """The claim job. Returns how many rows it handed to the pool.

        Runs until nothing more is due (or a stop): while a backlog lasts there is no point in
        waiting for the next tick, and APScheduler skips the ticks that pass meanwhile.
        """
        submitted = 0
        with self._claiming:
            while not self._stopping.is_set():
                with self._slots:
                    free = self.claim_room()
                    if free < (self.min_batch if submitted else 1):
                        # Backlog and a busy pool: wait for room rather than a poll interval.
                        self._slots.wait(0.5)
                        continue
                try:
                    ids = claim_due(
                        self.database, worker_id=self.worker_id, now=self.now_fn(), limit=free, lease=self.lease
                    )
                except Exception as exc:
                    self._job_failed("claiming due messages failed; retrying at the next poll", exc)
                    break
                self._database_back()
                with self._slots:
                    if self._stopping.is_set():
                        # Claimed as a stop arrived: give them back rather than wait out the lease.
                        release(self.database, ids, worker_id=self.worker_id, now=self.now_fn())
                        break
                    self._in_flight += len(ids)
                submitted += self._prepare_and_submit(ids)
                if len(ids) < free:
                    break  # drained: wait for the next tick
        if self._stopping.is_set():
            self._stop_scheduler()
        return submitted

    def claim_room(self) -> int:
        """How many more rows this worker may claim now (see :func:`claim_limit`)."""
        limit = claim_limit(
            threads=self.threads, lease=self.lease, send_seconds=self.send_seconds, ceiling=self.capacity
        )
        return limit - self._in_flight

    def _prepare_and_submit(self, ids: list[int]) -> int:
        """Prepare a claimed batch in one transaction; hand the sendable rows to the pool."""
        if not ids:
            return 0
        try:
            results = prepare(
                self.database,
                ids,
                settings=self.settings,
                worker_id=self.worker_id,
                now_fn=self.now_fn,
                lease=self.lease,
            )
        except Exception as exc:
            # Rolled back, so nothing was sent: give the rows back (or leave them to the reaper).
            self._job_failed(f"preparing {len(ids)} claimed messages failed; giving them back", exc)
            with contextlib.suppress(Exception):
                release(self.database, ids, worker_id=self.worker_id, now=self.now_fn())
            self._done(len(ids))
            return 0
        submitted = 0
        for result in results:
            if isinstance(result, Outcome):
                self._log(result)
                self._done(1)
            else:
                self._pool.submit(self._deliver, result)
                submitted += 1
        return submitted

    def _deliver(self, prepared: Prepared) -> None:
        try:
            delivery = deliver(prepared, self.transports)
        except Exception:
            # Not a provider's answer but a bug: the row stays "sending" and the reaper
            # reconciles it with the provider once the lease expires.
            logger.exception(
                "message %s: send crashed; the reaper will recover it",
                prepared.message_id,
                extra={"request_id": prepared.request_id, "message_id": prepared.message_id},
            )
            self._done(1)
            return
        # Unlocked: a lost update of a running mean only delays it by one sample.
        self.send_seconds += SEND_TIME_WEIGHT * (delivery.elapsed - self.send_seconds)
        self._deliveries.put(delivery)

    def _record_loop(self) -> None:
        """The recorder thread: records finished sends in batches, one transaction each."""
        # A thread's own context: what recording changes (an opt-out from a 21610) is the worker's.
        audit_context.bind(Actor("worker", label=self.worker_id))
        while True:
            first = self._deliveries.get()
            if first is None:
                return
            # Gather what finishes within a few milliseconds: one transaction for several sends
            # costs little more than for one, and the rows wait under their lease meanwhile.
            batch = [first]
            stop = False
            gather_until = time.monotonic() + RECORD_GATHER_SECONDS
            while len(batch) < RECORD_BATCH:
                try:
                    item = self._deliveries.get(timeout=max(0.0, gather_until - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            outcomes = self._record(batch)
            for outcome in outcomes:
                self._log(outcome)
            self._done(len(batch))
            if stop:
                return

    def _record(self, batch: list[Delivery]) -> list[Outcome]:
        """Record a batch of finished sends; while the database is unreachable, try again for up
        to a lease. The sends happened: recording them is the only way to keep them from being
        made again (the reaper can look texts up at Twilio, not e-mails at an SMTP server)."""
        deadline = time.monotonic() + self.lease.total_seconds()
        tries = 0
        while True:
            tries += 1
            try:
                outcomes = record(self.database, batch, worker_id=self.worker_id, now=self.now_fn())
            except Exception as exc:
                wait = RECORD_RETRY_WAITS[min(tries, len(RECORD_RETRY_WAITS)) - 1]
                if unavailable(exc) and time.monotonic() + wait < deadline:
                    self._job_failed(f"recording {len(batch)} sends failed; retrying", exc)
                    time.sleep(wait)
                    continue
                # The rows stay "sending" with their to and body: the reaper finds texts at the
                # provider and records them then; it sends an e-mail again.
                logger.exception("recording %d sends failed; the reaper will reconcile them", len(batch))
                return []
            if tries > 1:
                logger.info("recorded %d sends (try %d)", len(batch), tries)
            self._database_back()
            return outcomes

    def _job_failed(self, what: str, exc: Exception) -> None:
        """Log a job's failure: a database outage once (and briefly) per outage, anything else
        with its traceback."""
        if not unavailable(exc):
            logger.error("%s", what, exc_info=exc)
            return
        with self._outage_lock:
            first = self._unreachable_since is None
            if first:
                self._unreachable_since = time.monotonic()
        if first:
            logger.warning("database unreachable (%s): %s; the worker keeps trying", describe_unavailable(exc), what)
        else:
            logger.debug("database still unreachable: %s", what)

    def _database_back(self) -> None:
        with self._outage_lock:
            since, self._unreachable_since = self._unreachable_since, None
        if since is not None:
            logger.info("database reachable again after %.1fs; the worker resumes", time.monotonic() - since)

    def _log(self, outcome: Outcome) -> None:
        quiet = outcome.status in ("sent", "delivered", "pending", "skipped")
        logger.log(logging.INFO if quiet else logging.WARNING, "%s", outcome.describe(), extra=_fields(outcome))
        metrics.message_outcome(outcome.kind, outcome.channel, outcome.status, due_at=outcome.due_at, now=self.now_fn())
        if outcome.status in ("sent", "delivered"):
            self.sent += 1
        elif outcome.status == "failed":
            self.failed += 1

    def _done(self, count: int) -> None:
        with self._slots:
            self._in_flight -= count
            self._slots.notify_all()

    def reap(self) -> int:
        """The reaper job. Returns how many rows it settled."""
        if self._stopping.is_set():
            return 0
        with self._reaping:
            try:
                with (
                    acting_as(Actor("worker", label=self.worker_id)),
                    once_across_workers(self.database, "outbox-reaper") as mine,
                ):
                    if not mine:
                        return 0
                    outcomes = recover_expired(
                        self.database,
                        now=self.now_fn(),
                        transports=self.transports,
                        on_settled=self._log_recovered,
                        keep_going=lambda: not self._stopping.is_set(),
                    )
            except Exception as exc:
                self._job_failed("reaper failed; retrying at its next run", exc)
                return 0
        return len(outcomes)

    def sweep_nudges(self) -> int:
        """The nudge sweep job: one transaction, run by one worker at a time. Returns how many
        nudges it planned (0 when another worker holds the sweep)."""
        if self._stopping.is_set():
            return 0
        try:
            with once_across_workers(self.database, "nudge-sweep") as mine:
                if not mine:
                    return 0
                with self.database.unit_of_work() as session:
                    planned = plan_nudges(session, now=self.now_fn())
        except Exception as exc:
            self._job_failed("nudge sweep failed; retrying at its next run", exc)
            return 0
        if planned:
            logger.info("planned %d exercise nudges", planned)
        return planned

    def purge_content(self) -> retention.Purged:
        """The retention job: purge message and inbound text content older than
        ``MESSAGE_RETENTION_DAYS``, one short transaction per batch, run by one worker at a
        time. Returns what it purged (nothing when another worker holds the job)."""
        total = retention.Purged()
        if self._stopping.is_set():
            return total
        days = self.settings.MESSAGE_RETENTION_DAYS
        try:
            with (
                acting_as(Actor("worker", label=self.worker_id)),
                once_across_workers(self.database, "retention") as mine,
            ):
                while mine and not self._stopping.is_set():
                    with self.database.unit_of_work() as session:
                        purged = retention.purge_batch(session, now=self.now_fn(), days=days, limit=retention.BATCH)
                    total += purged
                    metrics.RETENTION_PURGED.labels(table="outbox_messages").inc(purged.messages)
                    metrics.RETENTION_PURGED.labels(table="inbound_messages").inc(purged.inbound_texts)
                    if purged.messages < retention.BATCH and purged.inbound_texts < retention.BATCH:
                        break
        except Exception as exc:
            self._job_failed("retention job failed; retrying at its next run", exc)
        if total.total:
            logger.info(
                "retention: purged the content of %d messages and %d inbound texts older than %d days",
                total.messages,
                total.inbound_texts,
                days,
            )
        return total

    def pass_on_waitlist_offers(self) -> int:
        """The waitlist job: one transaction, run by one worker at a time. Returns how many
        unanswered offers it passed on (0 when another worker holds the job)."""
        if self._stopping.is_set():
            return 0
        try:
            with (
                acting_as(Actor("worker", label=self.worker_id)),
                once_across_workers(self.database, "waitlist-offers") as mine,
            ):
                if not mine:
                    return 0
                with self.database.unit_of_work() as session:
                    passed = expire_offers(session, now=self.now_fn())
        except Exception:
            logger.exception("waitlist job failed; retrying at its next run")
            return 0
        if passed:
            logger.info("passed on %d unanswered waitlist offers", passed)
        return passed

    def _log_recovered(self, outcome: Outcome) -> None:
        if outcome.status != "lost":  # "lost": another reaper (SQLite) or the worker itself settled it
            logger.warning("recovered %s", outcome.describe(), extra=_fields(outcome))
            metrics.message_outcome(
                outcome.kind, outcome.channel, outcome.status, due_at=outcome.due_at, now=self.now_fn()
            )

    # ------------------------------------------------------------------ lifecycle

    def run(self, *, stop_requested: threading.Event | None = None) -> int:
        """Run until SIGTERM/SIGINT (or ``stop()``); returns 0 once in-flight sends are recorded.

        ``stop_requested``: a stop noted before the worker existed (a signal during start-up).
        """
        if "gunicorn" in os.environ.get("SERVER_SOFTWARE", "") or "gunicorn.arbiter" in sys.modules:
            raise RuntimeError("the worker must run as its own process (python -m scheduler), not in gunicorn")
        scheduler = BlockingScheduler(timezone=UTC)
        self._scheduler = scheduler
        now = datetime.now(UTC)
        common = {"trigger": "interval", "max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        scheduler.add_job(
            self.claim_and_submit,
            id="claim",
            name="claim due messages",
            seconds=self.poll_seconds,
            next_run_time=now,
            **common,
        )
        scheduler.add_job(
            self.reap, id="reap", name="recover expired leases", seconds=self.reap_seconds, next_run_time=now, **common
        )
        scheduler.add_job(
            self.purge_content,
            id="retention",
            name="purge old message content",
            seconds=RETENTION_SWEEP_SECONDS,
            next_run_time=now + timedelta(seconds=RETENTION_FIRST_DELAY),
            **common,
        )
        scheduler.add_job(
            self.sweep_nudges,
            id="nudges",
            name="plan exercise nudges",
            seconds=NUDGE_SWEEP_SECONDS,
            next_run_time=now,
            **common,
        )
        scheduler.add_job(
            self.pass_on_waitlist_offers,
            id="waitlist",
            name="pass on unanswered waitlist offers",
            seconds=WAITLIST_SWEEP_SECONDS,
            next_run_time=now,
            **common,
        )
        if threading.current_thread() is threading.main_thread():  # tests run it on a thread
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        if stop_requested is not None and stop_requested.is_set():
            self._stopping.set()
        # With max_instances=1 a tick that comes while the job still runs is skipped by design
        # (the claim job keeps going while there is a backlog): not worth a warning each time.
        logging.getLogger("apscheduler.scheduler").addFilter(_skip_notice_filter)
        self._warm_up()
        self._serve_metrics()
        logger.info(
            "worker %s started: poll %.1fs, %d threads, lease %.0fs, sms=%s email=%s, database %s",
            self.worker_id,
            self.poll_seconds,
            self.threads,
            self.lease.total_seconds(),
            self.transports.sms.name,
            self.transports.email.name,
            self.database.dialect,
        )
        if not self._stopping.is_set():
            scheduler.start()  # blocks until _stop_scheduler
        self.drain()
        logger.info("worker %s stopped: %d sent, %d failed", self.worker_id, self.sent, self.failed)
        return 0

    def _warm_up(self) -> None:
        """Connect, configure the mappers and build the SDK client now, not inside the first
        send: a fresh worker is ready at once (and a bad DATABASE_URL fails at start)."""
        with self.database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        configure_mappers()
        client = getattr(self.transports.sms, "client", None)  # TwilioSms: no request is made
        if client is not None:
            _ = client.messages  # the SDK imports its API modules lazily

    def _serve_metrics(self) -> None:
        port = getattr(self.settings, "WORKER_METRICS_PORT", None)
        if port is None:
            return
        if not getattr(self.settings, "METRICS_TOKEN", None):
            logger.warning("WORKER_METRICS_PORT is set but METRICS_TOKEN is not: worker metrics are off")
            return
        self.metrics_server = metrics.serve(port, self.settings.METRICS_TOKEN)
        logger.info("worker %s: metrics at :%d/metrics", self.worker_id, port)

    def _on_signal(self, signum, _frame) -> None:
        self.stop(reason=signal.Signals(signum).name)

    def stop(self, reason: str = "stop requested") -> None:
        """Stop claiming; ``run()`` then returns once in-flight sends are recorded."""
        self._stopping.set()
        self._stop_scheduler(reason)

    def _stop_scheduler(self, reason: str | None = None) -> None:
        # On another thread: a signal handler runs on the main thread, which may be inside
        # APScheduler holding its locks (or inside a logging call).
        def shutdown() -> None:
            if reason:
                logger.info("worker %s: %s, finishing in-flight sends", self.worker_id, reason)
            with self._slots:
                self._slots.notify_all()
            if self._scheduler is not None:
                with contextlib.suppress(SchedulerNotRunningError):
                    self._scheduler.shutdown(wait=False)

        threading.Thread(target=shutdown, name="scheduler-shutdown", daemon=True).start()

    def drain(self) -> None:
        """Wait for the claim and reap jobs, then for every in-flight send; release the pool."""
        self._stopping.set()
        with self._claiming, self._reaping:
            pass
        self._pool.shutdown(wait=True)
        self._deliveries.put(None)
        self._recorder.join()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
            self.metrics_server = None
        self.database.dispose()
