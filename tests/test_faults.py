"""Faults survived, on PostgreSQL: the database restarted, the SMTP server down, Twilio failing.

One stack for the module (``tests/support/stack.py``): a gunicorn web service and two
``python -m scheduler`` workers, reaching a PostgreSQL database of the module's own through a
TCP proxy (``tests/support/tcp_proxy.py``), with texts to a Twilio double and e-mail to an SMTP
server of the module's own, so each can fail without touching anything another test uses.

* **The database restarted** while web and workers run: the proxy resets every connection and
  refuses new ones for a few seconds, as a restart does. ``/readyz`` answers 503 meanwhile and
  200 again after; the workers resume by themselves; every message planned before, during (none:
  those bookings failed) and after is sent exactly once, sends in flight at the cut included.
* **The SMTP server down** for a while: the e-mail waits in the outbox with its attempts and its
  next try, staff see "retrying at ..." on the appointment's page, and it is delivered once the
  server is back, once.
* **Twilio answering 500, then 429**: each text is tried again on the retry schedule (the gaps
  between tries at least the schedule's), never more often, and sent once after recovery; the
  attempts Twilio saw are the attempts the outbox counted.

And on both engines, quickly: :func:`booking_service.db.unavailable` tells a database that is
away (refused, locked) from one that refuses a statement, which the worker must not retry.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections import Counter
from itertools import pairwise

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from booking_service import demo
from booking_service.db import Database, unavailable, utcnow
from booking_service.migrate import upgrade
from booking_service.outbox.models import OutboxMessage
from booking_service.outbox.retry import RETRY_CEILINGS
from booking_service.patients.models import Patient
from tests.support.fake_twilio import FakeTwilio
from tests.support.smtp_server import SmtpServer
from tests.support.stack import (
    Console,
    Stack,
    client_address,
    free_slots,
    http,
    non_overlapping,
    wait_for_http,
    wait_until,
)
from tests.support.tcp_proxy import TcpProxy

pytest_plugins = ["tests.support.stack_fixtures"]

# Short, so rows a worker claimed just before the cut (and could not prepare) come back soon.
LEASE_SECONDS = 8
OUTAGE_SECONDS = 5
DESK = ("frontdesk@demo.clinic", "demo-desk-2026")  # the demo's front-desk login


@pytest.fixture(scope="module")
def doubles():
    """An SMTP server and a Twilio double of the module's own (these tests stop them)."""
    with SmtpServer() as smtp, FakeTwilio() as fake:
        yield smtp, fake


@pytest.fixture(scope="module")
def proxy(stack_database):
    url = make_url(stack_database)
    with TcpProxy(url.host, url.port) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def stack(stack_database, redis_url, proxy, doubles, tmp_path_factory):
    """One web service (two processes) and two workers, on the database through the proxy."""
    smtp, fake = doubles
    upgrade(stack_database)
    database = Database(stack_database)  # the test's own look at the rows: not through the proxy
    through_proxy = make_url(stack_database).set(port=proxy.port).render_as_string(hide_password=False)
    with Stack(
        tmp_path_factory.mktemp("faults"),
        database_url=through_proxy,
        redis_url=redis_url,
        smtp_port=smtp.port,
        SCHEDULER_LEASE_SECONDS=str(LEASE_SECONDS),
        **fake.environ(),
    ) as stack:
        with database.unit_of_work() as session:
            demo.seed(session, secret_key=stack.environment("web")["SECRET_KEY"], now=utcnow(), appointments=0)
        stack.start_web()
        stack.start_worker()
        stack.start_worker()
        stack.wait_ready()
        stack.database = database
        yield stack
        database.dispose()
    assert set(stack.exit_codes.values()) == {0}, (stack.exit_codes, stack.logs())


@pytest.fixture
def clinic(stack, doubles, proxy):
    """Each test starts with the doubles answering, emptied, and the database reachable."""
    smtp, fake = doubles
    if not proxy.listening:
        proxy.restore()
    if smtp._controller is None:
        smtp.start()
    smtp.reset()
    fake.reset()
    fake.latency = 0.0
    return Clinic(stack)


