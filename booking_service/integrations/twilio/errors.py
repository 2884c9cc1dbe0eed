"""Twilio's error codes, classified once: permanent or not, and what they say about the number.

Used by the transport (a failed send) and by the status callback (a failed delivery).
"""

from __future__ import annotations

from dataclasses import dataclass

from booking_service.integrations.contract import TransportError


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


def error_rule(code: str | int | None) -> _Rule | None:
    """The rule for a Twilio error code given as Twilio writes it (``"21610"``), or None."""
    try:
        return TWILIO_ERROR_RULES.get(int(str(code).strip())) if code is not None else None
    except ValueError:
        return None


def describe_failure(code: str | None, twilio_status: str) -> str:
    """A readable reason for a failed delivery, for staff: the table's reason when we know the code."""
    rule = error_rule(code)
    if rule is not None:
        return f"Twilio error {code}: {rule.reason}"
    if code:
        return f"Twilio error {code} ({twilio_status})"
    return f"Twilio reported {twilio_status}"
