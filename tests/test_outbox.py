"""The outbox state machine, walked transition by transition; early delivery reports; retries.

Both engines. The transition table test drives :mod:`booking_service.outbox.transitions`
directly: from each status, each transition either changes the row exactly as
``TRANSITIONS`` says or writes nothing (rowcount 0, row untouched).
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from booking_service.config import Settings
from booking_service.db import Database, utcnow
from booking_service.integrations.registry import build_transports
from booking_service.outbox import transitions
from booking_service.outbox.claim import claim_due
from booking_service.outbox.models import STATUSES, OutboxMessage, ProviderStatusEvent
from booking_service.outbox.prepare import Prepared, prepare
from booking_service.outbox.record import record
from booking_service.outbox.send import deliver, send_timeout_for
from booking_service.outbox.transitions import PROGRESS, TRANSITIONS, Claim
from booking_service.patients.models import Patient
from scheduler.worker import Worker
from tests.conftest import SECRET
from tests.support.fake_twilio import FakeTwilio

WORKER = "host:1:aaaa"
T0 = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=1)
LATER = T0 + timedelta(hours=1)
# What each column is set to when a transition sets it (all differ from the row's values).
GIVEN = {
    "to": "+14165550199",
    "body": "new body",
    "lease_expires_at": LATER,
    "error": "new error",
    "error_code": "E2",
    "provider_id": "SMnew",
    "sent_at": LATER,
    "next_attempt_at": LATER,
}
COLUMNS = [c.name for c in OutboxMessage.__table__.columns if c.name != "updated_at"]


def _row_in(session, status: str) -> int:
    """A realistic row in ``status``: pending rows unclaimed and due; a sending row claimed by
    WORKER (attempt 1) with an expired lease; final rows with a provider id and a claim."""
    claimed = status != "pending"
    row = OutboxMessage(
        channel="sms",
        kind="reply",
        to="+14165550123",
        body="old body",
        payload={},
        due_at=T0,
        next_attempt_at=T0,
        status=status,
        attempts=1,
        claimed_by=WORKER if claimed else None,
        claimed_at=T0 if claimed else None,
        lease_expires_at=T0 if status == "sending" else None,
        provider_id="SMold",
        error="old error",
        error_code="E1",
        dedupe_key=f"t:{secrets.token_hex(8)}",
        created_at=T0,
        updated_at=T0,
    )
    session.add(row)
    session.flush()
    return row.id


def _snapshot(session, message_id: int) -> dict:
    table = OutboxMessage.__table__
    return dict(session.execute(select(table).where(table.c.id == message_id)).mappings().one())


def _run(session, name: str, message_id: int, target: str) -> bool:
    """Transition ``name`` on the row through the module's own entry point for it."""
    t = TRANSITIONS[name]
    if name == "claim":
        return transitions.claim(session, worker_id="w2", now=NOW, lease=timedelta(seconds=30), limit=5) == [message_id]
    if name == "release":
        return transitions.release(session, [message_id], worker_id=WORKER, now=NOW) == 1
    if name == "progress":
        return transitions.progress(session, "SMold", target, now=NOW, error_code="E2", error="new error") == 1
    if name == "cancel_pending":
        return transitions.cancel_pending(session, now=NOW, error=GIVEN["error"], sms_to="+14165550123") == 1
    ref = message_id if t.guard == "id" else Claim(message_id, WORKER, 1)
    return transitions.apply(session, name, ref, now=NOW, target=target, **{c: GIVEN[c] for c in t.sets})


def _expected(name: str, target: str, before: dict) -> dict:
    t = TRANSITIONS[name]
    after = dict(before, status=target)
    if name == "claim":
        return (
            after
            | {"claimed_by": "w2", "claimed_at": NOW, "lease_expires_at": NOW + timedelta(seconds=30)}
            | {"attempts": before["attempts"] + 1}
        )
    if name == "progress":
        _source, sets, resets = PROGRESS[target]
        given = {"sent_at": before["sent_at"] or NOW, "delivered_at": NOW, "error": "new error", "error_code": "E2"}
        return after | {c: given[c] for c in sets} | dict.fromkeys((*resets, "lease_expires_at"))
    after |= {c: GIVEN[c] for c in t.sets} | dict.fromkeys(t.resets)
    after["attempts"] = before["attempts"] + t.attempts
    return after


CASES = [(name, target, status) for name, t in TRANSITIONS.items() for target in t.targets for status in STATUSES]


def _allowed(name: str, target: str, status: str) -> bool:
    if name == "progress":
        return status in PROGRESS[target][0]
    return status in TRANSITIONS[name].source


