"""Twilio webhooks: signatures, inbound replies, delivery status. SQLite and PostgreSQL.

Requests are signed with the real ``twilio.request_validator.RequestValidator``; the last tests
run the app on a real HTTP server and let the Twilio double (``tests/support/fake_twilio.py``)
sign and post, after sending a real SMS to it through the real SDK.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from booking_service import create_app
from booking_service.clinic.models import ClinicSettings, Location, Service
from booking_service.integrations.registry import build_sms_transport
from booking_service.integrations.twilio.callbacks import StatusReport, read_status_callback
from booking_service.messaging import replies
from booking_service.messaging.models import InboundMessage
from booking_service.messaging.rendering import render
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import ConsentEvent, Patient, SmsOptOut
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling import tokens
from booking_service.scheduling.models import Appointment
from booking_service.usecases import booking as usecases
from tests.conftest import NOW, SECRET, local
from tests.support.fake_twilio import FakeTwilio

BASE_URL = "http://testserver.local"
AUTH_TOKEN = "test-twilio-auth-token"
PHONE = "+14165550123"
SMS_PATH = "/webhooks/twilio/sms"
STATUS_PATH = "/webhooks/twilio/status"


def make_app(db_url: str, **overrides):
    config = {
        "DATABASE_URL": db_url,
        "SECRET_KEY": SECRET,
        "TESTING": True,
        "RATELIMIT_ENABLED": False,
        "PUBLIC_BASE_URL": BASE_URL,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        **overrides,
    }
    return create_app(config)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def webhook_app(db_url, database, make_clinic, frozen):
    make_clinic()
    app = make_app(db_url)
    yield app
    app.extensions["database"].dispose()


@pytest.fixture
def client(webhook_app):
    return webhook_app.test_client()


@contextmanager
def fresh(database):
    session = database.session()
    try:
        yield session
    finally:
        session.close()  # ends the transaction without expiring what was loaded


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def post(client, path: str, params: dict[str, str], *, query: str = "", signature: str | None = None):
    url = BASE_URL + path + (f"?{query}" if query else "")
    headers = {"X-Twilio-Signature": sign(url, params) if signature is None else signature}
    return client.post(path + (f"?{query}" if query else ""), data=params, headers=headers)


_sid = iter(range(1, 10**6))


def text(client, body: str, *, from_: str = PHONE, sid: str | None = None):
    params = {
        "MessageSid": sid or f"SM{next(_sid):032x}",
        "AccountSid": "AC" + "0" * 32,
        "From": from_,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }
    return post(client, SMS_PATH, params)


def status(client, sid: str, message_status: str, error_code: str | None = None):
    params = {
        "MessageSid": sid,
        "MessageStatus": message_status,
        "SmsSid": sid,
        "SmsStatus": message_status,
        "AccountSid": "AC" + "0" * 32,
        "To": PHONE,
        "From": "+15005550006",
    }
    if error_code:
        params["ErrorCode"] = error_code
    return post(client, STATUS_PATH, params)


def book(database, start, *, source="online", now=NOW, **patient) -> int:
    details = {
        "first_name": "Alex",
        "last_name": "Tremblay",
        "email": "alex@example.com",
        "phone": PHONE,
        "sms_consent": True,
        "email_consent": True,
        **patient,
    }
    with fresh(database) as session:
        request = usecases.BookingRequest(
            service_id=session.scalars(select(Service.id).where(Service.kind == "initial")).one(),
            location_id=session.scalars(select(Location.id)).one(),
            start=start,
            patient=PatientDetails(**details),
            source=source,
        )
        appointment = usecases.book(session, request, secret_key=SECRET, now=now).appointment
        session.commit()
        return appointment.id


def outbox(database, **where) -> list[OutboxMessage]:
    with fresh(database) as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        for name, value in where.items():
            query = query.where(getattr(OutboxMessage, name) == value)
        return list(session.scalars(query))


def inbox(database) -> list[InboundMessage]:
    with fresh(database) as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def opted_out(database, phone: str = PHONE) -> bool:
    with fresh(database) as session:
        return session.get(SmsOptOut, phone) is not None


def count(database, model) -> int:
    with fresh(database) as session:
        return session.scalar(select(func.count()).select_from(model))


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize("path", [SMS_PATH, STATUS_PATH])
def test_webhooks_require_a_valid_twilio_signature(client, database, path):
    params = {"MessageSid": "SM1", "From": PHONE, "Body": "STOP", "MessageStatus": "delivered"}
    wrong_url = "http://other.host" + path
    for headers in (
        {},
        {"X-Twilio-Signature": "not-a-signature"},
        {"X-Twilio-Signature": sign(BASE_URL + path, params, token="someone-elses-token")},
        {"X-Twilio-Signature": sign(wrong_url, params)},
        {"X-Twilio-Signature": sign(BASE_URL + path, {**params, "Body": "START"})},
    ):
        response = client.post(path, data=params, headers=headers)
        assert response.status_code == 403

    assert count(database, InboundMessage) == 0
    assert not opted_out(database)


def test_the_signature_covers_the_query_string(client, database):
    params = {"MessageSid": "SM-unknown", "MessageStatus": "delivered"}
    assert post(client, STATUS_PATH, params, query="attempt=1").status_code == 200
    unsigned_query = sign(BASE_URL + STATUS_PATH, params)
    assert post(client, STATUS_PATH, params, query="attempt=1", signature=unsigned_query).status_code == 403


def test_without_an_auth_token_every_webhook_is_refused(db_url, database, make_clinic, frozen):
    make_clinic()
    app = make_app(db_url, TWILIO_AUTH_TOKEN=None)
    try:
        client = app.test_client()
        assert text(client, "STOP").status_code == 403
        assert status(client, "SM1", "delivered").status_code == 403
    finally:
        app.extensions["database"].dispose()
    assert not opted_out(database)


def test_webhooks_need_no_csrf_token(client):
    # The app has CSRF protection on; Twilio cannot send a token, so the blueprint is exempt.
    assert client.application.config.get("WTF_CSRF_ENABLED", True) is True
    assert text(client, "HELP").status_code == 200


# --------------------------------------------------------------------------- inbound


def test_an_inbound_text_is_answered_with_empty_twiml_and_recorded(client, database):
    response = text(client, "Is there parking near the clinic?", sid="SM" + "a" * 32)

    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert response.get_data(as_text=True).endswith("<Response/>")
    [message] = inbox(database)
    assert (message.provider_id, message.from_phone, message.intent) == ("SM" + "a" * 32, PHONE, "other")
    assert message.needs_staff and not message.likely_opt_out and message.handled_at is None
    assert outbox(database) == []


def test_c_confirms_the_senders_next_appointment_and_plans_a_thank_you(client, database):
    later = book(database, local("2026-12-03", "10:00"))
    sooner = book(database, local("2026-11-26", "10:00"))

    assert text(client, " c. ").status_code == 200

    with fresh(database) as session:
        assert session.get(Appointment, sooner).status == "confirmed"
        assert session.get(Appointment, sooner).confirmed_at is not None
        assert session.get(Appointment, later).status == "booked"
    [message] = inbox(database)
    assert (message.intent, message.appointment_id, message.needs_staff) == ("confirm", sooner, False)
    assert message.handled_at is not None
    [thanks] = outbox(database, kind="reply")
    assert (thanks.channel, thanks.to, thanks.template, thanks.status) == ("sms", PHONE, "reply_confirmed", "pending")
    assert thanks.appointment_id == sooner
    assert abs(thanks.due_at - NOW) < timedelta(minutes=1)


@pytest.mark.parametrize(
    "body", ["C", "c", " C ", "C.", "c!", "YES", "Yes!", "yes", "CONFIRM", "Confirm.", "OUI", "Oui!"]
)
def test_confirmation_words_ignore_case_spaces_and_punctuation(body):
    assert replies.read(body).intent == "confirm"


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "stop",
        "Stop.",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "OPTOUT",
        "REVOKE",
        "ARRET",
        "Arrêt",
        "ARRÊT",
    ],
)
def test_every_twilio_opt_out_word_is_read_as_stop(body):
    assert replies.read(body).intent == "stop"


@pytest.mark.parametrize(
    ("body", "intent"),
    [
        ("START", "start"),
        ("unstop", "start"),
        ("HELP", "help"),
        ("info", "help"),
        ("Aide", "help"),
        ("R", "reschedule"),
        ("reschedule", "reschedule"),
        ("7", "pain"),
        ("10/10", "pain"),
        ("0", "pain"),
        ("DONE", "done"),
        ("11", "other"),
        ("Yes please", "other"),
        ("c u there", "other"),
    ],
)
def test_other_keywords_are_read(body, intent):
    assert replies.read(body).intent == intent


def test_yes_confirms_and_lifts_a_stop(client, database):
    appointment_id = book(database, local("2026-11-26", "10:00"))
    text(client, "STOP")
    assert opted_out(database)

    text(client, "Yes")

    assert not opted_out(database)
    with fresh(database) as session:
        assert session.get(Appointment, appointment_id).status == "confirmed"
    assert [r.template for r in outbox(database, kind="reply")] == ["reply_confirmed"]


def test_c_without_an_upcoming_appointment_says_so_and_goes_to_staff(client, database):
    text(client, "C")

    [message] = inbox(database)
    assert message.intent == "confirm" and message.needs_staff
    assert [r.template for r in outbox(database, kind="reply")] == ["reply_no_appointment"]


def test_stop_records_the_opt_out_and_cancels_pending_texts(client, database):
    appointment_id = book(database, local("2026-11-26", "10:00"))
    pending_sms = [r.id for r in outbox(database, channel="sms", status="pending")]
    assert pending_sms

    assert text(client, "STOP").status_code == 200

    assert opted_out(database)
    with fresh(database) as session:
        [event] = session.scalars(select(ConsentEvent).where(ConsentEvent.source == "sms_reply")).all()
        patient = session.scalars(select(Patient)).one()
        assert (event.patient_id, event.phone, event.channel, event.granted) == (patient.id, PHONE, "sms", False)
        for row_id in pending_sms:
            row = session.get(OutboxMessage, row_id)
            assert row.status == "cancelled" and "opted out" in row.error
        assert {r.status for r in session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "email"))} == {
            "pending"
        }
        assert session.get(Appointment, appointment_id).status == "booked"
    [message] = inbox(database)
    assert (message.intent, message.needs_staff) == ("stop", False)
    assert outbox(database, kind="reply") == []  # Twilio answers STOP itself


def test_stop_then_a_new_booking_with_sms_consent_still_gets_no_sms(client, database):
    text(client, "STOP")

    appointment_id = book(database, local("2026-11-26", "10:00"), sms_consent=True)

    assert {r.channel for r in outbox(database, appointment_id=appointment_id)} == {"email"}


def test_start_resubscribes_the_phone(client, database):
    book(database, local("2026-11-26", "10:00"))
    text(client, "STOP")

    text(client, "START")

    assert not opted_out(database)
    with fresh(database) as session:
        events = session.scalars(
            select(ConsentEvent).where(ConsentEvent.source == "sms_reply").order_by(ConsentEvent.id)
        )
        assert [e.granted for e in events] == [False, True]
    later = book(database, local("2026-12-03", "10:00"))
    assert {r.channel for r in outbox(database, appointment_id=later)} == {"email", "sms"}
    assert outbox(database, kind="reply") == []  # Twilio answers START itself


def test_cancel_is_an_opt_out_and_staff_are_asked_to_call_back(client, database):
    book(database, local("2026-11-26", "10:00"))

    text(client, "CANCEL")

    assert opted_out(database)
    [message] = inbox(database)
    assert message.intent == "stop" and message.needs_staff


def test_help_replies_with_the_clinic_name_and_phone(client, database, webhook_app):
    text(client, "HELP")

    [row] = outbox(database, kind="reply")
    assert (row.template, row.to, row.status) == ("reply_help", PHONE, "pending")
    with fresh(database) as session:
        row = session.get(OutboxMessage, row.id)
        sms = render(
            session, row, settings=webhook_app.extensions["settings"], clinic=session.get(ClinicSettings, 1), now=NOW
        )
    assert "Lakeshore Physio" in sms.body and "(416) 555-0100" in sms.body


def test_aide_replies_in_french(client, database, webhook_app):
    text(client, "aide")

    [row] = outbox(database, kind="reply")
    with fresh(database) as session:
        row = session.get(OutboxMessage, row.id)
        sms = render(
            session, row, settings=webhook_app.extensions["settings"], clinic=session.get(ClinicSettings, 1), now=NOW
        )
    assert "Aide" in sms.body


def test_r_replies_with_the_manage_link(client, database, webhook_app):
    appointment_id = book(database, local("2026-11-26", "10:00"))

    text(client, "R")

    [row] = outbox(database, kind="reply")
    assert (row.template, row.appointment_id) == ("reply_reschedule", appointment_id)
    with fresh(database) as session:
        row = session.get(OutboxMessage, row.id)
        nonce = session.get(Appointment, appointment_id).manage_nonce
        sms = render(
            session, row, settings=webhook_app.extensions["settings"], clinic=session.get(ClinicSettings, 1), now=NOW
        )
    assert BASE_URL + tokens.manage_path(tokens.manage_token(SECRET, nonce)) in sms.body


def test_no_reply_is_planned_to_an_opted_out_phone(client, database):
    text(client, "STOP")
    text(client, "HELP")

    assert outbox(database, kind="reply") == []


@pytest.mark.parametrize(
    "body",
    [
        "Please stop texting me",
        "don't text me anymore",
        "Unsubscribe me please",
        "remove me from this list",
        "Do not text this number",
        "no more texts",
        "Arrêtez de m'écrire svp",
        "je veux me désabonner",
    ],
)
def test_free_text_that_reads_as_an_opt_out_goes_to_staff_flagged(client, database, body):
    text(client, body)

    [message] = inbox(database)
    assert (message.intent, message.needs_staff, message.likely_opt_out) == ("other", True, True)
    assert not opted_out(database)  # a person decides; only the keywords act on their own


@pytest.mark.parametrize(("body", "intent"), [("7", "pain"), ("3/10", "pain"), ("DONE", "done")])
def test_pain_scores_and_done_are_kept_for_staff(client, database, body, intent):
    book(database, local("2026-11-26", "10:00"))
    text(client, body)

    [message] = inbox(database)
    assert (message.intent, message.needs_staff, message.likely_opt_out) == (intent, True, False)
    assert message.patient_id is not None
    assert outbox(database, kind="reply") == []


def test_a_retried_webhook_is_recorded_and_acted_on_once(client, database):
    book(database, local("2026-11-26", "10:00"))
    sid = "SM" + "b" * 32

    assert text(client, "HELP", sid=sid).status_code == 200
    assert text(client, "HELP", sid=sid).status_code == 200

    assert len(inbox(database)) == 1
    assert len(outbox(database, kind="reply")) == 1


# --------------------------------------------------------------------------- status callbacks


def _sent_rows(database, n: int = 2) -> list[int]:
    """Book, then mark the first ``n`` SMS rows sent with provider ids SM1..SMn (the worker's part)."""
    book(database, local("2026-11-26", "10:00"))
    with fresh(database) as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "sms").order_by(OutboxMessage.id))
        ids = []
        for i, row in enumerate(list(rows)[:n], start=1):
            row.status, row.provider_id, row.sent_at, row.attempts = "sent", f"SM{i}", NOW, 1
            ids.append(row.id)
        session.commit()
    return ids


