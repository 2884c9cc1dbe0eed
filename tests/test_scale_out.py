"""Scale-out on PostgreSQL: two web services and two workers on one database, limits in Redis.

The stack's own commands run as processes (``tests/support/stack.py``): two gunicorns (each of
``WEB_CONCURRENCY=2`` processes) on two ports and two ``python -m scheduler`` workers, on a
PostgreSQL database of the test's own, with rate limits in this machine's Redis, texts to the
local Twilio double and e-mail to the local SMTP server. Through both web services at once:

* many patients race for overlapping starts of one practitioner: the database lets through a
  set of visits that do not overlap, each start at most once; every other patient gets 409
  ``slot_taken``, and nothing else is stored;
* every booked patient gets exactly one confirmation text and one confirmation e-mail, though
  two workers poll the same outbox; nobody who lost gets anything;
* a client's rate limit is one counter across both web services: ten requests through each,
  then the next through either is refused with 429.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import select

from booking_service import demo
from booking_service.db import Database, utcnow
from booking_service.migrate import upgrade
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient
from booking_service.scheduling.models import Appointment
from tests.support.stack import Stack, client_address, free_slots, http, non_overlapping, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
pytest_plugins = ["tests.support.stack_fixtures"]

STARTS = 6  # consecutive starts of one practitioner, 15 minutes apart, for 60-minute visits
CONTENDERS = 4  # patients racing for each start, half through each web service
BURST = 30  # bookings that do not compete, made at once
LIMIT_PER_MINUTE = 20  # PUBLIC_WRITE_LIMIT's first rate


@pytest.fixture(scope="module")
def stack(stack_database, redis_url, _smtp_server, _fake_server, tmp_path_factory):
    """Two web services, two workers; the database migrated and holding the demo clinic. One
    stack for the module: starting it takes most of a test's time."""
    upgrade(stack_database)
    smtp, fake = _smtp_server, _fake_server
    with Stack(
        tmp_path_factory.mktemp("stack"),
        database_url=stack_database,
        redis_url=redis_url,
        smtp_port=smtp.port,
        **fake.environ(),
    ) as stack:
        database = Database(stack_database)
        with database.unit_of_work() as session:
            demo.seed(session, secret_key=stack.environment("web")["SECRET_KEY"], now=utcnow(), appointments=0)
        stack.start_web()
        stack.start_web()
        stack.start_worker()
        stack.start_worker()
        stack.wait_ready()
        stack.database = database
        yield stack
        database.dispose()
    assert set(stack.exit_codes.values()) == {0}, (stack.exit_codes, stack.logs())