def test_every_transition_from_every_status_changes_the_row_as_stated_or_not_at_all(database):
    """One session per case; ``updated_at`` is the only column not in the table (always now)."""
    allowed = forbidden = 0
    for name, target, status in CASES:
        with database.session() as session:
            message_id = _row_in(session, status)
            before = _snapshot(session, message_id)
            ok = _run(session, name, message_id, target)
            after = _snapshot(session, message_id)
            label = f"{name} -> {target} from {status}"
            if _allowed(name, target, status):
                allowed += 1
                assert ok, f"{label}: refused"
                expected = _expected(name, target, before)
                assert {c: after[c] for c in COLUMNS} == {c: expected[c] for c in COLUMNS}, label
                assert after["updated_at"] == NOW, label
            else:
                forbidden += 1
                assert not ok, f"{label}: allowed"
                assert after == before, label
            session.rollback()
    assert allowed and forbidden


def test_every_row_back_to_pending_carries_no_claim():
    for t in TRANSITIONS.values():
        if "pending" in t.targets:
            assert set(transitions.CLAIM_COLUMNS) <= set(t.resets), t.name


@pytest.mark.parametrize("name", [n for n, t in TRANSITIONS.items() if t.guard in ("claim", "expired")])
def test_a_fenced_transition_needs_the_claims_worker_and_attempt(database, name):
    t = TRANSITIONS[name]
    with database.session() as session:
        message_id = _row_in(session, "sending")
        before = _snapshot(session, message_id)
        for claim in (Claim(message_id, "other", 1), Claim(message_id, WORKER, 2)):
            assert not transitions.apply(session, name, claim, now=NOW, **{c: GIVEN[c] for c in t.sets})
        if t.guard == "expired":  # the reaper waits for the lease to end
            assert not transitions.apply(
                session, name, Claim(message_id, WORKER, 1), now=T0, **{c: GIVEN[c] for c in t.sets}
            )
        assert _snapshot(session, message_id) == before
        session.rollback()


def test_a_transition_refuses_columns_it_does_not_declare(database):
    with database.session() as session, pytest.raises(ValueError):
        transitions.apply(session, "fail", Claim(1, WORKER, 1), now=NOW, error="x", error_code=None, to="y")


def test_cancelling_a_numbers_pending_texts_leaves_other_numbers_channels_and_claimed_rows(database):
    with database.session() as session:
        wanted = _row_in(session, "pending")
        claimed = _row_in(session, "sending")
        other_number = _row_in(session, "pending")
        email = _row_in(session, "pending")
        table = OutboxMessage.__table__
        session.execute(table.update().where(table.c.id == other_number).values(to="+14165550124"))
        session.execute(table.update().where(table.c.id == email).values(channel="email", to="+14165550123"))
        untouched = {i: _snapshot(session, i) for i in (claimed, other_number, email)}

        assert transitions.cancel_pending(session, now=NOW, error="opted out", sms_to="+14165550123") == 1

        assert _snapshot(session, wanted)["status"] == "cancelled"
        assert {i: _snapshot(session, i) for i in untouched} == untouched
        session.rollback()


def test_cancel_pending_needs_exactly_one_filter(database):
    with database.session() as session:
        for filters in ({}, {"appointment_id": 1, "sms_to": "+14165550123"}):
            with pytest.raises(ValueError):
                transitions.cancel_pending(session, now=NOW, error="x", **filters)


# --------------------------------------------------------------------------- early reports


@pytest.fixture
def settings(fake: FakeTwilio) -> Settings:
    return fake.settings()


@pytest.fixture
def patient_id(database, make_clinic) -> int:
    make_clinic()
    with database.unit_of_work() as s:
        patient = Patient(first_name="Sam", last_name="Lee", phone="+14165550123", sms_consent=True)
        s.add(patient)
        s.flush()
        return patient.id


def _text(database, patient_id: int, *, to: str = "+14165550123", due: datetime | None = None) -> int:
    due = due or utcnow()
    with database.unit_of_work() as s:
        row = OutboxMessage(
            patient_id=patient_id,
            channel="sms",
            kind="confirmation",
            to=to,
            body=f"Lakeshore Physio: booked ({secrets.token_hex(3)}).",
            payload={},
            due_at=due,
            next_attempt_at=due,
            status="pending",
            attempts=0,
            dedupe_key=f"t:{secrets.token_hex(8)}",
        )
        s.add(row)
        s.flush()
        return row.id


