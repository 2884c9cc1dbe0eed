"""Message transports: the only code that talks to SMS and e-mail providers.

The contract is deliberately tiny (after Healthchecks' ``hc/api/transports.py``):

* ``send(message) -> Sent`` returns the provider's id and a status in our vocabulary
  (``"sent"``: accepted or queued by the provider; ``"delivered"``: known to have arrived).
* Every failure is a :class:`TransportError` whose ``permanent`` flag tells the dispatcher
  whether a retry can ever help. Provider error codes are classified once, here, next to the
  provider, so callers never see a Twilio code or an SMTP reply.

Importing this module builds nothing: no Twilio client, no SMTP connection. Transports are
built from configuration by :func:`build_sms_transport` and :func:`build_email_transport`.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import urlsplit

logger = logging.getLogger("booking_service.messaging")


class TransportError(Exception):
    """A message could not be handed to the provider.

    ``permanent``: retrying the same message can never succeed (bad number, opted out, ...);
    the dispatcher must stop and show the error to staff. Otherwise it retries with backoff.
    ``code``: the provider's error code as a string (``"21211"``, ``"550"``), when it gave one.
    ``opted_out``: the recipient has opted out at the provider (Twilio 21610).
    ``bad_address``: the address itself is unusable (invalid or non-mobile number, unknown
    mailbox); staff should correct the patient's contact details.
    ``uncertain``: the request may have reached the provider before the failure (a read timeout,
    a connection dropped after the request was written). A retry could send a duplicate, so the
    caller should reconcile first (``SmsTransport.find_sent``) where the provider allows it.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: str | None = None,
        opted_out: bool = False,
        bad_address: bool = False,
        uncertain: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code
        self.opted_out = opted_out
        self.bad_address = bad_address
        self.uncertain = uncertain

    def __repr__(self) -> str:
        flags = [name for name in ("opted_out", "bad_address", "uncertain") if getattr(self, name)]
        return (
            f"TransportError({self.message!r}, permanent={self.permanent}, code={self.code!r}"
            + "".join(f", {flag}=True" for flag in flags)
            + ")"
        )


@dataclass(frozen=True)
class Sms:
    to: str  # E.164
    body: str
    status_callback: str | None = None


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str | None
    message_id: str  # stable across retries, so a duplicate delivery can be recognised
    ics: bytes | None = None
    ics_method: str = "REQUEST"

    def __post_init__(self) -> None:
        if self.ics_method not in ("REQUEST", "CANCEL"):
            raise ValueError(f"ics_method must be REQUEST or CANCEL, not {self.ics_method!r}")


@dataclass(frozen=True)
class Sent:
    provider_id: str
    status: str  # "sent" (accepted/queued by the provider) or "delivered"


@dataclass(frozen=True)
class ProviderRecord:
    """A message as the provider remembers it; used to reconcile an interrupted send."""

    provider_id: str
    to: str
    body: str
    status: str  # our vocabulary: "sent", "delivered" or "failed"
    created_at: datetime  # aware, UTC


class SmsTransport(Protocol):
    name: str

    def send(self, sms: Sms) -> Sent: ...

    def find_sent(self, to: str, since: datetime) -> list[ProviderRecord]: ...


class EmailTransport(Protocol):
    name: str

    def send(self, email: Email) -> Sent: ...


# --------------------------------------------------------------------------- console


class ConsoleSms:
    """Logs each SMS instead of sending it: the embedded default, needs no credentials."""

    name = "console"

    def send(self, sms: Sms) -> Sent:
        provider_id = f"console-{uuid.uuid4()}"
        logger.info(
            "SMS (console) id=%s to=%s status_callback=%s\n%s",
            provider_id,
            sms.to,
            sms.status_callback,
            sms.body,
        )
        return Sent(provider_id=provider_id, status="delivered")

    def find_sent(self, to: str, since: datetime) -> list[ProviderRecord]:
        # Nothing leaves the process, so nothing can be half-sent: there is nothing to reconcile.
        return []


