"""Who is acting: set once at each edge, read by :func:`booking_service.audit.record`.

A context variable, so each request, worker thread and CLI command has its own. The value is
either an :class:`Actor` or a resolver called with the session on first use (the web edge
resolves lazily: most requests record nothing, and an API token's id costs a query). Code
run outside any edge (tests, benchmarks, ``seed-demo``'s helpers) records as ``system``.
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass

from sqlalchemy.orm import Session

ACTOR_KINDS = ("staff", "api_token", "patient_link", "public", "webhook", "worker", "cli", "system")


@dataclass(frozen=True)
class Actor:
    """Who acted. ``kind`` is one of :data:`ACTOR_KINDS`:

    - ``staff``: a console user (``user_id``, ``label`` = their email);
    - ``api_token``: a staff API token (``token_id``, and its user in ``user_id``/``label``);
    - ``patient_link``: whoever holds an appointment's manage link (``appointment_id``; the
      token itself is never stored);
    - ``public``: an anonymous visitor (online booking, the waitlist form, the public API);
    - ``webhook``: a provider's callback (Twilio inbound texts and delivery reports);
    - ``worker``: the outbox worker (``label`` = its worker id);
    - ``cli``: a ``flask`` command (``label`` = the operating-system user who ran it);
    - ``system``: code run outside any edge.
    """

    kind: str
    user_id: int | None = None
    label: str | None = None
    token_id: int | None = None
    appointment_id: int | None = None
    address: str | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTOR_KINDS:
            raise ValueError(f"unknown actor kind {self.kind!r}")


SYSTEM = Actor("system")

Resolver = Callable[[Session], Actor]
_current: ContextVar[Actor | Resolver | None] = ContextVar("audit_actor", default=None)


def current_actor(session: Session) -> Actor:
    """The actor of the current edge, or ``system`` when none was set."""
    value = _current.get()
    if value is None:
        return SYSTEM
    if isinstance(value, Actor):
        return value
    return value(session)


def bind(actor: Actor | Resolver) -> Token:
    """Set the actor until :func:`unbind` (an edge's before/after hooks)."""
    return _current.set(actor)


def unbind(token: Token) -> None:
    try:
        _current.reset(token)
    except ValueError:  # reset from another context: clearing is what is meant
        _current.set(None)


@contextlib.contextmanager
def acting_as(actor: Actor | Resolver) -> Iterator[None]:
    """``with acting_as(Actor("worker", label=worker_id)):`` records inside as that actor."""
    token = _current.set(actor)
    try:
        yield
    finally:
        _current.reset(token)


def cli_actor() -> Actor:
    """The actor of a ``flask`` command: the operating-system user who ran it."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name (some containers): still a CLI action
        user = None
    return Actor("cli", label=user)
