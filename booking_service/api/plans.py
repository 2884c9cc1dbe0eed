"""Treatment plans for staff (Bearer token): book a series of visits in one piece, read one,
cancel the rest of one.

Scoped like the console: the desk (admin, front desk) books for anyone with anyone; a
practitioner's token books only with themselves (``practitioner_id`` their own, else 422) and
for their own patients, and sees only plans booked with them or holding a visit with them;
anything else is a 404, the answer for an unknown id.
"""

from __future__ import annotations

from flask import g

from booking_service import access, errors
from booking_service.api import queries, serializers
from booking_service.api.auth import actor, staff_required
from booking_service.api.blueprint import bp, documented_errors
from booking_service.api.schemas import MAX_ID, PlanCancelInSchema, PlanInSchema, PlanSchema
from booking_service.context import db_session, settings
from booking_service.db import utcnow
from booking_service.errors import PATIENT_NOT_FOUND, PRACTITIONER_NOT_YOURS, NotFound, ValidationFailed
from booking_service.scheduling import plans as plan_queries
from booking_service.scheduling.queries import is_patient_of
from booking_service.usecases.plans import PlanRequest, book_plan, cancel_rest

_ID = f"int(max={MAX_ID})"


def _answer(plan) -> dict:
    session = db_session()
    session.refresh(plan)  # its visits as they stand now
    return serializers.plan(plan, progress=plan_queries.progress(plan))


@bp.route("/plans", methods=["POST"], tags=["Plans"])
@staff_required(bp)
@bp.arguments(PlanInSchema)
@bp.response(201, PlanSchema)
@documented_errors(404, 409, 422)
def create_plan(args):
    """Book a treatment plan: a series of visits, all or nothing

    The visits are `count` visits from `first_start`, every `every_days` days (default 7) at the
    same local time, or exactly the `starts` given. Every visit is checked before anything is
    saved; when any is in the way the answer is a 409 `plan_conflicts` listing each one
    (`index`, `start`, `reason`, `alternatives`) and nothing is stored: pick an alternative for
    each and send the plan again with every start in `starts`. Otherwise all visits are booked
    in one transaction, with one confirmation listing the dates sent to the patient and each
    visit's reminders planned. A 422 names the field to fix.
    """
    session = db_session()
    scope = access.practitioner_scope(actor(), "appointment", "book")
    queries.get_patient(session, args["patient_id"])
    if scope is not None and not is_patient_of(session, args["patient_id"], scope):
        raise NotFound(PATIENT_NOT_FOUND)
    if scope is not None and args["practitioner_id"] != scope:
        raise ValidationFailed(errors.PLAN_INVALID, fields={"practitioner_id": PRACTITIONER_NOT_YOURS})
    g.api_location_id = args["location_id"]  # conflicts and alternatives render in this zone
    request = PlanRequest(
        patient_id=args["patient_id"],
        service_id=args["service_id"],
        location_id=args["location_id"],
        practitioner_id=args["practitioner_id"],
        first_start=args["first_start"],
        count=args["count"],
        every_days=args["every_days"],
        starts=tuple(args["starts"]) if args["starts"] is not None else None,
        source="api",
        user_id=g.staff_user.id,
    )
    booked = book_plan(session, request, secret_key=settings().SECRET_KEY, now=utcnow())
    return _answer(booked.plan), 201


@bp.route(f"/plans/<{_ID}:plan_id>", methods=["GET"], tags=["Plans"])
@staff_required(bp)
@bp.response(200, PlanSchema)
@documented_errors(404)
def plan_detail(plan_id):
    """One treatment plan: its visits, visits done and left, and its status"""
    return _answer(plan_queries.get_plan(db_session(), plan_id))


@bp.route(f"/plans/<{_ID}:plan_id>/cancel", methods=["POST"], tags=["Plans"])
@staff_required(bp)
@bp.arguments(PlanCancelInSchema, required=False)
@bp.response(200, PlanSchema)
@documented_errors(404, 409)
def cancel_plan(args, plan_id):
    """Cancel the rest of a treatment plan (the body, with an optional reason, may be left out)

    Every visit still to come (booked or confirmed, not started) is cancelled as staff cancel
    one: its reminders stop and its time is offered to the waitlist; the patient gets one
    message listing the cancelled dates. Visits done or under way stay. A plan with nothing
    left to cancel is a 409 `invalid_transition`.
    """
    plan, _cancelled = cancel_rest(
        db_session(), plan_id, now=utcnow(), user_id=g.staff_user.id, reason=args.get("reason")
    )
    return _answer(plan)