class ConsoleEmail:
    """Logs each e-mail (headers, text, HTML and calendar part) instead of sending it."""

    name = "console"

    def send(self, email: Email) -> Sent:
        # DESIGN.md: an email's provider id is its Message-ID, whatever the transport.
        provider_id = _angle(email.message_id)
        parts = [
            f"E-mail (console) id={provider_id}",
            f"To: {email.to}",
            f"Subject: {email.subject}",
            f"Message-ID: {_angle(email.message_id)}",
            "",
            email.text,
        ]
        if email.html is not None:
            parts += ["", "--- text/html ---", email.html]
        if email.ics is not None:
            parts += [
                "",
                f"--- text/calendar; method={email.ics_method} ---",
                email.ics.decode("utf-8", "replace"),
            ]
        logger.info("%s", "\n".join(parts))
        return Sent(provider_id=provider_id, status="delivered")


# --------------------------------------------------------------------------- Twilio


@dataclass(frozen=True)
class _Rule:
    permanent: bool
    reason: str
    opted_out: bool = False
    bad_address: bool = False


# Twilio error codes we know how to treat, with the reason. Looked up before the HTTP status,
# so a code's rule wins over the generic "4xx is permanent, 5xx is transient" fallback below.
# Reference: https://www.twilio.com/docs/api/errors
TWILIO_ERROR_RULES: dict[int, _Rule] = {
    # --- the recipient's number: permanent, staff must fix the patient's details
    21211: _Rule(True, "the To number is not a valid phone number", bad_address=True),
    21614: _Rule(True, "the To number is not a mobile number (cannot receive SMS)", bad_address=True),
    # --- the recipient said no: permanent until they text START; the app records the opt-out
    21610: _Rule(True, "the recipient replied STOP; Twilio refuses until START", opted_out=True),
    # --- routing and account configuration for this destination: retrying the same message
    #     cannot help; a fix in the Twilio console makes new messages work
    21612: _Rule(True, "Twilio cannot route to this number from this sender"),
    21408: _Rule(True, "sending to this region is not enabled (geo permissions)"),
    21606: _Rule(True, "the From number cannot send SMS (not SMS-capable or not yours)"),
    21659: _Rule(True, "the From number is not a Twilio number of this account"),
    21660: _Rule(True, "the From number does not belong to this account"),
    21602: _Rule(True, "the message body is empty"),
    21617: _Rule(True, "the message body exceeds 1600 characters"),
    21604: _Rule(True, "the To number is missing"),
    21603: _Rule(True, "neither From nor MessagingServiceSid was given"),
    # --- delivery errors. Normally reported later by status callback, but when they come back
    #     synchronously the carrier has already rejected this number: permanent.
    30003: _Rule(True, "the destination handset is unreachable"),
    30004: _Rule(True, "the message was blocked (the recipient may have blocked the sender)"),
    30005: _Rule(True, "unknown destination handset (the number may not exist)", bad_address=True),
    30006: _Rule(True, "landline or unreachable carrier", bad_address=True),
    30007: _Rule(True, "the carrier filtered the message as spam; the same text will be filtered"),
    # --- transient: the same request can succeed later
    20429: _Rule(False, "Twilio rate limit (too many requests)"),
    14107: _Rule(False, "SMS send rate limit exceeded for this sender"),
    21611: _Rule(False, "the sender's outbound queue is full"),
    20500: _Rule(False, "Twilio internal error"),
    20503: _Rule(False, "Twilio service unavailable"),
    30008: _Rule(False, "unknown delivery error at the carrier"),
    # Authentication failed. Transient on purpose: it says nothing about this patient or this
    # message, and marking every queued reminder "failed" would lose them all; once an operator
    # fixes TWILIO_AUTH_TOKEN the queued messages should go out. The dispatcher's backoff and
    # attempt limit keep this from spinning, and the error text is shown to staff.
    20003: _Rule(False, "Twilio rejected the credentials (check TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN)"),
}


