"""Sends e-mail with ``smtplib``; SMTP replies are classified here and nowhere else."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from booking_service.integrations.contract import Email, Sent, TransportError
from booking_service.integrations.smtp.message_id import angle


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
    msg["Message-ID"] = angle(email.message_id)
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

    ``timeout`` bounds each SMTP command (seconds). Returns ``Sent(provider_id=<Message-ID>,
    status="sent")``. Raises TransportError: permanent for 5xx replies (``bad_address`` for
    550/551/553 on the recipient), transient for 4xx, connection failures, timeouts, and
    configuration failures (authentication, STARTTLS not offered), for the same reason as
    Twilio's 20003 (see ``integrations/twilio/errors.py``).
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
        self.host = host
        self.port = port
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

# Replies that are about the server or our configuration, never about this message: transient
# whatever their code (a 535 or a 554 greeting), so an operator's fix lets queued mail go out.
_NOT_ABOUT_THE_MESSAGE = {
    smtplib.SMTPAuthenticationError: "SMTP authentication failed (check SMTP_USERNAME/SMTP_PASSWORD)",
    smtplib.SMTPConnectError: "SMTP server refused the connection",
}
_REPLY_LABELS = {
    smtplib.SMTPSenderRefused: "SMTP sender refused",
    smtplib.SMTPDataError: "SMTP message refused",
    **_NOT_ABOUT_THE_MESSAGE,
}


def _smtp_failure(exc: Exception) -> TransportError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # One recipient per message, so "all refused" is our recipient.
        code, reply = next(iter(exc.recipients.values()), (0, b""))
        text = f"SMTP recipient refused: {code} {_decode(reply)}"
        if code >= 500:
            return TransportError(text, permanent=True, code=str(code), bad_address=code in _SMTP_BAD_ADDRESS)
        return TransportError(text, permanent=False, code=str(code))
    if isinstance(exc, smtplib.SMTPResponseException):
        # SMTPSenderRefused, SMTPDataError, and other replies to our commands.
        label = _REPLY_LABELS.get(type(exc), "SMTP error")
        permanent = exc.smtp_code >= 500 and type(exc) not in _NOT_ABOUT_THE_MESSAGE
        text = f"{label}: {exc.smtp_code} {_decode(exc.smtp_error)}"
        return TransportError(text, permanent=permanent, code=str(exc.smtp_code))
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
