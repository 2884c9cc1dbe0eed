"""Twilio's status callbacks, translated for :func:`booking_service.outbox.provider_status.apply_provider_status`.

Only Twilio's words live here: its ``MessageStatus`` values and what its error codes mean. The
rules (forward only, reports kept until their row is known, the reaction to a failure) are the
outbox's.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from booking_service.messaging.transports import TWILIO_ERROR_RULES
from booking_service.outbox.provider_status import StatusOutcome, apply_provider_status

# Twilio's MessageStatus values -> ours. Unknown values are ignored.
TWILIO_STATUSES = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}
OPTED_OUT_CODE = "21610"
Outcome = StatusOutcome  # the name callers used before the move


def apply_twilio_status(
    session: Session, *, provider_id: str, provider_status: str, error_code: str | None, now: datetime
) -> StatusOutcome:
    """Apply one Twilio status callback for MessageSid ``provider_id``; no commit. An unknown
    ``provider_status`` changes nothing; error 21610 is an opt-out; the codes whose rule says
    ``bad_address`` mark the number unusable (the generic function states the rest)."""
    ours = TWILIO_STATUSES.get((provider_status or "").strip().lower())
    if ours is None:
        return StatusOutcome(None, changed=False)
    code = (error_code or "").strip() or None
    rule = TWILIO_ERROR_RULES.get(int(code)) if code and code.isdigit() else None
    return apply_provider_status(
        session,
        provider_id=provider_id,
        status=ours,
        error_code=code if ours == "failed" else None,
        error=_describe(code, provider_status) if ours == "failed" else None,
        opted_out=code == OPTED_OUT_CODE,
        bad_address=bool(rule and rule.bad_address),
        now=now,
        opt_out_source="twilio_21610",
    )


def _describe(code: str | None, provider_status: str) -> str:
    if code and code.isdigit() and int(code) in TWILIO_ERROR_RULES:
        return f"Twilio error {code}: {TWILIO_ERROR_RULES[int(code)].reason}"
    if code:
        return f"Twilio error {code} ({provider_status})"
    return f"Twilio reported {provider_status}"