def test_bookings_through_two_web_services_never_collide_and_each_message_is_sent_once(stack, smtp, fake):
    a, b = stack.webs
    run = uuid.uuid4().hex[:6]
    services = json.loads(http(f"{a.base}/api/v1/services")[2])["services"]
    service_id = next(s["id"] for s in services if s["duration_minutes"] == 60)
    location_id = json.loads(http(f"{a.base}/api/v1/locations")[2])["locations"][0]["id"]
    # Four days ahead and on: the visits' reminders are not due yet, so each patient gets one
    # message per channel (the confirmation), and any second one would be a duplicate.
    slots = free_slots(a.base, service_id, location_id, days_ahead=4, days=10)
    practitioner_id = slots[0]["practitioner_id"]
    starts = _consecutive_starts([s["start"] for s in slots if s["practitioner_id"] == practitioner_id], STARTS)

    def booking(n: int, start: str, practitioner: int, web) -> dict:
        return {
            "n": n,
            "web": web,
            "body": {
                "service_id": service_id,
                "location_id": location_id,
                "practitioner_id": practitioner,
                "start": start,
                "patient": {
                    "first_name": f"Scale{n}",
                    "last_name": f"Run{run}",
                    "email": _email(run, n),
                    "phone": _phone(n),
                    "sms_consent": True,
                    "email_consent": True,
                },
            },
        }

    # 1. The race: every start of the practitioner's morning wanted by several patients at once.
    race = [
        booking(n, start, practitioner_id, (a, b)[n % 2])
        for n, start in enumerate(start for start in starts for _ in range(CONTENDERS))
    ]
    results = _all_at_once(race)
    winners = [item for item, status, _ in results if status == 201]
    losers = [(item, status, answer) for item, status, answer in results if status != 201]
    assert winners, results
    # Only the race decides: every loser was told the slot was taken.
    assert {(status, answer["error"]["code"]) for _, status, answer in losers} == {(409, "slot_taken")}, losers
    # No start was booked twice and no two visits overlap (60 minutes each).
    won = sorted(_instant(item["body"]["start"]) for item in winners)
    assert len(won) == len(set(won))
    assert all(later - earlier >= timedelta(minutes=60) for earlier, later in pairwise(won))
    # And every loser lost to a visit that overlaps the start it asked for.
    for item, _, _ in losers:
        assert any(abs(_instant(item["body"]["start"]) - start) < timedelta(minutes=60) for start in won), item
    # The database holds exactly the winners for this practitioner that morning.
    with stack.database.unit_of_work() as session:
        stored = session.execute(
            select(Appointment.start_at, Patient.email)
            .join(Patient, Appointment.patient_id == Patient.id)
            .where(Appointment.practitioner_id == practitioner_id, Appointment.status != "cancelled")
            .where(Appointment.start_at.between(won[0] - timedelta(hours=2), won[-1] + timedelta(hours=2)))
        ).all()
    assert sorted(stored) == sorted((_instant(item["body"]["start"]), _email(run, item["n"])) for item in winners)

    # 2. A burst of bookings that do not compete (every practitioner, visits an hour apart),
    # through both web services at once: all booked, and a burst of messages for both workers.
    spread = [
        booking(len(race) + i, slot["start"], slot["practitioner_id"], (a, b)[i % 2])
        for i, slot in enumerate(non_overlapping(slots, 60, BURST, avoid=[item["body"] for item in race]))
    ]
    results = _all_at_once(spread)
    assert [status for _, status, _ in results] == [201] * BURST, results
    booked = winners + spread

    # Every booked patient gets one text and one e-mail; nobody gets one twice, losers none.
    emails = {_email(run, item["n"]) for item in booked}
    phones = {_phone(item["n"]) for item in booked}

    def delivered() -> bool:
        got_mail = {r for m in smtp.messages for r in m.rcpt_tos} >= emails
        got_text = {m["to"] for m in fake.messages} >= phones
        return got_mail and got_text

    assert wait_until(delivered, 45), stack.logs()
    wait_until(lambda: False, 2)  # a duplicate would come within a poll or two
    mail = Counter(r for m in smtp.messages for r in m.rcpt_tos if r.endswith(f".{run}@example.com"))
    everyone = {_phone(item["n"]) for item in race + spread}
    texts = Counter(m["to"] for m in fake.messages if m["to"] in everyone)
    assert mail == dict.fromkeys(emails, 1)
    assert texts == dict.fromkeys(phones, 1)
    with stack.database.unit_of_work() as session:
        rows = session.execute(
            select(OutboxMessage.kind, OutboxMessage.channel, OutboxMessage.status, OutboxMessage.attempts)
            .add_columns(OutboxMessage.claimed_by, OutboxMessage.due_at)
            .join(Patient, OutboxMessage.patient_id == Patient.id)
            .where(Patient.last_name == f"Run{run}")
        ).all()
    confirmations = [r for r in rows if r.kind == "confirmation"]
    assert sorted((r.channel, r.status, r.attempts) for r in confirmations) == sorted(
        [("email", "sent", 1), ("sms", "sent", 1)] * len(booked)
    )
    assert all(r.status == "pending" and r.due_at > utcnow() for r in rows if r.kind != "confirmation")
    # Both workers took part: the claims are PostgreSQL's to share out (SKIP LOCKED).
    assert {r.claimed_by for r in confirmations} & {None} == set()
    assert len({r.claimed_by.split(":")[1] for r in confirmations}) == 2, Counter(r.claimed_by for r in confirmations)


def test_a_rate_limit_is_shared_by_both_web_services(stack):
    a, b = stack.webs
    client = {"X-Forwarded-For": client_address()}  # one client, as the proxy in front reports it
    answers = []
    for n in range(LIMIT_PER_MINUTE):
        base = (a, b)[n % 2].base  # half through each
        answers.append(http(f"{base}/api/v1/appointments", method="POST", body={}, headers=client))
    # Each was counted (and refused as incomplete: nothing was booked).
    assert [status for status, _, _ in answers] == [422] * LIMIT_PER_MINUTE
    assert answers[-1][1]["X-RateLimit-Remaining"] == "0"
    for web in (a, b):
        status, headers, body = http(f"{web.base}/api/v1/appointments", method="POST", body={}, headers=client)
        assert status == 429, (web.name, status, body)
        assert json.loads(body)["error"]["code"] == "rate_limited"
        assert int(headers["Retry-After"]) > 0
    # Another client is not affected.
    other = {"X-Forwarded-For": client_address()}
    assert http(f"{b.base}/api/v1/appointments", method="POST", body={}, headers=other)[0] == 422


def _all_at_once(bookings: list[dict]) -> list[tuple[dict, int, dict]]:
    """POST every booking at the same moment (a barrier), each as a client of its own, through
    its web service; (booking, status, answer) in order."""
    barrier = threading.Barrier(len(bookings))

    def post(item: dict) -> tuple[dict, int, dict]:
        barrier.wait(timeout=30)
        status, _, answer = http(
            f"{item['web'].base}/api/v1/appointments",
            method="POST",
            body=item["body"],
            headers={"X-Forwarded-For": client_address()},
        )
        return item, status, json.loads(answer)

    with ThreadPoolExecutor(len(bookings)) as pool:
        return list(pool.map(post, bookings))


def _consecutive_starts(starts: list[str], count: int) -> list[str]:
    """The first ``count`` starts that follow each other 15 minutes apart, on one day."""
    instants = [_instant(s) for s in starts]
    for i in range(len(starts) - count + 1):
        window = instants[i : i + count]
        if all(later - earlier == timedelta(minutes=15) for earlier, later in pairwise(window)):
            return starts[i : i + count]
    raise AssertionError(f"no {count} consecutive free starts in {starts}")


def _instant(start: str) -> datetime:
    return datetime.fromisoformat(start)


def _email(run: str, n: int) -> str:
    return f"scale{n}.{run}@example.com"


def _phone(n: int) -> str:
    return f"+1416555{7000 + n:04d}"