def test_status_callbacks_move_a_message_forward_and_never_back(client, database):
    first, second = _sent_rows(database)

    assert status(client, "SM1", "delivered").status_code == 200
    status(client, "SM1", "sent")  # late and out of order
    status(client, "SM1", "undelivered", "30003")
    status(client, "SM2", "failed", "30003")
    status(client, "SM2", "delivered")
    status(client, "SM2", "queued")

    with fresh(database) as session:
        delivered, failed = session.get(OutboxMessage, first), session.get(OutboxMessage, second)
        assert (delivered.status, delivered.error_code) == ("delivered", None)
        assert delivered.delivered_at is not None
        assert (failed.status, failed.error_code) == ("failed", "30003")
        assert "30003" in failed.error and failed.delivered_at is None


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"MessageSid": "SM1", "MessageStatus": "queued"}, StatusReport("SM1", "sent")),
        ({"SmsSid": "SM1", "SmsStatus": "accepted"}, StatusReport("SM1", "sent")),
        ({"MessageSid": "SM1", "MessageStatus": "Delivered"}, StatusReport("SM1", "delivered")),
        ({"MessageSid": "SM1", "MessageStatus": "being-weird"}, StatusReport("SM1", None)),
        (
            {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "21610"},
            StatusReport(
                "SM1",
                "failed",
                error_code="21610",
                error="Twilio error 21610: the recipient replied STOP; Twilio refuses until START",
                opted_out=True,
            ),
        ),
        (
            {"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "30006"},
            StatusReport(
                "SM1",
                "failed",
                error_code="30006",
                error="Twilio error 30006: landline or unreachable carrier",
                bad_address=True,
            ),
        ),
        (
            {"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "39999"},
            StatusReport("SM1", "failed", error_code="39999", error="Twilio error 39999 (failed)"),
        ),
        (
            {"MessageSid": "SM1", "MessageStatus": "canceled"},
            StatusReport("SM1", "failed", error="Twilio reported canceled"),
        ),
        ({"MessageStatus": "delivered"}, None),
    ],
)
def test_a_status_callback_is_read_into_our_vocabulary_and_the_errors_meaning(form, expected):
    assert read_status_callback(form) == expected


