"""A local, Twilio-compatible HTTP server for tests and benchmarks.

It speaks the parts of Twilio's REST API (2010-04-01) the application uses, closely enough
that the real ``twilio`` SDK works against it unmodified once ``TWILIO_API_BASE_URL`` points
here:

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``: create (form-encoded ``To``,
  ``From`` or ``MessagingServiceSid``, ``Body``, ``StatusCallback``), answered 201 with
  Twilio's message JSON; HTTP Basic auth checked, 401 with error 20003 otherwise.
* ``GET .../Messages.json``: list, newest first, filters ``To``, ``From``, ``DateSent``,
  ``DateSent>`` (on or after) and ``DateSent<`` (on or before) with a date or a date-time,
  ``PageSize`` (capped by :attr:`FakeTwilio.max_page_size`, 1000 like Twilio) and Twilio's
  page shape with a ``next_page_uri`` carrying a ``PageToken``.
* ``GET .../Messages/{Sid}.json``: fetch one.

A created message answers ``queued`` (``accepted`` through a Messaging Service) with a null
``date_sent``, as Twilio does; it is then treated as sent at once (``status`` ``sent`` and a
``date_sent`` for the list and fetch), until :meth:`FakeTwilio.send_status_callback` moves it on.

Failure injection: :meth:`FakeTwilio.fail_number` (one number's creates), :meth:`FakeTwilio.fail_next`
(the next few requests) and :meth:`FakeTwilio.outage` (every request, until switched off: Twilio
answering 500 or 429 for a while). :meth:`FakeTwilio.attempts_to` lists every create for a
number, accepted or refused, with its time: the retry schedule as Twilio saw it.

Control from other processes (JSON, no auth): ``GET /_fake/messages``, ``POST /_fake/reset``,
``POST /_fake/latency`` ``{"seconds"}``, ``POST /_fake/fail_number`` ``{"number", "code",
"status", "times"}``, ``POST /_fake/fail_next`` ``{"status", "code", "count"}``,
``POST /_fake/outage`` ``{"status", "code"}`` (``{"status": null}`` ends it),
``POST /_fake/status_callback`` ``{"sid", "status", "error_code"}``.

Standalone::

    python -m tests.support.fake_twilio --port 8765 --latency-ms 50 \\
        --account-sid AC... --auth-token ...

prints its base URL on stdout and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import json
import math
import re
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from twilio.request_validator import RequestValidator

from booking_service.config import Settings
from tests.support.environ import settings_from, variables

DEFAULT_ACCOUNT_SID = "AC" + "0" * 30 + "01"
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token-0001"
DEFAULT_PHONE_NUMBER = "+15005550006"  # Twilio's "valid" magic test number
API_VERSION = "2010-04-01"

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ACCOUNT_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages(?:/(?P<sid>[^/]+))?\.json$")

# GSM 03.38 basic character set; anything else makes a message UCS-2 (70 characters a segment
# instead of 160). The extension table's characters cost two septets each.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def count_segments(body: str) -> int:
    """How many SMS segments Twilio would bill for ``body``."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in body):
        septets = sum(2 if ch in _GSM_EXTENDED else 1 for ch in body)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def _rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment.astimezone(UTC)) if moment is not None else None


def _error_body(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


# Messages for injected failures, so the SDK's exception text looks like Twilio's.
_ERROR_MESSAGES = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service Unavailable",
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable using the 'From' phone number via SMS.",
    21614: "'To' number is not a valid mobile number",
}


@dataclass
class _FailNumber:
    code: int
    status: int
    remaining: int | None  # None: for ever


