"""Twilio's message statuses in our vocabulary: the one table, for sends, lists and callbacks."""

from __future__ import annotations

# A Messaging Service answers "accepted" and a direct send "queued"; both mean Twilio has the
# message and will try to deliver it. "receiving"/"received" are inbound statuses, listed so a
# message list that includes them reads sensibly.
TWILIO_STATUSES = {
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


def our_status(twilio_status: str | None) -> str | None:
    """``"sent"``, ``"delivered"`` or ``"failed"`` for a Twilio status; None for one we do not know."""
    return TWILIO_STATUSES.get((twilio_status or "").strip().lower())
