"""A real SMTP server (aiosmtpd) on 127.0.0.1 for tests: collects what it receives.

    with SmtpServer() as smtp:
        ... send to 127.0.0.1:smtp.port ...
        smtp.messages[0].message["Subject"]

Failure injection per recipient: :meth:`SmtpServer.reject` (a 5xx, at RCPT or after DATA) and
:meth:`SmtpServer.defer` (451); a slow server: :attr:`SmtpServer.latency`; the whole server down:
:meth:`SmtpServer.stop`, then :meth:`SmtpServer.start` again on the same port. Optional STARTTLS
(give a certificate, see :func:`make_self_signed_cert`) and AUTH (give ``auth=(user, password)``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from booking_service.config import Settings
from tests.support.environ import settings_from, variables


@dataclass(frozen=True)
class ReceivedEmail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage  # parsed with email.policy.default
    raw: bytes
    tls: bool  # whether the session had switched to TLS


@dataclass(frozen=True)
class _Failure:
    code: int
    message: str
    stage: str  # "rcpt" or "data"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def make_self_signed_cert(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """Write a self-signed certificate for ``host`` (as IP and DNS name) with the openssl CLI.

    Returns (cert, key). Doubles as the CA file a client trusts (``SSL_CERT_FILE``).
    """
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}",
            "-addext", f"subjectAltName=IP:{host},DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        failure = self.server._failure_for(address)
        if failure is not None and failure.stage == "rcpt":
            return f"{failure.code} {failure.message}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for address in envelope.rcpt_tos:
            failure = self.server._failure_for(address)
            if failure is not None and failure.stage == "data":
                return f"{failure.code} {failure.message}"
        raw = envelope.original_content or envelope.content
        message = BytesParser(policy=policy.default).parsebytes(raw)
        self.server._record(
            ReceivedEmail(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,  # type: ignore[arg-type]
                raw=raw,
                tls=session.ssl is not None,
            )
        )
        if self.server.latency > 0:
            # After the message is taken and before the answer: a sender that gives up has
            # still had its e-mail delivered.
            await asyncio.sleep(self.server.latency)
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 and a free port; ``.port``, ``.messages``; a context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        require_starttls: bool = False,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = 0
        self.latency = 0.0  # seconds before each "250" to DATA (changeable while running)
        self._lock = threading.Lock()
        self._messages: list[ReceivedEmail] = []
        self._failures: dict[str, _Failure] = {}
        self._tls_context: ssl.SSLContext | None = None
        if tls_cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls_cert, tls_key)
            self._tls_context = context
        self._require_starttls = require_starttls
        self._auth = auth
        self.auth_attempts: list[str] = []
        self._controller: Controller | None = None

    def environ(self, **overrides: str | None) -> dict[str, str]:
        """The variables that point the app's SMTP transport here, as the environment carries
        them. An override of None unsets a variable."""
        return variables(
            **{
                "EMAIL_BACKEND": "smtp",
                "SMTP_HOST": self.host,
                "SMTP_PORT": self.port,
                "EMAIL_FROM": "clinic@testserver.local",
                **overrides,
            }
        )

    def settings(self, **overrides: str | None) -> Settings:
        """Typed settings for the app, parsed by ``load_settings`` from :meth:`environ`."""
        return settings_from(self.environ(**overrides))

    def start(self) -> SmtpServer:
        if self._controller is not None:
            return self
        # aiosmtpd's controller connects to its own port to check it is up, so it cannot take
        # port 0: pick a free port first. A restarted server keeps its port (an outage test
        # stops it and starts it again where the app expects it).
        if not self.port:
            self.port = free_port(self.host)
        kwargs = {}
        if self._tls_context is not None:
            kwargs.update(tls_context=self._tls_context, require_starttls=self._require_starttls)
        if self._auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ injection

    def reject(self, address: str, code: int = 550, message: str = "5.1.1 No such user", *, stage: str = "rcpt"):
        """Answer ``code`` for ``address``: to RCPT TO (``stage="rcpt"``) or after DATA (``"data"``)."""
        if stage not in ("rcpt", "data"):
            raise ValueError("stage must be rcpt or data")
        with self._lock:
            self._failures[address.lower()] = _Failure(code, message, stage)

    def defer(self, address: str, message: str = "4.2.1 Mailbox busy, try again later") -> None:
        """Answer 451 (try again later) to RCPT TO for ``address``."""
        self.reject(address, 451, message)

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def reset(self) -> None:
        self.latency = 0.0
        with self._lock:
            self._failures.clear()
            self._messages.clear()
            self.auth_attempts.clear()

    # ------------------------------------------------------------------ inspection

    @property
    def messages(self) -> list[ReceivedEmail]:
        with self._lock:
            return list(self._messages)

    def _record(self, received: ReceivedEmail) -> None:
        with self._lock:
            self._messages.append(received)

    def _failure_for(self, address: str) -> _Failure | None:
        with self._lock:
            return self._failures.get(address.lower())

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        with self._lock:
            self.auth_attempts.append(login)
        return AuthResult(success=(login, password) == self._auth, handled=False)
