"""Transports against real protocols: the twilio SDK over HTTP to FakeTwilio, smtplib to aiosmtpd."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from twilio.request_validator import RequestValidator

from booking_service.integrations.console import ConsoleEmail, ConsoleSms
from booking_service.integrations.contract import Email, Sent, Sms, SmsTransport, TransportError
from booking_service.integrations.registry import build_email_transport, build_sms_transport, build_transports
from booking_service.integrations.smtp.transport import SmtpEmail
from booking_service.integrations.twilio.errors import classify_twilio_error
from booking_service.integrations.twilio.transport import TwilioSms
from tests.support.environ import settings_from
from tests.support.fake_twilio import FakeTwilio
from tests.support.smtp_server import SmtpServer, free_port, make_self_signed_cert

REPO = Path(__file__).resolve().parents[1]
PATIENT = "+14165550123"
STATUS_URL = "http://127.0.0.1:5000/webhooks/twilio/status"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def twilio(fake: FakeTwilio) -> SmsTransport:
    return build_sms_transport(fake.settings())


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def mailer(smtp: SmtpServer) -> SmtpEmail:
    return SmtpEmail("127.0.0.1", smtp.port, from_addr="Clinic <desk@clinic.example>", timeout=5)


class _Receiver:
    """A tiny web app standing in for ours: records the POSTs Twilio makes to it."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                receiver.requests.append(
                    {
                        "path": self.path,
                        "form": {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()},
                        "signature": self.headers.get("X-Twilio-Signature"),
                    }
                )
                payload = b"<Response/>"
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    app = _Receiver()
    yield app
    app.close()


def _failure(call) -> TransportError:
    with pytest.raises(TransportError) as info:
        call()
    return info.value


# --------------------------------------------------------------------------- Twilio: sending


def test_twilio_send_reaches_the_api_base_url_with_the_status_callback(fake, twilio):
    result = twilio.send(_sms("Your appointment is confirmed."))

    assert result.status == "sent"
    assert result.provider_id.startswith("SM") and len(result.provider_id) == 34
    [message] = fake.sent_to(PATIENT)
    assert message["sid"] == result.provider_id
    assert message["body"] == "Your appointment is confirmed."
    assert message["from"] == fake.phone_number
    assert message["status_callback"] == STATUS_URL
    assert message["num_segments"] == "1"


def test_twilio_send_without_a_status_callback_sends_none(fake, twilio):
    twilio.send(Sms(PATIENT, "Hello"))

    assert fake.sent_to(PATIENT)[0]["status_callback"] is None


def test_twilio_send_through_a_messaging_service_uses_the_service_sid(fake):
    transport = build_sms_transport(
        fake.settings(TWILIO_FROM_NUMBER=None, TWILIO_MESSAGING_SERVICE_SID="MG" + "a" * 32)
    )

    result = transport.send(_sms("Reminder"))

    assert result.status == "sent"  # Twilio answers "accepted" for a Messaging Service
    [message] = fake.sent_to(PATIENT)
    assert message["messaging_service_sid"] == "MG" + "a" * 32


def test_twilio_client_is_built_lazily_and_once(fake):
    transport = TwilioSms(fake.account_sid, fake.auth_token, from_number=fake.phone_number, api_base_url=fake.base_url)
    assert transport._client is None

    transport.send(_sms("one"))
    client = transport.client
    transport.send(_sms("two"))

    assert transport.client is client
    assert len(fake.sent_to(PATIENT)) == 2


# --------------------------------------------------------------------------- Twilio: errors


def test_an_invalid_number_is_permanent_and_marks_the_address_bad(fake, twilio):
    # The fake itself answers 21211 for a number that is not E.164, as Twilio does.
    error = _failure(lambda: twilio.send(_sms("Hi", to="+1")))

    assert error.permanent and error.bad_address and not error.opted_out
    assert error.code == "21211"
    assert "Unable to create record" not in error.message
    assert fake.messages == []


def test_a_landline_number_is_permanent_and_marks_the_address_bad(fake, twilio):
    fake.fail_number(PATIENT, 21614)

    error = _failure(lambda: twilio.send(_sms("Hi")))

    assert error.permanent and error.bad_address
    assert error.code == "21614"


def test_a_patient_who_replied_stop_is_a_permanent_opt_out(fake, twilio):
    fake.fail_number(PATIENT, 21610)

    error = _failure(lambda: twilio.send(_sms("Hi")))

    assert error.permanent and error.opted_out and not error.bad_address
    assert error.code == "21610"


