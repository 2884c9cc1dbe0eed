"""The request id: one per web request, carried to the outbox rows the request plans and from
there to the worker's log lines about those messages.

A sane incoming ``X-Request-ID`` (a load balancer's or a client's: 1-64 of ``A-Z a-z 0-9 . _ :
-``) is kept; anything else is replaced by a fresh random id. The id is answered in the
response's ``X-Request-ID`` header, set on every log record of the request (``request_id``),
written on the audit events and outbox rows of the request, and bound again by the worker
while it logs about one of those rows.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

HEADER = "X-Request-ID"
SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def new() -> str:
    return uuid.uuid4().hex


def accept(incoming: str | None) -> str:
    """The incoming id when it is sane, else a new one."""
    if incoming and SANE.match(incoming):
        return incoming
    return new()


def current() -> str | None:
    """The id bound in this context (a web request, or a message the worker logs about)."""
    return _current.get()


def bind(value: str | None):
    return _current.set(value)


def unbind(token) -> None:
    try:
        _current.reset(token)
    except ValueError:  # reset from another context: clearing is what is meant
        _current.set(None)


@contextlib.contextmanager
def bound(value: str | None) -> Iterator[None]:
    """``with bound(row.request_id):`` logs inside carry that id."""
    token = _current.set(value)
    try:
        yield
    finally:
        _current.reset(token)