class Clinic:
    """Patients booking through the stack's web service (the follow-up of 30 minutes)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.web = stack.webs[0]
        self.run = uuid.uuid4().hex[:6]
        services = json.loads(http(f"{self.web.base}/api/v1/services")[2])["services"]
        self.service_id = next(s["id"] for s in services if s["duration_minutes"] == 30)
        self.location_id = json.loads(http(f"{self.web.base}/api/v1/locations")[2])["locations"][0]["id"]
        self.booked: list[dict] = []

    def email(self, n: int) -> str:
        return f"fault{n}.{self.run}@example.com"

    def phone(self, n: int) -> str:
        return f"+1647555{int(self.run, 16) % 50 * 100 + n:04d}"

    def book(self, count: int, *, email: bool = True, phone: bool = True) -> list[dict]:
        """Book ``count`` patients, one after the other (four days ahead and on: reminders not
        due yet); returns the bookings (``n``, the API's answer)."""
        slots = free_slots(self.web.base, self.service_id, self.location_id, days_ahead=4)
        made = []
        for slot in non_overlapping(slots, 30, count):
            n = len(self.booked)
            status, answer = self.try_booking(n, slot, email=email, phone=phone)
            assert status == 201, answer
            self.booked.append({"n": n, **answer})
            made.append(self.booked[-1])
        return made

    def try_booking(self, n: int, slot: dict, *, email: bool = True, phone: bool = True) -> tuple[int, dict]:
        status, _, body = http(
            f"{self.web.base}/api/v1/appointments",
            method="POST",
            body={
                "service_id": self.service_id,
                "location_id": self.location_id,
                "practitioner_id": slot["practitioner_id"],
                "start": slot["start"],
                "patient": {
                    "first_name": f"Fault{n}",
                    "last_name": f"Run{self.run}",
                    "email": self.email(n) if email else None,
                    "phone": self.phone(n) if phone else None,
                    "sms_consent": phone,
                    "email_consent": email,
                },
            },
            headers={"X-Forwarded-For": client_address()},
        )
        return status, json.loads(body) if body.startswith(b"{") else {"body": body.decode(errors="replace")}

    def confirmations(self) -> list:
        """This run's confirmation rows, read directly (not through the proxy)."""
        with self.stack.database.unit_of_work() as session:
            return (
                session.execute(
                    select(OutboxMessage)
                    .join(Patient, OutboxMessage.patient_id == Patient.id)
                    .where(Patient.last_name == f"Run{self.run}", OutboxMessage.kind == "confirmation")
                    .order_by(OutboxMessage.id)
                )
                .scalars()
                .all()
            )


# --- the database restarted ---------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
def test_a_database_restart_while_web_and_workers_run_loses_and_doubles_nothing(clinic, stack, proxy, doubles):
    smtp, fake = doubles
    web = clinic.web
    # Twilio and the SMTP server answer slowly, so that messages are on their way when the
    # database goes: their sends succeed while it is away, and must be recorded, not made again.
    fake.latency = smtp.latency = 0.5
    before = clinic.book(6)
    assert wait_until(lambda: smtp.messages and fake.messages, 20), stack.logs()

    proxy.cut()
    cut_at = time.monotonic()
    # The web service says it is not ready (a load balancer takes it out of rotation) ...
    assert wait_until(lambda: http(f"{web.base}/readyz")[0] == 503, 5)
    status, _, body = http(f"{web.base}/readyz")
    assert status == 503 and json.loads(body)["reason"] == "database unreachable"
    # ... a booking made now fails, and nothing of it is kept.
    taken = before[0]  # any start will do: the database is not there to say
    status, answer = clinic.try_booking(99, {"practitioner_id": taken["practitioner_id"], "start": taken["start"]})
    assert status >= 500, answer
    # The web service itself stays up meanwhile.
    assert http(f"{web.base}/healthz")[0] == 200
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - cut_at)))

    proxy.restore()
    assert wait_for_http(f"{web.base}/readyz", web, timeout=20)
    fake.latency = smtp.latency = 0.0
    after = clinic.book(3)
    booked = before + after

    emails = {clinic.email(b["n"]) for b in booked}
    phones = {clinic.phone(b["n"]) for b in booked}

    def all_sent() -> bool:
        rows = clinic.confirmations()
        return len(rows) == 2 * len(booked) and all(r.status == "sent" for r in rows)

    # Rows a worker had claimed but not prepared at the cut come back after their lease.
    assert wait_until(all_sent, LEASE_SECONDS + 40), [(r.id, r.status, r.error) for r in clinic.confirmations()]
    wait_until(lambda: False, 2)  # a duplicate would come within a poll or two
    assert Counter(r for m in smtp.messages for r in m.rcpt_tos if r in emails | {clinic.email(99)}) == dict.fromkeys(
        emails, 1
    )
    assert Counter(m["to"] for m in fake.messages if m["to"] in phones | {clinic.phone(99)}) == dict.fromkeys(phones, 1)
    with stack.database.unit_of_work() as session:
        assert session.scalar(select(Patient.id).where(Patient.email == clinic.email(99))) is None

    # Both workers lived through it, saw the database go, and said when it came back.
    assert all(worker.alive() for worker in stack.workers), stack.logs()
    logs = [worker.json_lines() for worker in stack.workers]
    assert all(any("database unreachable" in line["message"] for line in lines) for lines in logs), stack.logs()
    assert all(any("database reachable again" in line["message"] for line in lines) for lines in logs), stack.logs()