def classify_twilio_error(status: int | None, code: int | None, message: str) -> TransportError:
    """Turn a Twilio failure into a :class:`TransportError`.

    ``status`` is the HTTP status (None when no response arrived: timeout, connection error),
    ``code`` Twilio's error code when the body carried one. Order of decision:

    1. a known code in :data:`TWILIO_ERROR_RULES`;
    2. no HTTP response at all: transient (the network, not the message);
    3. HTTP 401 (bad credentials, see 20003 above) and 429 (rate limited): transient;
    4. any 5xx: transient (Twilio's problem, it may recover);
    5. any other 4xx: permanent (Twilio understood and refused this request; it will again);
    6. anything else (a 3xx, a garbled answer): transient.
    """
    label = "Twilio error" + (f" {code}" if code is not None else "")
    if status is not None:
        label += f" (HTTP {status})"
    text = f"{label}: {message}".rstrip(": ")
    code_text = str(code) if code is not None else None

    rule = TWILIO_ERROR_RULES.get(code) if code is not None else None
    if rule is not None:
        return TransportError(
            f"{text} [{rule.reason}]",
            permanent=rule.permanent,
            code=code_text,
            opted_out=rule.opted_out,
            bad_address=rule.bad_address,
        )
    transient = status is None or status in (401, 429) or status >= 500
    return TransportError(text, permanent=not transient and 400 <= status < 500, code=code_text)


# Twilio message statuses -> our vocabulary. A Messaging Service answers "accepted" and a
# direct send "queued"; both mean Twilio has the message and will try to deliver it.
_TWILIO_STATUS = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "receiving": "delivered",
    "received": "delivered",
    "failed": "failed",
    "undelivered": "failed",
    "canceled": "failed",
}

_TWILIO_HOST = re.compile(r"^https://[a-z0-9.-]+\.twilio\.com(?=/|$)", re.IGNORECASE)


