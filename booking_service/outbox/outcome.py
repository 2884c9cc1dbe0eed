"""What one step did to one row, for the worker's log and the tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Outcome:
    """What one call did to one row. ``status`` is the row's new status, or ``"lost"`` when the
    row was no longer ours (someone else decided; nothing was written)."""

    message_id: int
    status: str
    channel: str = ""
    kind: str = ""
    to: str | None = None
    provider_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    elapsed: float = 0.0
    request_id: str | None = None  # the web request that planned the row (for the log line)
    due_at: datetime | None = None  # when it was due (the dispatch lateness metric)

    def describe(self) -> str:
        parts = [f"message {self.message_id}", self.channel, self.kind, self.status]
        if self.to:
            parts.append(f"to={mask(self.to)}")
        if self.provider_id:
            parts.append(f"provider_id={self.provider_id}")
        if self.next_attempt_at:
            parts.append(f"next_attempt_at={self.next_attempt_at:%Y-%m-%dT%H:%M:%SZ}")
        if self.error:
            parts.append(f"error={self.error!r}")
        parts.append(f"{self.elapsed * 1000:.0f}ms")
        return " ".join(p for p in parts if p)


def mask(address: str) -> str:
    """An address fit for logs: the last 4 digits of a number, the domain of an e-mail."""
    if "@" in address:
        return "***@" + address.rsplit("@", 1)[1]
    return "***" + address[-4:]
