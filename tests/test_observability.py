"""Operating the service: health checks, request ids from the request to the worker's log line,
JSON logs, and the Prometheus metrics with their token rule. Both engines where a database is
read. The worker runs in process on the wall clock with console transports; what runs under
gunicorn and as ``python -m scheduler`` is in tests/test_compose.py.
"""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from booking_service import create_app
from booking_service.audit.models import AuditEvent
from booking_service.db import Database, utcnow
from booking_service.exercises.models import Alert
from booking_service.observability import logs, request_id
from booking_service.outbox.models import OutboxMessage
from scheduler.worker import Worker
from tests.conftest import SECRET
from tests.support.environ import settings_from, variables
from tests.support.stack import free_port
from tests.test_compose import metric

TOKEN = "observability-token-0123456789"


def make_app(db_url: str, **config):
    return create_app(
        {
            "DATABASE_URL": db_url,
            "SECRET_KEY": SECRET,
            "TESTING": True,
            "RATELIMIT_ENABLED": False,
            "PUBLIC_BASE_URL": "http://testserver.local",
            **config,
        }
    )


@pytest.fixture
def metrics_client(db_url, database):
    app = make_app(db_url, METRICS_TOKEN=TOKEN)
    yield app.test_client()
    app.extensions["database"].dispose()


def scrape(client) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return response.get_data(as_text=True)


def book(client, clinic, *, request_id: str | None = None, email="ana@example.com"):
    """Book the first free slot of the next two weeks through the public API (wall clock)."""
    start = date.today() + timedelta(days=1)
    slots = client.get(
        f"/api/v1/availability?service_id={clinic.follow_up_id}&location_id={clinic.location_id}"
        f"&start={start.isoformat()}&end={(start + timedelta(days=14)).isoformat()}"
    ).get_json()["slots"]
    headers = {"X-Request-ID": request_id} if request_id else {}
    response = client.post(
        "/api/v1/appointments",
        json={
            "service_id": clinic.follow_up_id,
            "location_id": clinic.location_id,
            "practitioner_id": slots[0]["practitioner_id"],
            "start": slots[0]["start"],
            "patient": {"first_name": "Ana", "last_name": "Silva", "email": email, "email_consent": True},
        },
        headers=headers,
    )
    assert response.status_code == 201, response.get_json()
    return response


def run_worker_once(db_url: str) -> Worker:
    """Claim, send (console transports) and record every due row, then stop."""
    worker = Worker(settings_from(variables(DATABASE_URL=db_url, SECRET_KEY=SECRET)), database=Database(db_url))
    try:
        worker.claim_and_submit()
    finally:
        worker.drain()
    return worker


# --- health ------------------------------------------------------------------------------------


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_answers_ok_when_the_database_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_readyz_is_503_with_a_reason_when_the_database_is_unreachable(tmp_path, engine):
    unreachable = {
        "sqlite": f"sqlite:///{tmp_path}/no/such/directory/clinic.db",
        "postgresql": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing",
    }[engine]
    app = make_app(unreachable, INSTANCE_DIR=str(tmp_path))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "unavailable",
        "reason": "database unreachable",
        "error": "OperationalError",
    }
    assert app.test_client().get("/healthz").status_code == 200  # the process itself is fine


# --- request ids -------------------------------------------------------------------------------


def test_a_sane_request_id_is_kept_and_answered(client):
    response = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a:01.2_x"})
    assert response.headers["X-Request-ID"] == "lb-7f3a:01.2_x"


@pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 65, "semi;colon", "new\nline"])
def test_a_missing_or_odd_request_id_is_replaced_by_a_fresh_one(client, incoming):
    headers = {"X-Request-ID": incoming} if incoming is not None else {}
    try:
        response = client.get("/healthz", headers=headers)
    except ValueError:  # the test client itself refuses a newline in a header: nothing to check
        return
    answered = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", answered)
    assert answered != client.get("/healthz").headers["X-Request-ID"]