def _validate_base_url(api_base_url: str) -> str:
    parts = urlsplit(api_base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"TWILIO_API_BASE_URL must look like http://host:port, not {api_base_url!r}")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError(f"TWILIO_API_BASE_URL must be a scheme, host and port only (no path), not {api_base_url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _make_http_client(base_url: str | None, timeout: float) -> Any:
    """The SDK's HTTP seam: a ``TwilioHttpClient`` with a timeout and, optionally, a new host.

    The SDK builds every URL as ``https://api.twilio.com/...`` (or a regional variant), and
    paging follows ``next_page_uri`` by joining it onto that same host, so rewriting the URL
    prefix in ``request()`` covers creates, fetches and every page of a list.
    """
    from requests.adapters import HTTPAdapter
    from twilio.http.http_client import TwilioHttpClient

    class _Client(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):  # type: ignore[override]
            if base_url is not None:
                url = _TWILIO_HOST.sub(lambda _: base_url, url, count=1)
            return super().request(method, url, *args, **kwargs)

    # The SDK's default timeout is None: a hung connection would hang the worker for ever.
    client = _Client(timeout=timeout)
    if client.session is not None:
        # The SDK only sizes the pool for https://; a plain-http base URL (a local double or a
        # proxy) needs the same, or concurrent senders churn connections. No automatic retries:
        # retrying a POST could send the SMS twice.
        client.session.mount("http://", HTTPAdapter(pool_maxsize=32, max_retries=0))
    return client


class TwilioSms:
    """Sends SMS with the real ``twilio`` SDK.

    ``api_base_url`` (scheme, host and port) replaces ``https://api.twilio.com`` for every
    call, paging links included. The SDK client is built on first use, per instance.
    Raises ValueError for missing credentials or sender.
    """

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_base_url: str | None = None,
        timeout: float = 10,
    ) -> None:
        if not account_sid:
            raise ValueError("TWILIO_ACCOUNT_SID is required for the twilio SMS backend")
        if not auth_token:
            raise ValueError("TWILIO_AUTH_TOKEN is required for the twilio SMS backend")
        if not from_number and not messaging_service_sid:
            raise ValueError(
                "TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID is required for the twilio SMS backend"
            )
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.from_number = from_number or None
        self.messaging_service_sid = messaging_service_sid or None
        self.api_base_url = _validate_base_url(api_base_url) if api_base_url else None
        self.timeout = timeout
        self._client: Any = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TwilioSms(account_sid={self.account_sid!r}, api_base_url={self.api_base_url!r})"

    @property
    def client(self) -> Any:
        """The SDK client, built once on first use (never at import or construction)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    from twilio.rest import Client

                    self._client = Client(
                        self.account_sid,
                        self._auth_token,
                        http_client=_make_http_client(self.api_base_url, self.timeout),
                    )
        return self._client

    def send(self, sms: Sms) -> Sent:
        """Hand one SMS to Twilio. Raises TransportError (see :func:`classify_twilio_error`)."""
        kwargs: dict[str, Any] = {"to": sms.to, "body": sms.body}
        if sms.status_callback:
            kwargs["status_callback"] = sms.status_callback
        # When both are set both are sent: Twilio then requires From to be in the service's
        # sender pool, which is the configuration an operator who sets both means.
        if self.from_number:
            kwargs["from_"] = self.from_number
        if self.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.messaging_service_sid
        try:
            message = self.client.messages.create(**kwargs)
        except Exception as exc:
            raise _twilio_failure(exc) from exc
        status = _TWILIO_STATUS.get(message.status or "", "sent")
        if status == "failed":
            # Rare, but Twilio can fail a message in its create response. A known code is
            # classified as usual; an unknown one is permanent (Twilio has given up on it).
            code = _int_or_none(message.error_code)
            reason = message.error_message or f"message {message.sid} {message.status}"
            if code in TWILIO_ERROR_RULES:
                raise classify_twilio_error(None, code, reason)
            raise TransportError(f"Twilio error {code}: {reason}", permanent=True, code=str(code) if code else None)
        return Sent(provider_id=message.sid, status=status)

    def find_sent(self, to: str, since: datetime) -> list[ProviderRecord]:
        """Messages to ``to`` that Twilio created at or after ``since``, newest first.

        Follows every page. ``since`` should be aware; a naive value is taken as UTC. Twilio's
        clock is not ours: callers should pass a ``since`` with a margin (the claim time minus a
        minute, say) and match records on body. Raises TransportError when Twilio cannot be asked.

        Twilio's ``DateSent>`` filter is documented at day granularity and applies to the send
        date, so we ask for the whole UTC day of ``since`` (a superset) and keep the records
        whose ``date_created`` is not before ``since``.
        """
        since_utc = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        # Twilio's date_created is RFC 2822, whole seconds: a message created at 12:00:00.700
        # reads 12:00:00, so compare against ``since`` truncated to the second.
        since_utc = since_utc.replace(microsecond=0)
        # The SDK formats datetimes with strftime("...Z") and ignores tzinfo: pass UTC.
        day_start = since_utc.replace(hour=0, minute=0, second=0, microsecond=0)
        records: list[ProviderRecord] = []
        try:
            for message in self.client.messages.stream(to=to, date_sent_after=day_start):
                created = message.date_created
                if created is None or created.astimezone(UTC) < since_utc:
                    continue
                records.append(
                    ProviderRecord(
                        provider_id=message.sid,
                        to=message.to,
                        body=message.body or "",
                        status=_TWILIO_STATUS.get(message.status or "", "sent"),
                        created_at=created.astimezone(UTC),
                    )
                )
        except Exception as exc:
            raise _twilio_failure(exc) from exc
        return records


# The SDK prefixes Twilio's own message with its operation ("Unable to create record: ...").
_SDK_PREFIX = re.compile(r"^Unable to \w+ (?:record|page): ")


def _twilio_failure(exc: Exception) -> TransportError:
    """Map whatever the SDK or ``requests`` raised to a TransportError."""
    import requests
    from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException

    if isinstance(exc, TwilioRestException):
        # exc.msg, not str(exc): __str__ adds ANSI colours when stderr is a terminal.
        return classify_twilio_error(exc.status, _int_or_none(exc.code), _SDK_PREFIX.sub("", exc.msg))
    if isinstance(exc, TwilioServiceException):
        return classify_twilio_error(exc.status, _int_or_none(exc.code), exc.detail or exc.title)
    if isinstance(exc, requests.ConnectTimeout):
        return TransportError(f"Twilio connect timeout: {exc}", permanent=False)
    if isinstance(exc, requests.Timeout):
        # The request was written; Twilio may have accepted it.
        return TransportError(f"Twilio read timeout: {exc}", permanent=False, uncertain=True)
    if isinstance(exc, requests.ConnectionError):
        return TransportError(f"Twilio connection error: {exc}", permanent=False, uncertain=not _never_connected(exc))
    if isinstance(exc, TwilioException):
        # Page fetches raise a bare TwilioException("Unable to fetch page", response).
        response = exc.args[1] if len(exc.args) > 1 else None
        status = getattr(response, "status_code", None)
        code, message = _twilio_error_body(getattr(response, "text", ""))
        return classify_twilio_error(status, code, message or str(exc.args[0] if exc.args else exc))
    if isinstance(exc, requests.RequestException | ValueError):
        # ValueError covers an unreadable JSON body.
        return TransportError(f"Twilio request failed: {exc!r}", permanent=False, uncertain=True)
    raise exc


def _never_connected(exc: Exception) -> bool:
    """True when the error happened before a connection existed (so nothing was sent)."""
    from urllib3.exceptions import NewConnectionError

    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, NewConnectionError | ConnectionRefusedError):
            return True
        stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
        stack.extend(arg for arg in getattr(item, "args", ()) if isinstance(arg, BaseException))
    return False


def _twilio_error_body(text: str) -> tuple[int | None, str]:
    import json

    try:
        payload = json.loads(text or "")
    except ValueError:
        return None, ""
    if not isinstance(payload, dict):
        return None, ""
    return _int_or_none(payload.get("code")), str(payload.get("message") or "")


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- SMTP


def _angle(message_id: str) -> str:
    message_id = message_id.strip()
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def build_mime(email: Email, from_addr: str) -> EmailMessage:
    """The MIME message for ``email``.

    Shape (what Google Calendar sends, understood by Gmail, Outlook and Apple Mail)::

        multipart/mixed                          (only when there is an .ics)
          multipart/alternative
            text/plain
            text/html                            (when html is given)
            text/calendar; method=REQUEST|CANCEL (mail clients show Accept/Add buttons)
          application/ics; name=invite.ics       (for clients that only look at attachments)
    """
    msg = EmailMessage()
    msg["From"] = from_addr
    msg["To"] = email.to
    msg["Subject"] = email.subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = _angle(email.message_id)
    msg.set_content(email.text)
    if email.html is not None:
        msg.add_alternative(email.html, subtype="html")
    if email.ics is not None:
        msg.add_alternative(email.ics.decode("utf-8"), subtype="calendar", params={"method": email.ics_method})
        filename = "cancel.ics" if email.ics_method == "CANCEL" else "invite.ics"
        msg.add_attachment(email.ics, maintype="application", subtype="ics", filename=filename)
    return msg


class SmtpEmail:
    """Sends e-mail with ``smtplib``; one connection per message (volumes are small).

    Returns ``Sent(provider_id=<Message-ID>, status="sent")``. Raises TransportError:
    permanent for 5xx replies (``bad_address`` for 550/551/553 on the recipient), transient
    for 4xx, connection failures, timeouts, and configuration failures (authentication,
    STARTTLS not offered), for the same reason as Twilio's 20003 above.
    """

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        from_addr: str,
        timeout: float = 10,
    ) -> None:
        if not from_addr:
            raise ValueError("EMAIL_FROM is required for the smtp e-mail backend")
        self.host = host
        self.port = int(port)
        self.username = username or None
        self._password = password or ""
        self.starttls = starttls
        self.from_addr = from_addr
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SmtpEmail(host={self.host!r}, port={self.port}, starttls={self.starttls})"

    def send(self, email: Email) -> Sent:
        msg = build_mime(email, self.from_addr)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self._password)
                smtp.send_message(msg)
        except Exception as exc:
            raise _smtp_failure(exc) from exc
        return Sent(provider_id=msg["Message-ID"], status="sent")


# 5xx replies to RCPT that mean "this mailbox does not exist / is not acceptable".
_SMTP_BAD_ADDRESS = {550, 551, 553}


def _smtp_failure(exc: Exception) -> TransportError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # One recipient per message, so "all refused" is our recipient.
        code, reply = next(iter(exc.recipients.values()), (0, b""))
        text = f"SMTP recipient refused: {code} {_decode(reply)}"
        if code >= 500:
            return TransportError(text, permanent=True, code=str(code), bad_address=code in _SMTP_BAD_ADDRESS)
        return TransportError(text, permanent=False, code=str(code))
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return TransportError(
            f"SMTP authentication failed (check SMTP_USERNAME/SMTP_PASSWORD): "
            f"{exc.smtp_code} {_decode(exc.smtp_error)}",
            permanent=False,
            code=str(exc.smtp_code),
        )
    if isinstance(exc, smtplib.SMTPConnectError):
        # A greeting refusal (421 busy, 554 no service for you): the server, not the message.
        return TransportError(
            f"SMTP server refused the connection: {exc.smtp_code} {_decode(exc.smtp_error)}",
            permanent=False,
            code=str(exc.smtp_code),
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        # SMTPSenderRefused, SMTPDataError, and other replies to our commands.
        kind = {
            smtplib.SMTPSenderRefused: "sender refused",
            smtplib.SMTPDataError: "message refused",
        }.get(type(exc), "error")
        text = f"SMTP {kind}: {exc.smtp_code} {_decode(exc.smtp_error)}"
        return TransportError(text, permanent=exc.smtp_code >= 500, code=str(exc.smtp_code))
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return TransportError(
            f"SMTP server does not support a required extension (SMTP_STARTTLS, auth?): {exc}",
            permanent=False,
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransportError(f"SMTP server disconnected: {exc}", permanent=False)
    if isinstance(exc, OSError):
        # Connection refused, timeouts (socket.timeout is TimeoutError), TLS failures.
        return TransportError(f"SMTP connection failed: {exc!r}", permanent=False)
    raise exc


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------- from config


def _getter(config: Any):
    """Read settings from a Mapping (Flask's ``app.config``, a dict) or any attribute object."""

    def get(name: str, default: Any = None) -> Any:
        value = config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        return value.strip() if isinstance(value, str) else value

    return get


def _parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def build_sms_transport(config: Any) -> SmsTransport:
    """The SMS transport chosen by ``SMS_BACKEND`` (``console``, the default, or ``twilio``).

    Raises ValueError naming the missing or wrong variable.
    """
    get = _getter(config)
    backend = str(get("SMS_BACKEND", "console")).lower()
    if backend == "console":
        return ConsoleSms()
    if backend != "twilio":
        raise ValueError(f"SMS_BACKEND must be console or twilio, not {backend!r}")
    for required in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        if not get(required):
            raise ValueError(f"{required} is required when SMS_BACKEND=twilio")
    if not get("TWILIO_FROM_NUMBER") and not get("TWILIO_MESSAGING_SERVICE_SID"):
        raise ValueError("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID is required when SMS_BACKEND=twilio")
    return TwilioSms(
        get("TWILIO_ACCOUNT_SID"),
        get("TWILIO_AUTH_TOKEN"),
        from_number=get("TWILIO_FROM_NUMBER"),
        messaging_service_sid=get("TWILIO_MESSAGING_SERVICE_SID"),
        api_base_url=get("TWILIO_API_BASE_URL"),
    )


def build_email_transport(config: Any) -> EmailTransport:
    """The e-mail transport chosen by ``EMAIL_BACKEND`` (``console``, the default, or ``smtp``).

    Raises ValueError naming the missing or wrong variable.
    """
    get = _getter(config)
    backend = str(get("EMAIL_BACKEND", "console")).lower()
    if backend == "console":
        return ConsoleEmail()
    if backend != "smtp":
        raise ValueError(f"EMAIL_BACKEND must be console or smtp, not {backend!r}")
    from_addr = get("EMAIL_FROM")
    if not from_addr:
        raise ValueError("EMAIL_FROM is required when EMAIL_BACKEND=smtp")
    raw_port = get("SMTP_PORT", 25)
    try:
        port = int(raw_port)
    except (TypeError, ValueError):
        raise ValueError(f"SMTP_PORT must be a port number, not {raw_port!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"SMTP_PORT must be a port number, not {raw_port!r}")
    return SmtpEmail(
        get("SMTP_HOST", "localhost"),
        port,
        username=get("SMTP_USERNAME"),
        password=get("SMTP_PASSWORD"),
        starttls=_parse_bool("SMTP_STARTTLS", get("SMTP_STARTTLS", False)),
        from_addr=from_addr,
    )