def test_rate_limiting_is_transient(fake, twilio):
    fake.fail_next(429, 20429, count=1)

    error = _failure(lambda: twilio.send(_sms("Hi")))

    assert not error.permanent and error.code == "20429"
    assert twilio.send(_sms("Hi")).status == "sent"  # the next attempt goes through


def test_a_twilio_server_error_is_transient_and_a_retry_succeeds(fake, twilio):
    fake.fail_next(500, 20500, count=2)

    assert not _failure(lambda: twilio.send(_sms("Hi"))).permanent
    assert not _failure(lambda: twilio.send(_sms("Hi"))).permanent
    twilio.send(_sms("Hi"))

    assert len(fake.sent_to(PATIENT)) == 1
    assert [r["status"] for r in fake.rejected] == [500, 500]


def test_fail_number_with_times_fails_only_the_first_attempts(fake, twilio):
    fake.fail_number(PATIENT, 21612, times=1)

    assert _failure(lambda: twilio.send(_sms("Hi"))).permanent
    assert twilio.send(_sms("Hi")).status == "sent"


def test_a_timeout_is_transient_and_uncertain_and_find_sent_reconciles_it(fake):
    fake.latency = 0.5
    transport = TwilioSms(
        fake.account_sid,
        fake.auth_token,
        from_number=fake.phone_number,
        api_base_url=fake.base_url,
        timeout=0.1,
    )
    since = datetime.now(UTC)

    started = time.monotonic()
    error = _failure(lambda: transport.send(_sms("Reminder: Tuesday 10:00")))

    assert time.monotonic() - started < 0.45
    assert not error.permanent and error.uncertain
    # The fake accepted the message before the answer was lost: exactly the case reconciliation
    # exists for.
    fake.latency = 0.0
    [record] = transport.find_sent(PATIENT, since)
    assert record.body == "Reminder: Tuesday 10:00"
    assert record.status == "sent"


def test_wrong_credentials_are_a_transient_auth_error(fake):
    transport = TwilioSms(fake.account_sid, "not-the-token", from_number=fake.phone_number, api_base_url=fake.base_url)

    error = _failure(lambda: transport.send(_sms("Hi")))

    assert not error.permanent
    assert error.code == "20003"
    assert "TWILIO_AUTH_TOKEN" in error.message
    assert fake.messages == []


def test_connection_refused_is_transient_and_certainly_not_sent():
    transport = TwilioSms(
        "AC" + "1" * 32,
        "token",
        from_number="+15005550006",
        api_base_url=f"http://127.0.0.1:{free_port()}",
        timeout=2,
    )

    error = _failure(lambda: transport.send(_sms("Hi")))

    assert not error.permanent
    assert not error.uncertain


@pytest.mark.parametrize(
    ("status", "code", "permanent", "opted_out", "bad_address"),
    [
        (400, 21211, True, False, True),  # invalid To
        (400, 21614, True, False, True),  # not a mobile number
        (400, 21610, True, True, False),  # replied STOP
        (400, 21612, True, False, False),  # cannot route
        (400, 21408, True, False, False),  # region not enabled
        (400, 21606, True, False, False),  # bad From
        (400, 21659, True, False, False),  # From not ours
        (None, 30003, True, False, False),  # unreachable handset, reported synchronously
        (None, 30005, True, False, True),  # unknown handset
        (None, 30006, True, False, True),  # landline
        (429, 20429, False, False, False),  # rate limited
        (429, None, False, False, False),
        (401, 20003, False, False, False),  # bad credentials: fix config, messages go out
        (401, None, False, False, False),
        (500, 20500, False, False, False),
        (502, None, False, False, False),
        (503, 20503, False, False, False),
        (None, None, False, False, False),  # no answer at all
        (400, 99999, True, False, False),  # an unknown 4xx is permanent
        (404, 20404, True, False, False),
    ],
)
def test_classify_twilio_error_follows_one_table(status, code, permanent, opted_out, bad_address):
    error = classify_twilio_error(status, code, "boom")

    assert (error.permanent, error.opted_out, error.bad_address) == (permanent, opted_out, bad_address)
    assert error.code == (str(code) if code is not None else None)
    assert "boom" in error.message


# --------------------------------------------------------------------------- Twilio: find_sent


