"""Every error of the JSON API has one shape: ``{"error": {"code", "message", "fields"}}``.

Three routes lead here:

- :class:`~booking_service.errors.DomainError` raised by an operation carries its own status, code,
  reason and field codes, worded here by ``api/messages.py`` (plus ``alternatives`` for slot
  errors, ``conflicts`` for a treatment plan's visits in the way, ``phone`` for late
  cancellations, added to the body as they are);
- werkzeug's ``HTTPException`` (``abort``, webargs validation, Flask-Limiter's 429, routing);
- routing failures under ``/api/v1`` (unknown address, wrong method), answered by a
  ``before_request`` hook, since no blueprint owns an unmatched URL and the HTML pages keep
  their own error pages.

Webargs reports validation errors as nested dicts per location (``{"json": {"patient":
{"phone": ["..."]}}}``); they are flattened to dotted field paths (``patient.phone``) with a
message that says what to change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from booking_service.api.messages import error_message, field_messages
from booking_service.api.schemas import PlanConflictSchema, SlotSchema
from booking_service.api.serializers import plan_conflict, slot
from booking_service.clinic.models import Location
from booking_service.context import db_session
from booking_service.db import RETRY_AFTER_SECONDS, server_error_was_unavailable
from booking_service.errors import DomainError, ValidationFailed

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_content_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}
_MESSAGES = {
    400: "The request could not be read.",
    401: "Send a valid staff API token: Authorization: Bearer <token>.",
    403: "This token may not do that.",
    404: "There is nothing at this address.",
    409: "That conflicts with the current state.",
    413: "The request body is too large.",
    422: "Some fields need fixing.",
    429: "Too many requests. Please wait a minute and try again.",
    500: "Something went wrong on our side. Please try again.",
    503: "The booking service cannot reach its database just now. Nothing was saved: try again in a minute.",
}
# marshmallow's defaults say what is wrong; these say what to do.
_FRIENDLIER = {
    "Missing data for required field.": "This field is required.",
    "Unknown field.": "Remove this field: the API does not accept it.",
    "Field may not be null.": "Give a value: null is not allowed here.",
    "Not a valid string.": "Use a text value.",
    "Not a valid boolean.": "Use true or false.",
    "Not a valid integer.": "Use a whole number.",
    "Not a valid mapping type.": "Use a JSON object.",
    "Invalid input type.": "Send a JSON object.",
    "Invalid value.": "Use one of the documented values.",
}


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class UnsupportedContentType(DomainError):
    status = 400
    code = "unsupported_content_type"


def error_response(
    status: int,
    code: str,
    message: str,
    fields: Mapping[str, str] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message, "fields": dict(fields or {})}
    body.update(extra)
    response = jsonify(error=body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def is_api_request() -> bool:
    return request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")


# --- validation messages -----------------------------------------------------------------------


def _messages_text(value: Any) -> str:
    if isinstance(value, str):
        return _FRIENDLIER.get(value, value)
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return " ".join(_messages_text(v) for v in value)
    return str(value)


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, str]:
    """``{"patient": {"phone": ["x"]}}`` -> ``{"patient.phone": "x"}``; ``_schema`` names the parent."""
    if not isinstance(messages, Mapping):
        return {prefix or "body": _messages_text(messages)}
    flat: dict[str, str] = {}
    for key, value in messages.items():
        path = (prefix or "body") if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
        if isinstance(value, Mapping):
            flat.update(flatten_messages(value, path))
        else:
            flat[path] = (flat[path] + " " if path in flat else "") + _messages_text(value)
    return flat


def _validation_fields(data: Mapping[str, Any]) -> dict[str, str]:
    messages = data.get("messages") or {}
    fields: dict[str, str] = {}
    # webargs groups by location ("json", "query", "view_args"); the path inside is what matters.
    for location, location_messages in messages.items():
        if isinstance(location_messages, Mapping):
            fields.update(flatten_messages(location_messages))
        else:
            fields[{"json": "body"}.get(location, location)] = _messages_text(location_messages)
    return fields


def nest_fields(exc: ValidationFailed, prefix: str) -> ValidationFailed:
    """The same error with its fields under ``prefix`` (``phone`` -> ``patient.phone``)."""
    return ValidationFailed(
        exc.reason,
        fields={f"{prefix}.{k}": v for k, v in exc.fields.items()},
        params=exc.params,
        field_params={f"{prefix}.{k}": v for k, v in exc.field_params.items()},
        **exc.extra,
    )


# --- handlers ----------------------------------------------------------------------------------


def _render_zone() -> ZoneInfo:
    """The zone to render times of an error in: the location the request is about, else UTC."""
    location_id = g.get("api_location_id")
    if location_id is not None:
        try:
            location = db_session().get(Location, location_id)
            if location is not None:
                return ZoneInfo(location.timezone)
        except Exception:  # rendering an error must not fail on a second error
            log.exception("could not load the location to render an error")
    return ZoneInfo("UTC")


def handle_domain_error(exc: DomainError) -> Response:
    extra: dict[str, Any] = {}
    for key, value in exc.extra.items():
        if key == "alternatives":
            zone = _render_zone()
            extra[key] = SlotSchema(many=True).dump([slot(s, zone) for s in value])
        elif key == "conflicts":  # a treatment plan's visits in the way
            zone = _render_zone()
            extra[key] = PlanConflictSchema(many=True).dump([plan_conflict(v, zone) for v in value])
        elif isinstance(value, str | int | float | bool) or value is None:
            extra[key] = value
    headers = {"WWW-Authenticate": 'Bearer realm="staff"'} if exc.status == 401 else None
    return error_response(exc.status, exc.code, error_message(exc), field_messages(exc), headers=headers, **extra)


def handle_http_exception(exc: HTTPException) -> Response:
    if exc.code == 500 and server_error_was_unavailable(exc):
        return error_response(503, _CODES[503], _MESSAGES[503], headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    status = exc.code or 500
    code = _CODES.get(status, (exc.name or "error").lower().replace(" ", "_"))
    message = _MESSAGES.get(status, exc.description or exc.name)
    fields: dict[str, str] = {}
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    data = getattr(exc, "data", None) or {}
    if status == 422:
        fields = _validation_fields(data)
    elif status == 400 and isinstance(getattr(exc, "exc", None), json.JSONDecodeError | UnicodeDecodeError):
        code, message = "malformed_json", "The body is not valid JSON (UTF-8). Check quotes, commas and brackets."
    elif status == 405 and isinstance(exc, MethodNotAllowed):
        allowed = ", ".join(sorted(exc.valid_methods or ()))
        message = f"This address does not accept {request.method}; use {allowed}."
    elif status == 429:
        limit = getattr(exc, "limit", None)
        if limit is not None:
            message = f"Too many requests (limit: {limit.limit}). Please wait and try again."
    return error_response(status, code, message, fields, headers=headers)


def routing_errors() -> Response | None:
    """``before_request``: JSON 404/405 for unmatched ``/api/v1`` URLs (no blueprint owns them)."""
    exc = request.routing_exception
    if exc is not None and isinstance(exc, NotFound | MethodNotAllowed) and is_api_request():
        return handle_http_exception(exc)
    return None


def install(blueprint) -> None:
    """Register the JSON error handlers on one blueprint (they apply to its routes only)."""
    blueprint.register_error_handler(DomainError, handle_domain_error)
    blueprint.register_error_handler(HTTPException, handle_http_exception)
