"""Console transports: log each message instead of sending it. The embedded default: no
credentials, and the outbox row still records everything, so the demo shows every message.

Only the development demo (``APP_ENV=development``, ``make run``) logs what a message says.
Anywhere else a log is kept, shipped and read by people who must not see patients' texts, so
a console transport logs only the provider id, the channel, the masked address and the body's
length: never the body, the full number or address, or a manage link. The registry decides.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from booking_service.integrations.contract import Email, ProviderRecord, Sent, Sms
from booking_service.integrations.smtp.message_id import angle
from booking_service.outbox.outcome import mask

logger = logging.getLogger("booking_service.messaging")


class ConsoleSms:
    """Logs each SMS; reports it delivered. ``log_content``: log the number and the whole text
    (the development demo); otherwise only the id, the masked number and the text's length."""

    name = "console"

    def __init__(self, *, log_content: bool = False) -> None:
        self.log_content = log_content

    def send(self, sms: Sms) -> Sent:
        provider_id = f"console-{uuid.uuid4()}"
        if self.log_content:
            logger.info(
                "SMS (console) id=%s to=%s status_callback=%s\n%s",
                provider_id,
                sms.to,
                sms.status_callback,
                sms.body,
            )
        else:
            logger.info("SMS (console, not sent) id=%s to=%s body=%d chars", provider_id, mask(sms.to), len(sms.body))
        return Sent(provider_id=provider_id, status="delivered")

    def find_sent(self, to: str, since: datetime) -> list[ProviderRecord]:
        # Nothing leaves the process, so nothing can be half-sent: there is nothing to reconcile.
        return []


class ConsoleEmail:
    """Logs each e-mail; reports it delivered. ``log_content``: log the headers, text, HTML and
    calendar part (the development demo); otherwise only the Message-ID, the masked address
    and the text body's length."""

    name = "console"

    def __init__(self, *, log_content: bool = False) -> None:
        self.log_content = log_content

    def send(self, email: Email) -> Sent:
        # DESIGN.md: an email's provider id is its Message-ID, whatever the transport.
        provider_id = angle(email.message_id)
        if not self.log_content:
            logger.info(
                "E-mail (console, not sent) id=%s to=%s body=%d chars", provider_id, mask(email.to), len(email.text)
            )
            return Sent(provider_id=provider_id, status="delivered")
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
