"""Console transports: log each message instead of sending it. The embedded default: no
credentials, and the outbox row still records everything, so the demo shows every message."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from booking_service.integrations.contract import Email, ProviderRecord, Sent, Sms
from booking_service.integrations.smtp.message_id import angle

logger = logging.getLogger("booking_service.messaging")


class ConsoleSms:
    """Logs each SMS; reports it delivered."""

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
    """Logs each e-mail (headers, text, HTML and calendar part); reports it delivered."""

    name = "console"

    def send(self, email: Email) -> Sent:
        # DESIGN.md: an email's provider id is its Message-ID, whatever the transport.
        provider_id = angle(email.message_id)
        parts = [
            f"E-mail (console) id={provider_id}",
            f"To: {email.to}",
            f"Subject: {email.subject}",
            f"Message-ID: {provider_id}",
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
