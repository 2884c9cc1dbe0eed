"""Sends SMS with the real ``twilio`` SDK; SDK and HTTP failures become TransportErrors here."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from typing import Any

from booking_service.integrations.contract import ProviderRecord, Sent, Sms, TransportError
from booking_service.integrations.twilio.errors import TWILIO_ERROR_RULES, classify_twilio_error
from booking_service.integrations.twilio.statuses import our_status

_TWILIO_HOST = re.compile(r"^https://[a-z0-9.-]+\.twilio\.com(?=/|$)", re.IGNORECASE)


def make_http_client(base_url: str | None, timeout: float) -> Any:
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
    call, paging links included (``config.py`` has checked its shape). ``timeout`` bounds
    each HTTP request (seconds). The SDK client is built on first use, per instance. The
    credentials and sender come from :class:`~booking_service.config.Settings`, which has
    already required them for ``SMS_BACKEND=twilio``.
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
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.from_number = from_number or None
        self.messaging_service_sid = messaging_service_sid or None
        self.api_base_url = api_base_url or None
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
                        http_client=make_http_client(self.api_base_url, self.timeout),
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
        status = our_status(message.status) or "sent"
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
                        status=our_status(message.status) or "sent",
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
