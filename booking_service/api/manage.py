"""The patient's own booking, through the token of their manage link.

An unknown or expired token is a 404, the same answer either way. Acting on a cancelled,
finished or started appointment is a 409. Cancel and reschedule answer 200 with the booking.
"""

from __future__ import annotations

from flask import g

from booking_service.api import serializers
from booking_service.api.blueprint import bp, documented_errors
from booking_service.api.schemas import CancelInSchema, ManagedAppointmentSchema, RescheduleInSchema
from booking_service.audit.web import reached_by_link
from booking_service.clinic.queries import get_clinic
from booking_service.context import db_session
from booking_service.db import utcnow
from booking_service.extensions import PUBLIC_WRITE_LIMIT, limiter
from booking_service.scheduling.operations import find_by_token
from booking_service.usecases.booking import cancel, reschedule

_TOKEN = {
    "in": "path",
    "name": "token",
    "required": True,
    "schema": {"type": "string"},
    "description": "The token of the manage link (/m/<token>).",
}


def _answer(appointment, now):
    session = db_session()
    return serializers.managed(appointment, clinic=get_clinic(session), now=now)


@bp.route("/manage/<token>", methods=["GET"], tags=["Manage"], parameters=[_TOKEN])
@bp.response(200, ManagedAppointmentSchema)
@documented_errors(404)
def manage_show(token):
    """The booking of a manage link: times, place, practitioner, what can still be changed

    Shows no contact details beyond a masked hint, and nothing of the intake.
    """
    now = utcnow()
    return _answer(find_by_token(db_session(), token, now=now), now)


@bp.route("/manage/<token>/cancel", methods=["POST"], tags=["Manage"], parameters=[_TOKEN])
@limiter.limit(PUBLIC_WRITE_LIMIT)
@bp.arguments(CancelInSchema, required=False)
@bp.response(200, ManagedAppointmentSchema)
@documented_errors(400, 404, 409, 429)
def manage_cancel(args, token):
    """Cancel the booking (the body, with an optional reason, may be left out)

    Inside the clinic's cancellation window: a 409 `late_cancellation` with the clinic's phone
    when the clinic asks patients to phone, else cancelled and recorded as late.
    """
    session, now = db_session(), utcnow()
    appointment = find_by_token(session, token, now=now)
    reached_by_link(appointment.id)
    appointment = cancel(session, appointment.id, now=now, by_patient=True, reason=args.get("reason"))
    return _answer(appointment, now)


@bp.route("/manage/<token>/reschedule", methods=["POST"], tags=["Manage"], parameters=[_TOKEN])
@limiter.limit(PUBLIC_WRITE_LIMIT)
@bp.arguments(RescheduleInSchema)
@bp.response(200, ManagedAppointmentSchema)
@documented_errors(400, 404, 409, 429)
def manage_reschedule(args, token):
    """Move the booking to another free start, same service, place and practitioner

    Errors as for booking (409 `slot_taken`, 422 `slot_unavailable`, with `alternatives`).
    """
    session, now = db_session(), utcnow()
    appointment = find_by_token(session, token, now=now)
    reached_by_link(appointment.id)
    g.api_location_id = appointment.location_id  # error alternatives render in this zone
    appointment = reschedule(session, appointment.id, args["start"], now=now, by_patient=True)
    return _answer(appointment, now)