# --- the SMTP server down ---------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
def test_email_waits_while_the_smtp_server_is_down_staff_see_the_retry_and_it_goes_once_back(clinic, stack, doubles):
    smtp, _ = doubles
    smtp.stop()
    booked = clinic.book(2, phone=False)

    def failed_twice() -> bool:
        rows = clinic.confirmations()
        return len(rows) == 2 and all(r.status == "pending" and r.attempts >= 2 for r in rows)

    # Tried, refused (connection refused), tried again later: never given up, never lost.
    assert wait_until(failed_twice, 20), [(r.status, r.attempts, r.error) for r in clinic.confirmations()]
    rows = clinic.confirmations()
    assert all("SMTP connection failed" in r.error and r.next_attempt_at > r.due_at for r in rows), rows
    assert all(r.sent_at is None for r in rows)

    # Staff see the wait on the appointment's page: the tries, the error and the next try.
    desk = Console(clinic.web.base)
    desk.login(*DESK)
    page = desk.get(f"/staff/appointments/{booked[0]['id']}").text
    row = _message_row(page, "Email")
    assert "pending" in row and "retrying at" in row and "SMTP connection failed" in row, row
    assert re.search(r'retrying at <time datetime="[^"]+">\d\d:\d\d</time>', row), row

    smtp.start()  # the same port: where the workers send
    received = wait_until(
        lambda: {r for m in smtp.messages for r in m.rcpt_tos} >= {clinic.email(0), clinic.email(1)}, 45
    )
    assert received, stack.logs()
    wait_until(lambda: False, 2)
    assert Counter(r for m in smtp.messages for r in m.rcpt_tos) == {clinic.email(0): 1, clinic.email(1): 1}
    assert wait_until(lambda: all(r.status == "sent" for r in clinic.confirmations()), 10)
    rows = clinic.confirmations()
    assert all(r.attempts >= 3 and r.error is None for r in rows)
    row = _message_row(desk.get(f"/staff/appointments/{booked[0]['id']}").text, "Email")
    assert "sent" in row and "retrying at" not in row


def _message_row(page: str, channel: str) -> str:
    """The row of the appointment page's message table for the confirmation on ``channel``."""
    rows = re.findall(r"<tr class=\"msg-[a-z]+\">(.*?)</tr>", page, re.S)
    found = [r for r in rows if "confirmation" in r and f"<td>{channel}</td>" in r]
    assert len(found) == 1, rows
    return found[0]