def test_find_sent_follows_every_page(fake, twilio):
    since = datetime.now(UTC)
    for i in range(7):
        twilio.send(_sms(f"message {i}"))
    twilio.send(_sms("someone else", to="+14165550999"))
    fake.max_page_size = 2  # Twilio caps PageSize; a small cap forces four pages

    records = twilio.find_sent(PATIENT, since - timedelta(seconds=1))

    assert sorted(r.body for r in records) == [f"message {i}" for i in range(7)]
    assert {r.to for r in records} == {PATIENT}
    assert all(r.created_at.tzinfo is not None for r in records)
    assert {r.provider_id for r in records} == {m["sid"] for m in fake.sent_to(PATIENT)}


def test_find_sent_skips_messages_created_before_since(fake, twilio):
    now = datetime.now(UTC).replace(microsecond=0)
    fake.seed_message(PATIENT, "yesterday", date_created=now - timedelta(days=1))
    fake.seed_message(PATIENT, "an hour ago", date_created=now - timedelta(hours=1))
    twilio.send(_sms("just now"))

    records = twilio.find_sent(PATIENT, now - timedelta(minutes=5))

    assert [r.body for r in records] == ["just now"]


def test_find_sent_reports_delivery_status_in_our_vocabulary(fake, twilio):
    since = datetime.now(UTC)
    delivered = twilio.send(_sms("one"))
    failed = twilio.send(_sms("two"))
    fake.seed_message(PATIENT, "three", date_created=datetime.now(UTC), status="undelivered")
    fake.set_status(delivered.provider_id, "delivered")
    fake.set_status(failed.provider_id, "failed", error_code=30003)

    statuses = {r.body: r.status for r in twilio.find_sent(PATIENT, since)}

    assert statuses == {"one": "delivered", "two": "failed", "three": "failed"}


def test_find_sent_turns_a_failed_page_into_a_transient_error(fake, twilio):
    fake.fail_next(503, 20503, count=1)

    error = _failure(lambda: twilio.find_sent(PATIENT, datetime.now(UTC)))

    assert not error.permanent and error.code == "20503"


def test_sdk_list_and_fetch_work_unmodified_against_the_fake(fake, twilio):
    for i in range(5):
        twilio.send(_sms(f"m{i}"))
    client = twilio.client

    listed = client.messages.list(to=PATIENT, page_size=2)
    fetched = client.messages(listed[0].sid).fetch()

    assert [m.body for m in listed] == ["m4", "m3", "m2", "m1", "m0"]  # newest first
    assert fetched.body == "m4" and fetched.date_sent is not None
    page = client.messages.page(to=PATIENT, page_size=2)
    assert page.next_page_url.startswith("https://api.twilio.com/2010-04-01/")  # rewritten on call


# --------------------------------------------------------------------------- the fake itself


def test_fake_signs_status_callbacks_like_twilio(fake, twilio, receiver):
    url = receiver.url + "/webhooks/twilio/status?attempt=1"
    sent = twilio.send(_sms("Hi", status_callback=url))

    response = fake.send_status_callback(sent.provider_id, "undelivered", error_code=30003)

    assert response.status_code == 200
    [request] = receiver.requests
    form = request["form"]
    assert form["MessageSid"] == sent.provider_id
    assert form["MessageStatus"] == "undelivered"
    assert form["ErrorCode"] == "30003"
    assert form["To"] == PATIENT and form["AccountSid"] == fake.account_sid
    assert RequestValidator(fake.auth_token).validate(url, form, request["signature"])
    assert not RequestValidator("another-token").validate(url, form, request["signature"])
    assert fake.get(sent.provider_id)["status"] == "undelivered"


def test_fake_posts_signed_inbound_sms(fake, receiver):
    url = receiver.url + "/webhooks/twilio/sms"

    response = fake.post_inbound_sms(url, from_=PATIENT, body="C")

    assert response.status_code == 200
    [request] = receiver.requests
    form = request["form"]
    assert (form["From"], form["Body"], form["NumMedia"]) == (PATIENT, "C", "0")
    assert form["To"] == fake.phone_number
    assert RequestValidator(fake.auth_token).validate(url, form, request["signature"])


def test_fake_counts_ucs2_segments_like_twilio(fake, twilio):
    twilio.send(_sms("a" * 160))
    twilio.send(_sms("a" * 161))
    twilio.send(_sms("a\u00a0b"))  # a non-breaking space makes the whole text UCS-2
    twilio.send(_sms("é" * 71))  # é is GSM-7
    twilio.send(_sms("ą" * 71))  # ą is not

    assert [m["num_segments"] for m in fake.messages] == ["1", "2", "1", "1", "2"]


