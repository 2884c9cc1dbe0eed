"""The transport contract every provider keeps (after Healthchecks' ``hc/api/transports.py``).

* ``send(message) -> Sent`` returns the provider's id and a status in our vocabulary
  (``"sent"``: accepted or queued by the provider; ``"delivered"``: known to have arrived).
* Every failure is a :class:`TransportError` whose ``permanent`` flag tells the dispatcher
  whether a retry can ever help. Provider error codes are classified once, next to the
  provider, so callers never see a Twilio code or an SMTP reply.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import Protocol


@dataclass(eq=False, repr=False)
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

    message: str
    _: KW_ONLY
    permanent: bool
    code: str | None = None
    opted_out: bool = False
    bad_address: bool = False
    uncertain: bool = False

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

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
