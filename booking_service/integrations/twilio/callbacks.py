"""Twilio's status callbacks: the URL we ask Twilio to call, and reading what it posts there.

:func:`read_status_callback` translates a callback's form into our vocabulary and the error's
meaning (opted out, bad address, a readable reason); :func:`handle_status_callback` applies it
to the outbox through the provider-neutral :func:`~booking_service.outbox.provider_status.apply_provider_status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from booking_service.integrations.twilio.errors import describe_failure, error_rule
from booking_service.integrations.twilio.statuses import our_status
from booking_service.outbox.provider_status import apply_provider_status

STATUS_CALLBACK_PATH = "/webhooks/twilio/status"


def status_callback_url(public_base_url: str) -> str:
    """``StatusCallback`` for every send (DESIGN.md): ``PUBLIC_BASE_URL`` + the status path."""
    return public_base_url.rstrip("/") + STATUS_CALLBACK_PATH


@dataclass(frozen=True)
class StatusReport:
    """One status callback in our terms, field for field the keywords of
    ``apply_provider_status``. ``status`` is ``sent``, ``delivered`` or ``failed`` (None: a
    Twilio status we do not know, to be ignored); ``error`` is set for ``failed``."""

    provider_id: str
    status: str | None
    error_code: str | None = None
    error: str | None = None
    opted_out: bool = False
    bad_address: bool = False


def read_status_callback(form: Mapping[str, str]) -> StatusReport | None:
    """The report in a callback's form fields; None when it names no message."""
    sid = form.get("MessageSid") or form.get("SmsSid")
    if not sid:
        return None
    twilio_status = form.get("MessageStatus") or form.get("SmsStatus") or ""
    status = our_status(twilio_status)
    if status != "failed":
        return StatusReport(sid, status)
    code = (form.get("ErrorCode") or "").strip() or None
    rule = error_rule(code)
    return StatusReport(
        sid,
        status,
        error_code=code,
        error=describe_failure(code, twilio_status),
        opted_out=rule is not None and rule.opted_out,
        bad_address=rule is not None and rule.bad_address,
    )


def handle_status_callback(session: Session, form: Mapping[str, str], *, now: datetime) -> bool:
    """Apply one status callback to the outbox row with that MessageSid; no commit.

    Returns True when a row changed. Unknown statuses and stale or repeated callbacks change
    nothing (Twilio does not promise to call in order); a report for a SID that no row holds yet
    (it can arrive before the worker records the SID) is kept and applied when the row does.
    """
    report = read_status_callback(form)
    if report is None or report.status is None:
        return False
    # The report's fields are apply_provider_status's keywords, by design.
    # 21610 is Twilio's, the only provider that reports opt-outs: the ledger names it.
    outcome = apply_provider_status(session, **asdict(report), now=now, opt_out_source="twilio_21610")
    return outcome.changed