def test_a_status_callback_for_an_unknown_message_is_accepted_and_changes_nothing(client, database):
    _sent_rows(database, 1)
    before = [(r.id, r.status) for r in outbox(database)]

    assert status(client, "SM-not-ours", "delivered").status_code == 200
    assert status(client, "SM1", "something-new").status_code == 200

    assert [(r.id, r.status) for r in outbox(database)] == before


def test_error_21610_in_a_status_callback_records_the_opt_out(client, database):
    [row_id] = _sent_rows(database, 1)

    status(client, "SM1", "undelivered", "21610")

    assert opted_out(database)
    with fresh(database) as session:
        row = session.get(OutboxMessage, row_id)
        assert (row.status, row.error_code) == ("failed", "21610")
        [event] = session.scalars(select(ConsentEvent).where(ConsentEvent.source == "twilio_21610")).all()
        assert event.granted is False
        assert not session.scalars(
            select(OutboxMessage).where(OutboxMessage.channel == "sms", OutboxMessage.status == "pending")
        ).all()


def test_a_landline_error_marks_the_phone_invalid_so_no_more_texts_are_planned(client, database):
    _sent_rows(database, 1)

    status(client, "SM1", "undelivered", "30006")

    with fresh(database) as session:
        assert session.scalars(select(Patient)).one().phone_invalid_at is not None
    later = book(database, local("2026-12-03", "10:00"))
    assert {r.channel for r in outbox(database, appointment_id=later)} == {"email"}


