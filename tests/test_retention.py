"""Data care: message content and patients' texts are purged after MESSAGE_RETENTION_DAYS, once
across workers, keeping every row with its status and times; program logs and the audit trail
are kept (docs/operations.md, "Data kept"). Both engines."""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from booking_service.audit.models import AuditEvent
from booking_service.db import Database, utcnow
from booking_service.exercises.models import ProgramLog
from booking_service.messaging.models import InboundMessage
from booking_service.outbox.models import OutboxMessage
from booking_service.usecases import retention
from scheduler.worker import Worker, once_across_workers
from tests.conftest import SECRET
from tests.support.environ import settings_from, variables
from tests.support.programs import add_patient, add_program

DAY = timedelta(days=1)


@pytest.fixture
def world(database, make_clinic):
    """A patient with messages and texts of every age and status, and a program log."""
    clinic = make_clinic()
    now = utcnow()
    with database.unit_of_work() as s:
        patient = add_patient(s)
        rows = {}
        for name, age, status in (
            ("old_delivered", 200, "delivered"),
            ("old_sent", 181, "sent"),
            ("old_failed", 365, "failed"),
            ("old_skipped", 400, "skipped"),
            ("old_cancelled", 190, "cancelled"),
            ("old_pending", 200, "pending"),  # still to be sent (a retry): never purged
            ("old_sending", 200, "sending"),
            ("recent_delivered", 179, "delivered"),
        ):
            created = now - age * DAY
            row = OutboxMessage(
                patient_id=patient.id,
                channel="email",
                kind="reply",
                to=patient.email,
                body=f"Hi Sam, {name}: https://clinic.example/m/tok",
                payload={"subject": "About your visit", "link": "/m/tok"},
                template=None,
                due_at=created,
                next_attempt_at=created,
                status=status,
                attempts=1,
                sent_at=created if status in ("sent", "delivered") else None,
                error="refused" if status == "failed" else None,
                dedupe_key=f"retention:{name}:{secrets.token_hex(4)}",
                created_at=created,
                updated_at=created,
            )
            s.add(row)
            rows[name] = row
        texts = {
            name: InboundMessage(
                from_phone=patient.phone,
                body=f"my knee still hurts ({name})",
                patient_id=patient.id,
                intent="other",
                needs_staff=True,
                received_at=now - age * DAY,
            )
            for name, age in (("old_text", 181), ("recent_text", 10))
        }
        s.add_all(texts.values())
        program = add_program(s, clinic, patient.id, now=now)
        s.add(
            ProgramLog(
                program_id=program.id,
                patient_id=patient.id,
                local_date=(now - 400 * DAY).date(),
                done=True,
                pain=3,
                note="felt fine",
                source="page",
            )
        )
        s.flush()
        return {
            "now": now,
            "messages": {name: row.id for name, row in rows.items()},
            "texts": {name: row.id for name, row in texts.items()},
        }


def worker(db_url: str, **overrides) -> Worker:
    settings = settings_from(variables(DATABASE_URL=db_url, SECRET_KEY=SECRET, **overrides))
    return Worker(settings, database=Database(db_url))


def run_job(db_url: str, **overrides) -> retention.Purged:
    w = worker(db_url, **overrides)
    try:
        return w.purge_content()
    finally:
        w.drain()


def test_content_older_than_180_days_is_purged_keeping_status_and_times(database, db_url, world):
    with database.unit_of_work() as s:
        before = {
            r.id: (r.status, r.created_at, r.sent_at, r.to, r.attempts, r.error)
            for r in s.scalars(select(OutboxMessage))
        }
        audit_before = s.scalar(select(func.count()).select_from(AuditEvent))

    purged = run_job(db_url)

    assert purged == retention.Purged(messages=5, inbound_texts=1)
    ids = world["messages"]
    with database.unit_of_work() as s:
        rows = {r.id: r for r in s.scalars(select(OutboxMessage))}
        texts = {t.id: t for t in s.scalars(select(InboundMessage))}
        logs = s.scalars(select(ProgramLog)).all()
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "retention.purge")).all()
        audit_after = s.scalar(select(func.count()).select_from(AuditEvent))
    for name in ("old_delivered", "old_sent", "old_failed", "old_skipped", "old_cancelled"):
        row = rows[ids[name]]
        assert (row.body, row.payload) == (None, {}), name
        assert row.content_purged_at is not None
        assert (row.status, row.created_at, row.sent_at, row.to, row.attempts, row.error) == before[row.id]
    for name in ("old_pending", "old_sending", "recent_delivered"):
        row = rows[ids[name]]
        assert row.body.startswith("Hi Sam") and row.payload["subject"] and row.content_purged_at is None, name
    old_text, recent_text = texts[world["texts"]["old_text"]], texts[world["texts"]["recent_text"]]
    assert (old_text.body, old_text.intent, old_text.needs_staff) == ("", "other", True)
    assert old_text.content_purged_at is not None and old_text.from_phone == "+14165550123"
    assert recent_text.body.startswith("my knee") and recent_text.content_purged_at is None
    # Program logs and the audit trail are kept; the purge itself is audited, counts only.
    assert [(log.done, log.pain, log.note) for log in logs] == [(True, 3, "felt fine")]
    assert audit_after == audit_before + 1
    [event] = events
    assert event.actor_kind == "worker"
    assert event.detail == {"messages": 5, "inbound_texts": 1, "days": 180}

    assert run_job(db_url) == retention.Purged()  # nothing left: a second run changes nothing


def test_the_period_is_message_retention_days(database, db_url, world):
    assert run_job(db_url, MESSAGE_RETENTION_DAYS=365) == retention.Purged(messages=2, inbound_texts=0)
    assert run_job(db_url, MESSAGE_RETENTION_DAYS=5) == retention.Purged(messages=4, inbound_texts=2)


def test_the_job_works_in_batches_until_nothing_is_left(database, db_url, world, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 2)
    with database.unit_of_work() as s:
        assert retention.purge_batch(s, now=world["now"], days=180, limit=2) == retention.Purged(2, 1)
    assert run_job(db_url) == retention.Purged(messages=3, inbound_texts=0)
    with database.unit_of_work() as s:
        events = s.scalar(select(func.count()).where(AuditEvent.action == "retention.purge"))
    assert events == 3  # one per batch that purged something


def test_the_console_inbox_says_a_purged_text_was_removed(database, db_url, world):
    from booking_service.staff.operations import create_user
    from tests.console_fixtures import PASSWORD, _create_app, login

    run_job(db_url)
    with database.unit_of_work() as s:
        create_user(s, "desk@example.com", role="frontdesk", password=PASSWORD)
    app = _create_app(db_url, WTF_CSRF_ENABLED=False)
    try:
        client = app.test_client()
        assert login(client).status_code == 302
        page = client.get("/staff/inbox").get_data(as_text=True)
    finally:
        app.extensions["database"].dispose()
    assert "text removed after the retention period" in page
    assert "my knee still hurts (recent_text)" in page
    assert "old_text" not in page


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite is one machine: it simply runs
def test_one_worker_at_a_time_runs_the_job(database, db_url, world):
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with once_across_workers(database, "retention") as mine:
            assert mine
            held.set()
            release.wait(20)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        assert run_job(db_url) == retention.Purged()  # another worker holds the job
    finally:
        release.set()
        holder.join()
    assert run_job(db_url) == retention.Purged(messages=5, inbound_texts=1)


def test_a_retention_period_below_one_day_is_refused(session):
    with pytest.raises(ValueError, match="at least 1"):
        retention.purge_batch(session, now=utcnow(), days=0)
