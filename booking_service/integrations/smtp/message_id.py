"""The e-mail Message-ID of an outbox row: the one format, used by rendering and the send path.

The same on every attempt and from every worker, so a resend after a crash carries the same
Message-ID and mail clients and servers can recognise the duplicate. DESIGN.md: an e-mail's
``provider_id`` is its Message-ID, whatever the transport.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def message_id_for(outbox_id: int, public_base_url: str) -> str:
    """``<outbox-{id}@{host of PUBLIC_BASE_URL}>``."""
    host = urlsplit(public_base_url).hostname or "localhost"
    return f"<outbox-{outbox_id}@{host}>"


def angle(message_id: str) -> str:
    """``message_id`` in angle brackets, as the Message-ID header carries it."""
    message_id = message_id.strip()
    return message_id if message_id.startswith("<") else f"<{message_id}>"