# --------------------------------------------------------------------------- over real HTTP


@pytest.fixture
def live(db_url, database, make_clinic, frozen):
    """The app on a real HTTP server, PUBLIC_BASE_URL pointing at it, and the Twilio double."""
    from werkzeug.serving import make_server

    make_clinic()
    holder = {}
    server = make_server("127.0.0.1", 0, lambda environ, start: holder["app"](environ, start), threaded=True)
    base_url = f"http://127.0.0.1:{server.server_port}"
    with FakeTwilio() as fake:
        app = make_app(db_url, PUBLIC_BASE_URL=base_url, **fake.environ())
        holder["app"] = app
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield base_url, fake, app
        finally:
            server.shutdown()
            thread.join(timeout=5)
            app.extensions["database"].dispose()


def test_a_real_sms_status_callback_signed_by_the_twilio_double_is_applied(live, database):
    base_url, fake, app = live
    book(database, local("2026-11-26", "10:00"))
    settings = app.extensions["settings"]
    transport = build_sms_transport(settings)  # the worker's own registry, from the app's settings
    with fresh(database) as session:  # the worker's part: render, send, record
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "sms").limit(1)).one()
        sms = render(session, row, settings=settings, clinic=session.get(ClinicSettings, 1), now=NOW)
        sent = transport.send(sms)
        row.status, row.provider_id, row.sent_at = sent.status, sent.provider_id, NOW
        session.commit()
        row_id = row.id
    assert fake.get(sent.provider_id)["status_callback"] == base_url + STATUS_PATH

    response = fake.send_status_callback(sent.provider_id, "delivered")

    assert response.status_code == 200
    with fresh(database) as session:
        assert session.get(OutboxMessage, row_id).status == "delivered"


def test_a_real_inbound_stop_signed_by_the_twilio_double_opts_the_phone_out(live, database):
    base_url, fake, _app = live

    response = fake.post_inbound_sms(base_url + SMS_PATH, PHONE, "STOP")

    assert response.status_code == 200
    assert "<Response/>" in response.text
    assert opted_out(database)