def test_fake_sustains_hundreds_of_sends_per_second_with_latency(fake):
    fake.latency = 0.05
    transport = build_sms_transport(fake.settings())
    count = 300

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(lambda i: transport.send(_sms(f"n{i}")), range(count)))
    elapsed = time.monotonic() - started

    assert len({r.provider_id for r in results}) == count
    assert len(fake.messages) == count
    assert count / elapsed > 100, f"{count / elapsed:.0f} requests/s"


def test_fake_runs_standalone_and_serves_other_processes():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_twilio", "--port", "0", "--latency-ms", "1",
         "--account-sid", "AC" + "2" * 32, "--auth-token", "standalone-token"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        transport = build_sms_transport(
            settings_from(
                SMS_BACKEND="twilio",
                TWILIO_ACCOUNT_SID="AC" + "2" * 32,
                TWILIO_AUTH_TOKEN="standalone-token",
                TWILIO_FROM_NUMBER="+15005550006",
                TWILIO_API_BASE_URL=base_url,
            )
        )
        sent = transport.send(_sms("from another process"))

        with urllib.request.urlopen(base_url + "/_fake/messages", timeout=5) as answer:
            messages = json.load(answer)["messages"]
        assert [m["sid"] for m in messages] == [sent.provider_id]
        request = urllib.request.Request(base_url + "/_fake/reset", data=b"", method="POST")
        urllib.request.urlopen(request, timeout=5).close()
        with urllib.request.urlopen(base_url + "/_fake/messages", timeout=5) as answer:
            assert json.load(answer)["messages"] == []
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=10)
        process.stdout.close()
    assert exit_code == 0


# --------------------------------------------------------------------------- configuration


def _twilio_settings(**variables: str):
    return settings_from(
        SMS_BACKEND="twilio",
        TWILIO_ACCOUNT_SID="AC" + "3" * 32,
        TWILIO_AUTH_TOKEN="token",
        TWILIO_FROM_NUMBER="+15005550006",
        **variables,
    )


def test_sms_transport_builds_from_the_typed_settings_and_nothing_is_built_before_a_send():
    transport = build_sms_transport(_twilio_settings(TWILIO_API_BASE_URL="http://127.0.0.1:8765/"))

    assert isinstance(transport, TwilioSms)
    assert transport._client is None  # nothing built until the first send
    assert (transport.account_sid, transport.from_number) == ("AC" + "3" * 32, "+15005550006")
    assert transport.api_base_url == "http://127.0.0.1:8765"
    assert transport.timeout == 10
    assert isinstance(build_sms_transport(settings_from()), ConsoleSms)


def test_email_transport_builds_from_the_typed_settings():
    settings = settings_from(
        EMAIL_BACKEND="smtp",
        SMTP_HOST="mail.example",
        SMTP_PORT="587",
        SMTP_STARTTLS="true",
        EMAIL_FROM="desk@clinic.example",
    )

    transport = build_email_transport(settings)

    assert isinstance(transport, SmtpEmail)
    assert (transport.host, transport.port, transport.starttls) == ("mail.example", 587, True)
    assert transport.from_addr == "desk@clinic.example"
    assert isinstance(build_email_transport(settings_from()), ConsoleEmail)


@pytest.mark.parametrize(("send_timeout", "expected"), [(None, 10), (1.0, 1.0), (20.0, 10)])
def test_transports_are_built_with_their_timeout_capped_by_send_timeout(fake, smtp, send_timeout, expected):
    transports = build_transports(settings_from(fake.environ(), smtp.environ()), send_timeout=send_timeout)

    assert isinstance(transports.sms, TwilioSms) and isinstance(transports.email, SmtpEmail)
    assert transports.sms.timeout == expected and transports.email.timeout == expected
    assert transports.for_channel("sms") is transports.sms and transports.for_channel("email") is transports.email


# --------------------------------------------------------------------------- console


MANAGE_LINK = "https://clinic.example/m/Zq3xL0ngRand0mT0ken"
REMINDER = f"Lakeshore Physio: Sam, see you Tue 10:00 at Main St. Manage: {MANAGE_LINK}"
DEVELOPMENT = {"APP_ENV": "development"}
PRODUCTION = {
    "APP_ENV": "production",
    "SMS_BACKEND": "console",
    "EMAIL_BACKEND": "console",
    "PUBLIC_BASE_URL": "https://clinic.example",
}


def _console(environ: dict[str, str]):
    transports = build_transports(settings_from(environ))
    assert isinstance(transports.sms, ConsoleSms) and isinstance(transports.email, ConsoleEmail)
    return transports