# --- Twilio failing ---------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
def test_twilio_answering_500_then_429_gets_retries_on_the_schedule_not_a_storm(clinic, stack, doubles):
    _, fake = doubles

    def tried(bookings: list[dict]) -> bool:
        return all(fake.attempts_to(clinic.phone(b["n"])) for b in bookings)

    # Twilio answers 500: the first patients' texts are tried and refused.
    fake.outage(500, 20500)
    first = clinic.book(3, email=False)
    assert wait_until(lambda: tried(first), 15), stack.logs()
    # Then 429 (Twilio throttling the account) for a while, and more patients book meanwhile.
    fake.outage(429, 20429)
    throttled = time.time()
    second = clinic.book(2, email=False)
    assert wait_until(lambda: tried(second), 15), stack.logs()
    time.sleep(max(0.0, throttled + 2.5 - time.time()))
    fake.outage(None)
    ended = time.time()

    booked = first + second
    phones = [clinic.phone(b["n"]) for b in booked]
    assert wait_until(lambda: all(201 in dict(fake.attempts_to(p)).values() for p in phones), 45), stack.logs()
    wait_until(lambda: False, 2)

    seen = set()
    for phone in phones:
        attempts = fake.attempts_to(phone)
        statuses = [status for _, status in attempts]
        # Refused while Twilio was down, then sent once; nothing after.
        assert statuses[-1] == 201 and statuses.count(201) == 1, attempts
        refused = [at for at, status in attempts if status != 201]
        assert refused and all(at <= ended + 0.5 for at in refused), attempts
        seen |= set(statuses[:-1])
        # Each wait at least the schedule's (half the ceiling: its jitter's floor) ...
        for tries, (earlier, later) in enumerate(pairwise(at for at, _ in attempts), start=1):
            floor = RETRY_CEILINGS[min(tries, len(RETRY_CEILINGS)) - 1] / 2
            assert later - earlier >= floor - 0.05, (tries, attempts)
        # ... so no more tries during the outage than the schedule allows in that time.
        assert len(refused) <= _most_tries_within(ended - refused[0]), attempts
    assert seen == {500, 429}
    # Twilio saw exactly the attempts the outbox counted (no hidden retries in the client).
    rows = {r.to: r for r in clinic.confirmations()}
    assert {phone: rows[phone].attempts for phone in phones} == {
        phone: len(fake.attempts_to(phone)) for phone in phones
    }
    assert all(rows[phone].status == "sent" and rows[phone].error is None for phone in phones)


def _most_tries_within(seconds: float) -> int:
    """How many tries the retry schedule fits in ``seconds`` at most (every wait at its floor)."""
    tries, elapsed = 1, 0.0
    while True:
        wait = RETRY_CEILINGS[min(tries, len(RETRY_CEILINGS)) - 1] / 2
        if elapsed + wait > seconds:
            return tries
        tries, elapsed = tries + 1, elapsed + wait


# --- telling "away" from "refused" ------------------------------------------------------------------


def test_unavailable_tells_a_database_that_is_away_from_one_that_refuses_a_statement(db_url, database):
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    def error_of(engine, statement: str) -> DBAPIError:
        with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
            conn.execute(text(statement))
        return caught.value

    # Refused: a statement the database understood and will refuse again.
    assert not unavailable(error_of(database.engine, "SELEC 1"))
    assert not unavailable(error_of(database.engine, "INSERT INTO clinic_settings (id) VALUES (NULL)"))
    if database.dialect == "postgresql":
        # Away: nothing listens where the database was (a restart, a cut).
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = sock.getsockname()[1]
        gone = create_engine(make_url(db_url).set(port=closed), connect_args={"connect_timeout": 2})
        assert unavailable(error_of(gone, "SELECT 1"))
        gone.dispose()
    else:
        # Away, for SQLite: another writer holds the file past the busy timeout.
        impatient = create_engine(db_url, connect_args={"timeout": 0.1})
        with database.engine.connect().execution_options(sqlite_immediate=True) as holder:
            holder.execute(text("SELECT 1"))  # begun IMMEDIATE: the write lock is held
            assert unavailable(error_of(impatient, "DELETE FROM clinic_settings"))
            holder.rollback()
        impatient.dispose()
