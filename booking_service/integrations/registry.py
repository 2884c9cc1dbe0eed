"""The one registry: the configured transports, built from the typed settings.

``config.py`` has already parsed and checked every variable (``load_settings``), so nothing
is re-validated here; a backend's SDK or connection is still only made on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

from booking_service.config import Settings
from booking_service.integrations.console import ConsoleEmail, ConsoleSms
from booking_service.integrations.contract import EmailTransport, SmsTransport
from booking_service.integrations.smtp.transport import SmtpEmail
from booking_service.integrations.twilio.transport import TwilioSms

# A provider call never waits longer than this (the SDK's own default is "for ever").
DEFAULT_SEND_TIMEOUT = 10.0


@dataclass(frozen=True)
class Transports:
    sms: SmsTransport
    email: EmailTransport

    def for_channel(self, channel: str) -> SmsTransport | EmailTransport:
        return self.sms if channel == "sms" else self.email


def build_sms_transport(settings: Settings, *, send_timeout: float | None = None) -> SmsTransport:
    """``SMS_BACKEND``: ``console`` (the default) or ``twilio``. The console logs what a text
    says only in development (``APP_ENV=development``)."""
    if settings.SMS_BACKEND == "twilio":
        return TwilioSms(
            settings.TWILIO_ACCOUNT_SID or "",
            settings.TWILIO_AUTH_TOKEN or "",
            from_number=settings.TWILIO_FROM_NUMBER,
            messaging_service_sid=settings.TWILIO_MESSAGING_SERVICE_SID,
            api_base_url=settings.TWILIO_API_BASE_URL,
            timeout=_timeout(send_timeout),
        )
    return ConsoleSms(log_content=settings.ENV == "development")


def build_email_transport(settings: Settings, *, send_timeout: float | None = None) -> EmailTransport:
    """``EMAIL_BACKEND``: ``console`` (the default) or ``smtp``. The console logs what an e-mail
    says only in development (``APP_ENV=development``)."""
    if settings.EMAIL_BACKEND == "smtp":
        return SmtpEmail(
            settings.SMTP_HOST,
            settings.SMTP_PORT,
            username=settings.SMTP_USERNAME,
            password=settings.SMTP_PASSWORD,
            starttls=settings.SMTP_STARTTLS,
            from_addr=settings.EMAIL_FROM,
            # Per SMTP command: a crawling server could still take longer in all, in which case
            # a resend carries the same Message-ID.
            timeout=_timeout(send_timeout),
        )
    return ConsoleEmail(log_content=settings.ENV == "development")


def build_transports(settings: Settings, *, send_timeout: float | None = None) -> Transports:
    """The configured SMS and e-mail transports. ``send_timeout`` (seconds) caps each provider
    call below :data:`DEFAULT_SEND_TIMEOUT`; the worker passes a third of its lease, so a live
    worker always finishes a send before its lease can expire."""
    return Transports(
        sms=build_sms_transport(settings, send_timeout=send_timeout),
        email=build_email_transport(settings, send_timeout=send_timeout),
    )


def _timeout(send_timeout: float | None) -> float:
    return DEFAULT_SEND_TIMEOUT if send_timeout is None else min(DEFAULT_SEND_TIMEOUT, send_timeout)
