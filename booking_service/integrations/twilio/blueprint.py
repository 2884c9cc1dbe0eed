"""Twilio webhooks: inbound SMS (``/webhooks/twilio/sms``) and delivery status callbacks
(``/webhooks/twilio/status``). Both check Twilio's signature first (:mod:`.signature`).

Blueprint only: parsing and the response are here, the work is in
``booking_service.messaging.replies`` and :mod:`.callbacks`.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request

from booking_service.context import db_session, utcnow
from booking_service.extensions import csrf
from booking_service.integrations.twilio.callbacks import handle_status_callback
from booking_service.integrations.twilio.signature import require_twilio_signature
from booking_service.usecases import replies

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@bp.post("/twilio/sms")
def inbound_sms():
    """Twilio's messaging webhook. Answers empty TwiML at once; any reply goes through the outbox."""
    require_twilio_signature()
    from_phone = request.form.get("From", "").strip()
    if not from_phone:
        return Response(EMPTY_TWIML, mimetype="text/xml")
    replies.handle_inbound(
        db_session(),
        from_phone=from_phone,
        body=request.form.get("Body", ""),
        provider_id=request.form.get("MessageSid") or request.form.get("SmsSid") or None,
        now=utcnow(),
    )
    return Response(EMPTY_TWIML, mimetype="text/xml")


@bp.post("/twilio/status")
def status_callback():
    """Twilio's status callback for a message we sent. Unknown or stale: 200, nothing changed."""
    require_twilio_signature()
    if not (request.form.get("MessageSid") or request.form.get("SmsSid")):
        return Response("", status=200)
    handle_status_callback(db_session(), request.form, now=utcnow())
    return Response("", status=200)


def register_webhooks(app: Flask) -> None:
    # Twilio cannot send a CSRF token; the signature check is what authenticates these posts.
    csrf.exempt(bp)
    app.register_blueprint(bp)
