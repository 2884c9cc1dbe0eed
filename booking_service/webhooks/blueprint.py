"""Twilio webhooks: inbound SMS and delivery status callbacks.

Both check ``X-Twilio-Signature`` with the account's auth token over the URL Twilio called,
rebuilt as ``PUBLIC_BASE_URL`` + path + query (behind a proxy the request's own host and scheme
are not what Twilio signed). A request that fails the check, or any request while
``TWILIO_AUTH_TOKEN`` is not configured, is answered 403 and changes nothing: an unsigned
endpoint would let anyone opt patients out or confirm their appointments.

Blueprint only: parsing and the response are here, the work is in
``booking_service.messaging.replies`` and ``booking_service.messaging.status``.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, abort, request
from twilio.request_validator import RequestValidator, get_signature_algorithm

from booking_service.context import db_session, settings, utcnow
from booking_service.extensions import csrf
from booking_service.messaging import replies, status

logger = logging.getLogger("booking_service.webhooks")

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _require_twilio_signature() -> None:
    token = settings().TWILIO_AUTH_TOKEN
    if not token:
        logger.warning("Twilio webhook %s refused: TWILIO_AUTH_TOKEN is not set", request.path)
        abort(403)
    url = settings().PUBLIC_BASE_URL.rstrip("/") + request.path
    query = request.query_string.decode("utf-8", "replace")
    if query:
        url += "?" + query
    signature = request.headers.get("X-Twilio-Signature", "")
    algorithm = get_signature_algorithm(request.headers.get("X-Twilio-Webhooks-Signature-Settings"))
    if not signature or not RequestValidator(token).validate(url, request.form, signature, algorithm):
        logger.warning("Twilio webhook %s refused: bad or missing signature", request.path)
        abort(403)


@bp.post("/twilio/sms")
def inbound_sms():
    """Twilio's messaging webhook. Answers empty TwiML at once; any reply goes through the outbox."""
    _require_twilio_signature()
    from_phone = request.form.get("From", "").strip()
    if not from_phone:
        return Response(EMPTY_TWIML, mimetype="text/xml")
    session = db_session()
    try:
        replies.handle_inbound(
            session,
            from_phone=from_phone,
            body=request.form.get("Body", ""),
            provider_id=request.form.get("MessageSid") or request.form.get("SmsSid") or None,
            now=utcnow(),
        )
        session.commit()
    except Exception:
        session.rollback()
        raise
    return Response(EMPTY_TWIML, mimetype="text/xml")


@bp.post("/twilio/status")
def status_callback():
    """Twilio's status callback for a message we sent. Unknown or stale: 200, nothing changed."""
    _require_twilio_signature()
    sid = request.form.get("MessageSid") or request.form.get("SmsSid")
    provider_status = request.form.get("MessageStatus") or request.form.get("SmsStatus") or ""
    if not sid:
        return Response("", status=200)
    session = db_session()
    try:
        status.apply_twilio_status(
            session,
            provider_id=sid,
            provider_status=provider_status,
            error_code=request.form.get("ErrorCode"),
            now=utcnow(),
        )
        session.commit()
    except Exception:
        session.rollback()
        raise
    return Response("", status=200)


def register_webhooks(app: Flask) -> None:
    # Twilio cannot send a CSRF token; the signature check is what authenticates these posts.
    csrf.exempt(bp)
    app.register_blueprint(bp)
