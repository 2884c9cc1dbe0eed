"""Conditional GET for JSON bodies made in full: an ``ETag`` that is a hash of the body, so it
changes exactly when the document does (a booking, a new day, a catalogue change), and a 304
when the client already holds it. The body is still computed on every request; what a 304
saves is its transfer and the client's parsing.
"""

from __future__ import annotations

import hashlib

from flask import Response, request

ETAG_HEADER = {
    "description": "A hash of the body; send it back in `If-None-Match` for a 304.",
    "schema": {"type": "string"},
}


def cache_control_header(max_age: int) -> dict:
    """The OpenAPI description of the ``Cache-Control`` these answers carry."""
    return {"description": f"`private, max-age={max_age}`", "schema": {"type": "string"}}


def json_response(body: bytes, *, max_age: int) -> Response:
    """``body`` (JSON) with its ETag and ``Cache-Control: private, max-age``; a 304 without a
    body when ``If-None-Match`` names that ETag (weak comparison, as RFC 9110 asks for
    ``If-None-Match``; ``*`` matches too)."""
    etag = hashlib.blake2b(body, digest_size=16).hexdigest()
    if request.if_none_match.contains_weak(etag):
        response = Response(status=304)
    else:
        response = Response(body, mimetype="application/json")
    response.set_etag(etag)
    # Private: the slots of one clinic are not secret, but a shared cache is not ours to fill.
    # Ten seconds: a client polling or a page re-rendered does not ask again, and a slot taken
    # in the meantime is still refused with a 409 and alternatives.
    response.headers["Cache-Control"] = f"private, max-age={max_age}"
    return response