def test_a_failed_callback_arriving_before_the_sid_is_recorded_ends_up_on_the_row(
    db_url, database, fake, settings, patient_id
):
    from booking_service import create_app

    app = create_app(
        {"DATABASE_URL": db_url, "SECRET_KEY": SECRET, "TESTING": True, "RATELIMIT_ENABLED": False}
        | {"PUBLIC_BASE_URL": "http://testserver.local", **fake.environ()}
    )
    client = app.test_client()
    now = utcnow()
    message_id = _text(database, patient_id, due=now)
    transports = build_transports(settings, send_timeout=send_timeout_for(timedelta(seconds=30)))
    [claimed] = claim_due(database, worker_id=WORKER, now=now, limit=1)
    [prepared] = prepare(database, [claimed], settings=settings, worker_id=WORKER, now_fn=lambda: now)
    assert isinstance(prepared, Prepared)
    delivery = deliver(prepared, transports)
    sid = delivery.sent.provider_id

    # Twilio calls back before the worker has committed the SID on the row.
    url = "http://testserver.local/webhooks/twilio/status"
    params = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003", "AccountSid": fake.account_sid}
    response = client.post(
        "/webhooks/twilio/status", data=params, headers={"X-Twilio-Signature": fake.signature(url, params)}
    )
    assert response.status_code == 200
    with database.unit_of_work() as s:
        assert s.scalars(select(ProviderStatusEvent.provider_id)).all() == [sid]

    [outcome] = record(database, [delivery], worker_id=WORKER, now=utcnow())
    assert outcome.status == "sent"  # what the send itself said
    with database.unit_of_work() as s:
        row = s.get(OutboxMessage, message_id)
        assert (row.status, row.provider_id, row.error_code) == ("failed", sid, "30003")
        assert "30003" in row.error
        assert s.scalars(select(ProviderStatusEvent)).all() == []  # applied, not kept twice
    # What staff see on the appointment's message list.
    app.extensions["database"].dispose()


def test_the_reaper_prunes_reports_no_message_claimed_for_a_week_and_applies_late_matches(
    database, settings, patient_id
):
    from booking_service.outbox.provider_status import apply_provider_status
    from booking_service.outbox.reconcile import recover_expired

    received = utcnow()
    with database.unit_of_work() as s:
        for sid in ("SMnever", "SMlate"):
            outcome = apply_provider_status(s, provider_id=sid, status="delivered", now=received)
            assert outcome.stored
    transports = build_transports(settings, send_timeout=send_timeout_for(timedelta(seconds=30)))

    def stored() -> list[str]:
        with database.unit_of_work() as s:
            return sorted(s.scalars(select(ProviderStatusEvent.provider_id)))

    recover_expired(database, now=received + timedelta(days=6, hours=23), transports=transports)
    assert stored() == ["SMlate", "SMnever"]  # within the week: kept

    # A row records SMlate only now (say, reconciled after a long outage): still applied.
    message_id = _text(database, patient_id)
    with database.unit_of_work() as s:
        s.execute(
            OutboxMessage.__table__.update()
            .where(OutboxMessage.id == message_id)
            .values(status="sent", provider_id="SMlate", sent_at=received)
        )
    recover_expired(database, now=received + timedelta(days=7, minutes=1), transports=transports)
    assert stored() == []
    with database.unit_of_work() as s:
        assert s.get(OutboxMessage, message_id).status == "delivered"


# --------------------------------------------------------------------------- retries


def test_under_30_percent_transient_failures_every_confirmation_arrives_within_60_seconds(
    db_url, database, fake, patient_id
):
    count = 40
    rng = random.Random(7)
    numbers = [f"+1416556{n:04d}" for n in range(count)]
    failures = 0
    for number in numbers:
        # Each attempt fails with probability 0.3: the first `times` attempts to a number fail.
        times = 0
        while rng.random() < 0.3:
            times += 1
        if times:
            fake.fail_number(number, 20503, status=503, times=times)
            failures += times
    due = utcnow()
    ids = [_text(database, patient_id, to=number, due=due) for number in numbers]
    settings = fake.settings(DATABASE_URL=db_url, SCHEDULER_POLL_SECONDS="0.2", SCHEDULER_THREADS="4")
    worker = Worker(settings, database=Database(db_url))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline:
            with database.unit_of_work() as s:
                rows = s.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids))).all()
            if all(r.status == "sent" for r in rows):
                break
            time.sleep(0.2)
    finally:
        worker.stop()
        thread.join(20)
    assert [r.status for r in rows] == ["sent"] * count
    late = max((r.sent_at - r.due_at).total_seconds() for r in rows)
    attempts = sum(r.attempts for r in rows)
    print(f"\n{database.dialect}: {failures} transient failures, {attempts} attempts, slowest {late:.1f} s")
    assert failures >= count * 0.3  # the double did fail about 30% of the sends
    assert late <= 60
    assert attempts / count <= 2
    assert len(fake.messages) == count
