"""Staff authentication for the JSON API: ``Authorization: Bearer <token>``.

Tokens come from ``flask --app booking_service create-api-token EMAIL``; only their SHA-256 is
stored. The check runs before the request is parsed, so a caller without a valid token learns
nothing about the endpoint beyond the 401.
"""

from __future__ import annotations

from functools import wraps

from flask import g, request

from booking_service.api.errors import Unauthorized
from booking_service.context import database
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
    """Decorator factory: the view needs a valid staff token (401 JSON error otherwise).

    Documents the bearer security requirement and the 401 response on the operation. The user
    is in ``g.staff_user``. The token's use is recorded in a unit of work of its own, before the
    request's: it is a fact whatever the request's outcome, and the request's own unit (committed
    at the edge) then begins clean, as ``write_transaction`` needs on SQLite.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            token = _bearer_token()
            user = None
            if token:
                with database().unit_of_work() as session:
                    user = user_for_token(session, token, now=utcnow())
            if user is None:
                raise Unauthorized("Send a valid staff API token: Authorization: Bearer <token>.")
            g.staff_user = user
            return view(*args, **kwargs)

        documented = blueprint.alt_response(401, response="UNAUTHORIZED")(wrapper)
        return blueprint.doc(security=[{SECURITY_SCHEME: []}])(documented)

    return decorator
