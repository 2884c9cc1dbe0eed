"""Twilio's request signature (``X-Twilio-Signature``), checked on every webhook.

The URL is rebuilt as ``PUBLIC_BASE_URL`` + path + query: Twilio signs the URL it called, and
behind a proxy the request's own host and scheme are not that URL. A request that fails the
check, or any request while ``TWILIO_AUTH_TOKEN`` is not configured, is answered 403: an
unsigned endpoint would let anyone opt patients out or confirm their appointments.
"""

from __future__ import annotations

import logging

from flask import abort, request
from twilio.request_validator import RequestValidator, get_signature_algorithm

from booking_service.context import settings
from booking_service.observability.metrics import WEBHOOK_REJECTIONS

logger = logging.getLogger("booking_service.webhooks")


def require_twilio_signature() -> None:
    """Abort the current request with 403 unless Twilio signed it with our auth token."""
    token = settings().TWILIO_AUTH_TOKEN
    if not token:
        logger.warning("Twilio webhook %s refused: TWILIO_AUTH_TOKEN is not set", request.path)
        WEBHOOK_REJECTIONS.labels(endpoint=request.path, reason="not_configured").inc()
        abort(403)
    url = settings().PUBLIC_BASE_URL.rstrip("/") + request.path
    query = request.query_string.decode("utf-8", "replace")
    if query:
        url += "?" + query
    signature = request.headers.get("X-Twilio-Signature", "")
    algorithm = get_signature_algorithm(request.headers.get("X-Twilio-Webhooks-Signature-Settings"))
    if not signature or not RequestValidator(token).validate(url, request.form, signature, algorithm):
        logger.warning("Twilio webhook %s refused: bad or missing signature", request.path)
        WEBHOOK_REJECTIONS.labels(endpoint=request.path, reason="signature").inc()
        abort(403)