def test_console_sms_in_development_logs_the_whole_message_and_reports_it_delivered(caplog):
    transport = _console(DEVELOPMENT).sms

    with caplog.at_level(logging.INFO, logger="booking_service.messaging"):
        result = transport.send(_sms(REMINDER))

    assert result.status == "delivered" and result.provider_id.startswith("console-")
    assert PATIENT in caplog.text and REMINDER in caplog.text
    assert transport.find_sent(PATIENT, datetime.now(UTC)) == []


def test_console_email_in_development_logs_text_html_and_calendar_and_reports_its_message_id(caplog):
    with caplog.at_level(logging.INFO, logger="booking_service.messaging"):
        result = _console(DEVELOPMENT).email.send(_email(ics=b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"))

    assert result == Sent(provider_id=result.provider_id, status="delivered")
    assert result.provider_id.startswith("<appt-1")
    for fragment in ("pat@example.org", "Your appointment", "<p>See you", "BEGIN:VCALENDAR", "<appt-1"):
        assert fragment in caplog.text


@pytest.mark.parametrize("environ", [PRODUCTION, {"APP_ENV": "test"}], ids=["production", "test"])
def test_console_sms_outside_development_logs_no_text_number_or_link(caplog, environ):
    with caplog.at_level(logging.INFO, logger="booking_service.messaging"):
        result = _console(environ).sms.send(_sms(REMINDER))

    assert result.status == "delivered"
    [logged] = [r.getMessage() for r in caplog.records]
    assert result.provider_id in logged and "SMS" in logged
    assert "***0123" in logged and f"{len(REMINDER)} chars" in logged
    for secret in (PATIENT, "4165550123", "Sam", "Main St", MANAGE_LINK, "Zq3xL0ngRand0mT0ken", "Lakeshore"):
        assert secret not in caplog.text


@pytest.mark.parametrize("environ", [PRODUCTION, {"APP_ENV": "test"}], ids=["production", "test"])
def test_console_email_outside_development_logs_no_address_subject_or_body(caplog, environ):
    email = _email(html=f"<p>See you. <a href='{MANAGE_LINK}'>Manage</a></p>", ics=b"BEGIN:VCALENDAR\r\n")

    with caplog.at_level(logging.INFO, logger="booking_service.messaging"):
        result = _console(environ).email.send(email)

    assert result == Sent(provider_id="<appt-1.confirmation@clinic.example>", status="delivered")
    [logged] = [r.getMessage() for r in caplog.records]
    assert result.provider_id in logged and "E-mail" in logged
    assert "***@example.org" in logged and f"{len(email.text)} chars" in logged
    for secret in ("pat@example.org", "Your appointment", "See you", MANAGE_LINK, "VCALENDAR"):
        assert secret not in caplog.text


# --------------------------------------------------------------------------- SMTP


def test_smtp_delivers_text_html_and_calendar_with_a_stable_message_id(smtp, mailer):
    ics = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"

    result = mailer.send(_email(ics=ics))

    assert result == Sent(provider_id="<appt-1.confirmation@clinic.example>", status="sent")
    [received] = smtp.messages
    assert received.rcpt_tos == ["pat@example.org"]
    assert received.mail_from == "desk@clinic.example"
    message = received.message
    assert message["Message-ID"] == "<appt-1.confirmation@clinic.example>"
    assert message["Subject"] == "Your appointment"
    assert message.get_content_type() == "multipart/mixed"
    alternative = next(p for p in message.iter_parts() if p.get_content_type() == "multipart/alternative")
    kinds = [p.get_content_type() for p in alternative.iter_parts()]
    assert kinds == ["text/plain", "text/html", "text/calendar"]
    plain, html, calendar = alternative.iter_parts()
    assert plain.get_content().strip() == "See you on Tuesday."
    assert "<p>See you" in html.get_content()
    assert calendar.get_param("method") == "REQUEST"
    assert calendar.get_content().replace("\r\n", "\n") == ics.decode().replace("\r\n", "\n")
    [attachment] = [p for p in message.iter_attachments()]
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content() == ics


def test_smtp_retry_keeps_the_same_message_id(smtp, mailer):
    mailer.send(_email())
    mailer.send(_email())

    ids = [m.message["Message-ID"] for m in smtp.messages]
    assert ids == ["<appt-1.confirmation@clinic.example>"] * 2


def test_smtp_text_only_email_is_a_single_plain_part(smtp, mailer):
    mailer.send(_email(html=None))

    message = smtp.messages[0].message
    assert message.get_content_type() == "text/plain"
    assert message.get_content().strip() == "See you on Tuesday."


def test_smtp_cancellation_carries_method_cancel(smtp, mailer):
    mailer.send(_email(ics=b"BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nEND:VCALENDAR\r\n", ics_method="CANCEL"))

    message = smtp.messages[0].message
    calendar = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    assert calendar.get_param("method") == "CANCEL"
    assert [p.get_filename() for p in message.iter_attachments()] == ["cancel.ics"]


def test_smtp_unknown_mailbox_is_permanent_and_marks_the_address_bad(smtp, mailer):
    smtp.reject("pat@example.org", 550, "5.1.1 No such user")

    error = _failure(lambda: mailer.send(_email()))

    assert error.permanent and error.bad_address
    assert error.code == "550" and "No such user" in error.message
    assert smtp.messages == []


def test_smtp_deferral_is_transient(smtp, mailer):
    smtp.defer("pat@example.org")

    error = _failure(lambda: mailer.send(_email()))

    assert not error.permanent and not error.bad_address
    assert error.code == "451"
    smtp.clear_failures()
    mailer.send(_email())
    assert len(smtp.messages) == 1


def test_smtp_message_refused_after_data_is_permanent_but_not_a_bad_address(smtp, mailer):
    smtp.reject("pat@example.org", 554, "5.7.1 Message rejected as spam", stage="data")

    error = _failure(lambda: mailer.send(_email()))

    assert error.permanent and not error.bad_address and error.code == "554"


def test_smtp_temporary_failure_after_data_is_transient(smtp, mailer):
    smtp.reject("pat@example.org", 452, "4.3.1 Insufficient system storage", stage="data")

    assert not _failure(lambda: mailer.send(_email())).permanent


def test_smtp_connection_refused_is_transient():
    mailer = SmtpEmail("127.0.0.1", free_port(), from_addr="desk@clinic.example", timeout=2)

    error = _failure(lambda: mailer.send(_email()))

    assert not error.permanent


def test_smtp_starttls_requested_but_not_offered_is_a_transient_config_error(smtp):
    mailer = SmtpEmail("127.0.0.1", smtp.port, starttls=True, from_addr="desk@clinic.example", timeout=5)

    error = _failure(lambda: mailer.send(_email()))

    assert not error.permanent and "STARTTLS" in error.message


@pytest.fixture
def tls_smtp(tmp_path, monkeypatch):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = make_self_signed_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust our own CA for this test only
    with SmtpServer(tls_cert=cert, tls_key=key, require_starttls=True, auth=("clinic", "s3cret")) as server:
        yield server


def _tls_mailer(server: SmtpServer, *, password: str) -> SmtpEmail:
    """The SMTP transport as the app builds it, for STARTTLS and login as ``clinic``."""
    settings = settings_from(
        server.environ(SMTP_USERNAME="clinic", SMTP_PASSWORD=password, SMTP_STARTTLS="true"),
        EMAIL_FROM="desk@clinic.example",
    )
    mailer = build_email_transport(settings, send_timeout=5)
    assert isinstance(mailer, SmtpEmail) and mailer.starttls
    return mailer


def test_smtp_starttls_and_login_send_over_tls(tls_smtp):
    mailer = _tls_mailer(tls_smtp, password="s3cret")

    mailer.send(_email())

    [received] = tls_smtp.messages
    assert received.tls
    assert tls_smtp.auth_attempts == ["clinic"]


def test_smtp_wrong_password_is_a_transient_config_error(tls_smtp):
    mailer = _tls_mailer(tls_smtp, password="wrong")

    error = _failure(lambda: mailer.send(_email()))

    assert not error.permanent and error.code == "535"
    assert "SMTP_PASSWORD" in error.message
    assert tls_smtp.messages == []


# --------------------------------------------------------------------------- helpers


def _sms(body: str, *, to: str = PATIENT, status_callback: str | None = STATUS_URL) -> Sms:
    return Sms(to=to, body=body, status_callback=status_callback)


def _email(*, html: str | None = "<p>See you on Tuesday.</p>", ics: bytes | None = None, ics_method="REQUEST"):
    return Email(
        to="pat@example.org",
        subject="Your appointment",
        text="See you on Tuesday.",
        html=html,
        message_id="appt-1.confirmation@clinic.example",
        ics=ics,
        ics_method=ics_method,
    )
