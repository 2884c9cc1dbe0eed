"""Patient-link tokens (manage links, program links).

A token is ``base64url(HMAC-SHA256(SECRET_KEY, nonce))`` cut to 24 characters (144 bits). The
nonce (128 random bits) and the token's SHA-256 are stored; the token itself is not. So the worker
can rebuild the link for a reminder days later, while a leaked copy of the database alone cannot
act on any booking. Rotating SECRET_KEY invalidates every manage link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

TOKEN_LENGTH = 24


def new_nonce() -> str:
    return secrets.token_hex(16)


def link_token(secret_key: str, nonce: str, *, purpose: str) -> str:
    """The token of a patient link; ``purpose`` (``manage``, ``program``, ``waitlist``) keeps the links of
    different pages apart even if two nonces were ever equal."""
    digest = hmac.new(secret_key.encode(), f"{purpose}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:TOKEN_LENGTH]


def manage_token(secret_key: str, nonce: str) -> str:
    return link_token(secret_key, nonce, purpose="manage")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def manage_path(token: str) -> str:
    """The patient's manage page; short, because it goes in a one-segment SMS."""
    return f"/m/{token}"


def program_path(token: str) -> str:
    """The patient's home-exercise program page; short for the same reason."""
    return f"/p/{token}"


def waitlist_offer_path(offer_id: int, token: str) -> str:
    """A waitlist offer's link (``purpose="waitlist"``): a booking set to the freed time. The id
    finds the offer; the token (HMAC of its nonce) proves the link was the clinic's."""
    return f"/w/{offer_id}/{token}"