def test_the_request_id_reaches_the_outbox_rows_the_audit_event_and_the_workers_log_line(
    client, database, db_url, make_clinic, caplog
):
    clinic = make_clinic()
    book(client, clinic, request_id="booking-req-42")
    book(client, clinic, email="other@example.com")  # another request: another id
    with database.unit_of_work() as s:
        rows = s.execute(select(OutboxMessage.id, OutboxMessage.request_id, OutboxMessage.to)).all()
        audit_ids = s.scalars(select(AuditEvent.request_id).where(AuditEvent.action == "appointment.book")).all()
    mine = [r for r in rows if r.to == "ana@example.com"]
    assert mine and {r.request_id for r in mine} == {"booking-req-42"}
    assert {r.request_id for r in rows if r.to == "other@example.com"} - {"booking-req-42"}
    assert "booking-req-42" in audit_ids

    with caplog.at_level(logging.INFO, logger="scheduler"):
        run_worker_once(db_url)
    [confirmation] = mine  # e-mail only: no SMS consent
    lines = [r for r in caplog.records if r.name == "scheduler" and getattr(r, "message_id", None) == confirmation.id]
    assert lines and all(r.request_id == "booking-req-42" for r in lines)
    assert lines[-1].status == "delivered" and lines[-1].kind == "confirmation"  # console: delivered at once
    # As a JSON log line: one object, with the fields of docs/operations.md.
    formatted = json.loads(logs.JsonLineFormatter().format(lines[-1]))
    assert formatted["request_id"] == "booking-req-42"
    assert {"time", "level", "logger", "message", "message_id", "kind", "channel", "status"} <= set(formatted)


# --- logs --------------------------------------------------------------------------------------


