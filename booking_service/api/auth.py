"""Staff authentication for the JSON API: ``Authorization: Bearer <token>``.

Tokens come from ``flask --app booking_service create-api-token EMAIL`` or the console's token
page; only their SHA-256 is stored. A token acts with its user's role: the access policy
(``booking_service.access``) is applied before the request is parsed, so a caller without a
valid token learns nothing beyond the 401, a role that may not act gets a 403, and an object
of another practitioner's is a 404, the answer for an id that does not exist.
"""

from __future__ import annotations

from functools import wraps

from flask import g, request
from sqlalchemy import select

from booking_service import access
from booking_service.api.errors import Unauthorized
from booking_service.clinic.models import Practitioner
from booking_service.context import database, db_session
from booking_service.db import utcnow
from booking_service.staff.operations import user_for_token

SECURITY_SCHEME = "bearerAuth"
SECURITY_SCHEME_SPEC = {
    "type": "http",
    "scheme": "bearer",
    "description": "A staff API token: `flask --app booking_service create-api-token EMAIL`.",
}
MAX_TOKEN_LENGTH = 200


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return token


def staff_required(blueprint):
    """Decorator factory: the view needs a valid staff token (401 JSON error otherwise) whose
    user's role the access policy lets through for this endpoint and the URL's objects (403, or
    404 for another practitioner's appointment or patient).

    Documents the bearer security requirement and the 401 and 403 responses on the operation.
    The caller is in ``g.actor`` (an ``access.Actor``). The token's use is recorded in a unit of
    work of its own, before the request's: it is a fact whatever the request's outcome (a 403
    included). The policy's reads then run in the request's session, before any change in it.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            token = _bearer_token()
            actor = user = None
            if token:
                with database().unit_of_work() as session:
                    user = user_for_token(session, token, now=utcnow())
                    if user is not None:
                        actor = access.Actor(
                            user_id=user.id, role=user.role, practitioner_id=_practitioner_id(session, user.id)
                        )
            if actor is None:
                raise Unauthorized("Send a valid staff API token: Authorization: Bearer <token>.")
            access.authorize(db_session(), actor, request.endpoint, request.view_args)
            g.actor = actor
            g.staff_user = user  # the token's user (detached, its columns loaded): who acts, for the audit trail
            return view(*args, **kwargs)

        documented = blueprint.alt_response(401, response="UNAUTHORIZED")(wrapper)
        documented = blueprint.alt_response(403, response="FORBIDDEN")(documented)
        return blueprint.doc(security=[{SECURITY_SCHEME: []}])(documented)

    return decorator


def _practitioner_id(session, user_id: int) -> int | None:
    return session.scalar(
        select(Practitioner.id).where(Practitioner.user_id == user_id).order_by(Practitioner.id).limit(1)
    )


def actor() -> access.Actor:
    """The caller of a staff endpoint (set by :func:`staff_required`)."""
    return g.actor