@dataclass
class _FailNext:
    status: int
    code: int
    remaining: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 512
    allow_reuse_address = True
    fake: FakeTwilio

    def handle_error(self, request, client_address):
        # A client that timed out and hung up is expected (timeout tests); stay quiet.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's pooled session expects
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK stalls
    # every keep-alive response by ~40 ms.
    disable_nagle_algorithm = True
    server: _Server
    server_version = "FakeTwilio/1.0"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        if parts.path.startswith("/_fake/"):
            status, payload = fake._control(method, parts.path, raw)
            self._send_json(status, payload)
            return
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        form: dict[str, str] = {}
        if raw and "json" not in (self.headers.get("Content-Type") or ""):
            form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
        status, payload = fake._api(method, parts.path, query, form, self.headers.get("Authorization"))
        # Latency after the work and before the answer: a client that gives up has still had
        # its message accepted, like a Twilio response lost on the way back.
        delay = fake.latency
        if delay > 0:
            time.sleep(delay)
        headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else {}
        self._send_json(status, payload, headers)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode("utf-8") if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Twilio-Request-Id", "RQ" + uuid.uuid4().hex)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class FakeTwilio:
    """A Twilio-compatible server on a background thread. Use ``with FakeTwilio() as fake:``.

    ``latency`` (seconds, changeable while running) delays every API answer; each request has
    its own thread, so latency does not limit throughput.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        phone_number: str = DEFAULT_PHONE_NUMBER,
    ) -> None:
        self.host = host
        self.port = port
        self.latency = latency
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.phone_number = phone_number
        self.max_page_size = 1000
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []  # creation order
        self._by_sid: dict[str, dict[str, Any]] = {}
        self._rejected: list[dict[str, Any]] = []
        self._fail_numbers: dict[str, _FailNumber] = {}
        self._fail_next: list[_FailNext] = []
        self._outage: tuple[int, int] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeTwilio:
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.fake = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-twilio", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environ(self, **overrides: str | None) -> dict[str, str]:
        """The variables that point the app's Twilio transport here (``SMS_BACKEND`` and
        friends), as the environment carries them. An override of None unsets a variable."""
        return variables(
            **{
                "SMS_BACKEND": "twilio",
                "TWILIO_ACCOUNT_SID": self.account_sid,
                "TWILIO_AUTH_TOKEN": self.auth_token,
                "TWILIO_FROM_NUMBER": self.phone_number,
                "TWILIO_API_BASE_URL": self.base_url,
                **overrides,
            }
        )

    def settings(self, **overrides: str | None) -> Settings:
        """Typed settings for the app, parsed by ``load_settings`` from :meth:`environ`."""
        return settings_from(self.environ(**overrides))

    # ------------------------------------------------------------------ failure injection

    def fail_number(self, number: str, code: int, status: int = 400, times: int | None = None) -> None:
        """Creates to ``number`` fail with Twilio ``code``: always, or the first ``times`` attempts."""
        with self._lock:
            self._fail_numbers[number] = _FailNumber(code=code, status=status, remaining=times)

    def fail_next(self, status: int, code: int, count: int = 1) -> None:
        """The next ``count`` API requests (any method, any number) answer ``status``/``code``."""
        with self._lock:
            self._fail_next.append(_FailNext(status=status, code=code, remaining=count))

    def outage(self, status: int | None, code: int | None = None) -> None:
        """From now on every API request (create, list, fetch) answers ``status`` with Twilio
        error ``code`` (500 with 20500, 429 with 20429, ...), as Twilio does while it is down or
        throttling the account; ``outage(None)`` ends it."""
        with self._lock:
            self._outage = None if status is None else (status, code or (20429 if status == 429 else 20500))

    def reset(self) -> None:
        """Forget messages, rejections and injected failures (latency is kept)."""
        with self._lock:
            self._messages.clear()
            self._by_sid.clear()
            self._rejected.clear()
            self._fail_numbers.clear()
            self._fail_next.clear()
            self._outage = None

    # ------------------------------------------------------------------ inspection

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every message created, oldest first: Twilio's JSON plus ``status_callback``."""
        with self._lock:
            return [self._public(m, internal=True) for m in self._messages]

    @property
    def rejected(self) -> list[dict[str, Any]]:
        """Create attempts answered with an error: ``{"to", "body", "status", "code", "at"}``
        (``at``: the Unix time it came)."""
        with self._lock:
            return [dict(r) for r in self._rejected]

    def attempts_to(self, number: str) -> list[tuple[float, int]]:
        """Every create for ``number``, accepted or refused: (Unix time, HTTP status), oldest first."""
        with self._lock:
            refused = [(r["at"], r["status"]) for r in self._rejected if r["to"] == number]
            accepted = [(m["date_created"].timestamp(), 201) for m in self._messages if m["to"] == number]
        return sorted(refused + accepted)

    def sent_to(self, number: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["to"] == number]

    def get(self, sid: str) -> dict[str, Any]:
        with self._lock:
            return self._public(self._by_sid[sid], internal=True)

    def seed_message(
        self,
        to: str,
        body: str,
        *,
        date_created: datetime,
        status: str = "delivered",
        from_: str | None = None,
    ) -> dict[str, Any]:
        """Record a message as if it had been created earlier (for reconciliation tests)."""
        message = self._new_message(
            to=to,
            from_=from_ or self.phone_number,
            body=body,
            messaging_service_sid=None,
            status_callback=None,
            now=date_created.astimezone(UTC),
        )
        message["status"] = status
        if status not in ("accepted", "queued", "scheduled"):
            message["date_sent"] = message["date_created"]
        with self._lock:
            self._store(message)
        return self._public(message, internal=True)

    def set_status(self, sid: str, status: str, error_code: int | str | None = None) -> None:
        """Move a stored message to ``status`` (what the list and fetch answer), no callback."""
        with self._lock:
            self._set_status(self._by_sid[sid], status, error_code)

    @staticmethod
    def _set_status(message: dict[str, Any], status: str, error_code: int | str | None) -> None:
        message["status"] = status
        message["date_updated"] = datetime.now(UTC)
        if error_code is not None:
            message["error_code"] = int(error_code)

    # ------------------------------------------------------------------ webhooks out

    def send_status_callback(self, sid: str, status: str, error_code: int | str | None = None) -> requests.Response:
        """POST Twilio's status callback for message ``sid`` to its StatusCallback URL, signed.

        Also moves the stored message to ``status``. Raises LookupError when the message had
        no StatusCallback.
        """
        with self._lock:
            message = self._by_sid[sid]
            self._set_status(message, status, error_code)
            url = message["_status_callback"]
            params = {
                "AccountSid": self.account_sid,
                "ApiVersion": API_VERSION,
                "From": message["from"] or self.phone_number,
                "MessageSid": sid,
                "MessageStatus": status,
                "SmsSid": sid,
                "SmsStatus": status,
                "To": message["to"],
            }
            if message["messaging_service_sid"]:
                params["MessagingServiceSid"] = message["messaging_service_sid"]
        if not url:
            raise LookupError(f"message {sid} has no StatusCallback")
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return self._post_signed(url, params)

    def post_inbound_sms(self, url: str, from_: str, body: str, to: str | None = None) -> requests.Response:
        """POST an inbound SMS to ``url`` as Twilio's messaging webhook does, signed."""
        sid = "SM" + uuid.uuid4().hex
        params = {
            "ToCountry": "US",
            "ToState": "",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": "",
            "To": to or self.phone_number,
            "ToZip": "",
            "NumSegments": str(count_segments(body)),
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }
        return self._post_signed(url, params)

    def signature(self, url: str, params: dict[str, str]) -> str:
        """The X-Twilio-Signature Twilio would send for a POST of ``params`` to ``url``."""
        return RequestValidator(self.auth_token).compute_signature(url, params)

    def _post_signed(self, url: str, params: dict[str, str]) -> requests.Response:
        headers = {
            "X-Twilio-Signature": self.signature(url, params),
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        }
        return requests.post(url, data=params, headers=headers, timeout=10, allow_redirects=False)

    # ------------------------------------------------------------------ the API

    def _api(
        self, method: str, path: str, query: dict[str, str], form: dict[str, str], authorization: str | None
    ) -> tuple[int, Any]:
        match = _ACCOUNT_PATH.match(path)
        if match is None:
            return 404, _error_body(404, 20404, f"The requested resource {path} was not found")
        if not self._authorized(authorization):
            body = _error_body(401, 20003, "Authenticate")
            body["detail"] = "Your AccountSid or AuthToken was incorrect."
            return 401, body
        if match["account"] != self.account_sid:
            return 404, _error_body(404, 20404, f"The requested resource {path} was not found")
        with self._lock:
            injected = self._outage or self._take_fail_next()
            if injected is not None:
                if method == "POST":
                    self._rejected.append(
                        {
                            "to": form.get("To"),
                            "body": form.get("Body"),
                            "status": injected[0],
                            "code": injected[1],
                            "at": time.time(),
                        }
                    )
                return injected[0], _error_body(
                    injected[0], injected[1], _ERROR_MESSAGES.get(injected[1], "Injected failure")
                )
            sid = match["sid"]
            if method == "POST" and sid is None:
                return self._create(form)
            if method == "GET" and sid is None:
                return self._list(path, query)
            if method == "GET":
                message = self._by_sid.get(sid)
                if message is None:
                    return 404, _error_body(404, 20404, f"The requested resource {path} was not found")
                return 200, self._public(message)
        return 405, _error_body(405, 20004, "Method not allowed")

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == self.account_sid and password == self.auth_token

    def _take_fail_next(self) -> tuple[int, int] | None:
        while self._fail_next:
            head = self._fail_next[0]
            if head.remaining <= 0:
                self._fail_next.pop(0)
                continue
            head.remaining -= 1
            return head.status, head.code
        return None

    def _create(self, form: dict[str, str]) -> tuple[int, Any]:
        to = form.get("To", "")
        body = form.get("Body", "")
        from_ = form.get("From") or None
        service = form.get("MessagingServiceSid") or None

        def reject(status: int, code: int, message: str) -> tuple[int, Any]:
            self._rejected.append({"to": to, "body": body, "status": status, "code": code, "at": time.time()})
            return status, _error_body(status, code, message)

        if not to:
            return reject(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service:
            return reject(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
        if not body:
            return reject(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return reject(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        failing = self._fail_numbers.get(to)
        if failing is not None and (failing.remaining is None or failing.remaining > 0):
            if failing.remaining is not None:
                failing.remaining -= 1
            return reject(
                failing.status,
                failing.code,
                _ERROR_MESSAGES.get(failing.code, f"Injected error {failing.code} for {to}"),
            )
        if not _E164.match(to):
            return reject(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        message = self._new_message(
            to=to,
            from_=from_,
            body=body,
            messaging_service_sid=service,
            status_callback=form.get("StatusCallback") or None,
            now=datetime.now(UTC),
        )
        response = self._public(message)  # as Twilio answers: queued, not yet sent
        # From here on the message counts as sent by the carrier.
        message["status"] = "sent"
        message["date_sent"] = message["date_created"]
        if message["from"] is None:
            message["from"] = self.phone_number  # a Messaging Service picks a sender
        self._store(message)
        return 201, response

    def _new_message(
        self,
        *,
        to: str,
        from_: str | None,
        body: str,
        messaging_service_sid: str | None,
        status_callback: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        sid = "SM" + uuid.uuid4().hex
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": messaging_service_sid,
            "num_media": "0",
            "num_segments": str(count_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if messaging_service_sid else "queued",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}/Media.json",
            },
            "to": to,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json",
            "_status_callback": status_callback,
        }

    def _store(self, message: dict[str, Any]) -> None:
        self._messages.append(message)
        self._by_sid[message["sid"]] = message

    @staticmethod
    def _public(message: dict[str, Any], *, internal: bool = False) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in message.items() if not k.startswith("_")}
        for key in ("date_created", "date_sent", "date_updated"):
            out[key] = _rfc2822(message[key])
        if internal:
            out["status_callback"] = message["_status_callback"]
        return out

    def _list(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        try:
            page_size = max(1, min(int(query.get("PageSize") or 50), self.max_page_size))
            page = int(query.get("Page") or 0)
        except ValueError:
            return 400, _error_body(400, 20001, "Invalid paging parameter")
        # Newest first, as Twilio lists; creation order breaks ties within one second.
        ordered = sorted(enumerate(self._messages), key=lambda im: (im[1]["date_sent"] or im[1]["date_created"], im[0]))
        candidates = [m for _, m in reversed(ordered)]
        try:
            candidates = [m for m in candidates if self._matches(m, query)]
        except ValueError as exc:
            return 400, _error_body(400, 20001, str(exc))
        token = query.get("PageToken")
        if token:
            after = token.removeprefix("PA")
            sids = [m["sid"] for m in candidates]
            candidates = candidates[sids.index(after) + 1 :] if after in sids else []
        chunk = candidates[:page_size]
        filters = {k: v for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")}
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

        def uri(page_number: int, page_token: str | None = None) -> str:
            params = {**filters, "PageSize": page_size, "Page": page_number}
            if page_token:
                params["PageToken"] = page_token
            return f"{base}?{urlencode(params)}"

        has_more = len(candidates) > page_size
        return 200, {
            "end": page * page_size + max(len(chunk) - 1, 0),
            "first_page_uri": uri(0),
            "messages": [self._public(m) for m in chunk],
            "next_page_uri": uri(page + 1, "PA" + chunk[-1]["sid"]) if has_more else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": uri(page - 1, "PB" + chunk[0]["sid"]) if page > 0 and chunk else None,
            "start": page * page_size,
            "uri": uri(page, token),
        }

    @staticmethod
    def _matches(message: dict[str, Any], query: dict[str, str]) -> bool:
        if "To" in query and message["to"] != query["To"]:
            return False
        if "From" in query and message["from"] != query["From"]:
            return False
        sent = message["date_sent"]
        for key, keep in (
            ("DateSent", lambda s, v: s == v),
            ("DateSent>", lambda s, v: s >= v),
            ("DateSent<", lambda s, v: s <= v),
        ):
            if key not in query:
                continue
            if sent is None:  # not sent yet: Twilio's DateSent filters leave it out
                return False
            bound = _parse_when(query[key])
            if isinstance(bound, datetime):
                if not keep(sent, bound):
                    return False
            elif not keep(sent.date(), bound):
                return False
        return True

    # ------------------------------------------------------------------ control endpoints

    def _control(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            return 400, {"error": "body must be JSON"}
        try:
            if method == "GET" and path == "/_fake/messages":
                return 200, {"messages": self.messages, "rejected": self.rejected}
            if method == "POST" and path == "/_fake/reset":
                self.reset()
                return 200, {"ok": True}
            if method == "POST" and path == "/_fake/latency":
                self.latency = float(data["seconds"])
                return 200, {"ok": True}
            if method == "POST" and path == "/_fake/fail_number":
                self.fail_number(data["number"], int(data["code"]), int(data.get("status", 400)), data.get("times"))
                return 200, {"ok": True}
            if method == "POST" and path == "/_fake/fail_next":
                self.fail_next(int(data["status"]), int(data["code"]), int(data.get("count", 1)))
                return 200, {"ok": True}
            if method == "POST" and path == "/_fake/outage":
                status = data.get("status")
                self.outage(None if status is None else int(status), data.get("code") and int(data["code"]))
                return 200, {"ok": True}
            if method == "POST" and path == "/_fake/status_callback":
                response = self.send_status_callback(data["sid"], data["status"], data.get("error_code"))
                return 200, {"status_code": response.status_code, "body": response.text}
        except (KeyError, TypeError, ValueError, LookupError, requests.RequestException) as exc:
            return 400, {"error": repr(exc)}
        return 404, {"error": f"no control endpoint {method} {path}"}


def _parse_when(value: str) -> date | datetime:
    value = value.strip()
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"Invalid DateSent value {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a local Twilio-compatible API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--phone-number", default=DEFAULT_PHONE_NUMBER)
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    fake = FakeTwilio(
        args.host,
        args.port,
        args.latency_ms / 1000.0,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        phone_number=args.phone_number,
    )
    with fake:
        print(fake.base_url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