def test_json_logs_are_one_object_per_line_with_the_bound_request_id():
    stream = io.StringIO()
    handler = logs.Handler(stream)
    handler.setFormatter(logs.formatter("json"))
    log = logging.getLogger("test.observability.json")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        with request_id.bound("req-1"):
            log.warning("line one %s", "ok")
            try:
                raise RuntimeError("boom\nwith a newline")
            except RuntimeError:
                log.exception("it failed")
        log.info("outside any request")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert records[0] == {
        "time": records[0]["time"],
        "level": "WARNING",
        "logger": "test.observability.json",
        "message": "line one ok",
        "request_id": "req-1",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", records[0]["time"])
    assert records[1]["request_id"] == "req-1" and "RuntimeError: boom" in records[1]["exc_info"]
    assert records[2]["request_id"] is None


def test_text_logs_name_the_request_id_when_there_is_one():
    stream = io.StringIO()
    handler = logs.Handler(stream)
    handler.setFormatter(logs.formatter("text"))
    log = logging.getLogger("test.observability.text")
    log.addHandler(handler)
    log.propagate = False
    try:
        with request_id.bound("req-2"):
            log.warning("hello")
        log.warning("bye")
    finally:
        log.removeHandler(handler)
    first, second = stream.getvalue().splitlines()
    assert first.endswith("WARNING test.observability.text: hello [request_id=req-2]")
    assert second.endswith("WARNING test.observability.text: bye")


def test_log_format_json_gives_the_web_app_one_access_line_per_request_with_its_route(db_url, database, caplog):
    app = make_app(db_url, LOG_FORMAT="json")
    try:
        with caplog.at_level(logging.INFO, logger="booking_service.requests"):
            app.test_client().get("/api/v1/manage/not-a-real-token", headers={"X-Request-ID": "access-1"})
    finally:
        app.extensions["database"].dispose()
    [line] = [r for r in caplog.records if r.name == "booking_service.requests"]
    assert line.request_id == "access-1" and line.status == 404
    assert line.route == "/api/v1/manage/<token>"  # the route, never the token in the path
    assert "not-a-real-token" not in logs.JsonLineFormatter().format(line)


# --- metrics -----------------------------------------------------------------------------------


def test_metrics_are_off_without_a_token(client):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_metrics_answer_only_the_bearer_token(metrics_client):
    missing = metrics_client.get("/metrics")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert metrics_client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 401
    assert metrics_client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert metrics_client.get("/metrics", headers={"Authorization": "Bearer not-the-token"}).status_code == 403
    assert metrics_client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_the_metrics_names_are_exposed(metrics_client):
    text = scrape(metrics_client)
    for name in (
        "clinic_bookings_total",
        "clinic_messages_total",
        "clinic_dispatch_lateness_seconds",
        "clinic_webhook_rejections_total",
        "clinic_outbox_due_messages",
        "clinic_outbox_sending_messages",
        "clinic_outbox_oldest_due_age_seconds",
        "clinic_alerts_open",
        "clinic_database_up",
    ):
        assert f"# HELP {name.removesuffix('_total')}" in text or f"# HELP {name} " in text, name
    assert metric(text, "clinic_database_up") == 1.0


def test_metrics_move_after_a_booking_a_send_an_alert_and_a_refused_webhook(
    metrics_client, database, db_url, make_clinic
):
    clinic = make_clinic()
    before = scrape(metrics_client)
    booked_before = metric(before, "clinic_bookings_total", source="api") or 0.0
    # The console transport reports a message delivered at once.
    sent_labels = {"kind": "confirmation", "channel": "email", "status": "delivered"}
    sent_before = metric(before, "clinic_messages_total", **sent_labels) or 0.0
    late_before = metric(before, "clinic_dispatch_lateness_seconds_count", channel="email") or 0.0
    refused_labels = {"endpoint": "/webhooks/twilio/status", "reason": "not_configured"}
    refused_before = metric(before, "clinic_webhook_rejections_total", **refused_labels) or 0.0
    assert metric(before, "clinic_outbox_due_messages") == 0.0
    assert metric(before, "clinic_outbox_oldest_due_age_seconds") == 0.0

    book(metrics_client, clinic)
    after_booking = scrape(metrics_client)
    assert metric(after_booking, "clinic_bookings_total", source="api") == booked_before + 1
    assert metric(after_booking, "clinic_outbox_due_messages") == 1.0  # the confirmation, due now
    assert metric(after_booking, "clinic_outbox_oldest_due_age_seconds") >= 0.0

    run_worker_once(db_url)
    after_send = scrape(metrics_client)  # the worker ran in this process: its counters are here
    assert metric(after_send, "clinic_messages_total", **sent_labels) == sent_before + 1
    assert metric(after_send, "clinic_dispatch_lateness_seconds_count", channel="email") == late_before + 1
    assert metric(after_send, "clinic_outbox_due_messages") == 0.0

    with database.unit_of_work() as s:
        patient_id = s.scalar(select(OutboxMessage.patient_id))
        s.add(Alert(patient_id=patient_id, kind="red_flag", source="sms", text="Numbness.", created_at=utcnow()))
    assert metrics_client.post("/webhooks/twilio/status", data={"MessageSid": "SM1"}).status_code == 403
    later = scrape(metrics_client)
    assert metric(later, "clinic_alerts_open") == 1.0
    assert metric(later, "clinic_webhook_rejections_total", **refused_labels) == refused_before + 1


def test_a_refused_booking_counts_nothing(metrics_client, make_clinic):
    clinic = make_clinic()
    before = metric(scrape(metrics_client), "clinic_bookings_total", source="api")
    response = metrics_client.post(
        "/api/v1/appointments",
        json={
            "service_id": clinic.follow_up_id,
            "location_id": clinic.location_id,
            "start": "2020-01-06T09:00:00-05:00",  # the past: not a slot
            "patient": {"first_name": "Ana", "last_name": "Silva", "email": "ana@example.com"},
        },
    )
    assert response.status_code == 422
    assert metric(scrape(metrics_client), "clinic_bookings_total", source="api") == before


def test_metrics_still_answer_when_the_database_is_down(tmp_path):
    app = make_app(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing",
        METRICS_TOKEN=TOKEN,
        INSTANCE_DIR=str(tmp_path),
    )
    text = scrape(app.test_client())
    assert metric(text, "clinic_database_up") == 0.0
    assert metric(text, "clinic_outbox_due_messages") is None


def test_the_worker_serves_its_metrics_with_the_same_token_rule(db_url, database):
    from tests.support.stack import http

    port = free_port()
    settings = settings_from(
        variables(DATABASE_URL=db_url, SECRET_KEY=SECRET, METRICS_TOKEN=TOKEN, WORKER_METRICS_PORT=port)
    )
    worker = Worker(settings, database=Database(db_url))
    worker._serve_metrics()
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert http(url)[0] == 401
        assert http(url, headers={"Authorization": "Bearer wrong"})[0] == 403
        status, _, body = http(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and b"clinic_dispatch_lateness_seconds" in body
        assert http(f"http://127.0.0.1:{port}/other")[0] == 404
    finally:
        worker.drain()
    assert worker.metrics_server is None
