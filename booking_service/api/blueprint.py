"""The JSON API under ``/api/v1``: URL map, OpenAPI document and error handling.

Built with flask-smorest: one set of marshmallow schemas (``schemas.py``) both validates every
request (through webargs) and generates the OpenAPI 3 document served at
``/api/v1/openapi.json``, so the document is what the server enforces. Views live in
``public.py`` (catalogue and booking), ``manage.py`` (the patient's manage link),
``staff.py``, ``programs.py``, ``alerts.py`` and ``plans.py`` (Bearer token); each parses,
checks access, calls one operation, commits and serializes (``serializers.py``).
"""

from __future__ import annotations

import json

from flask import Flask, request
from flask_smorest import Api, Blueprint
from webargs.flaskparser import FlaskParser

from booking_service.api import errors
from booking_service.api.errors import API_PREFIX, UnsupportedContentType
from booking_service.api.schemas import ErrorSchema

API_VERSION = "1.0.0"
MAX_BODY_BYTES = 64 * 1024
_BODY_METHODS = ("POST", "PUT", "PATCH")

TAGS = [
    {"name": "Catalogue", "description": "Services, locations, practitioners and free slots (public)."},
    {"name": "Booking", "description": "Booking an appointment (public, rate limited)."},
    {"name": "Manage", "description": "The patient's own booking, through the link in every message."},
    {"name": "Staff", "description": "Front desk and practitioners: a staff Bearer token is required."},
    {"name": "Programs", "description": "Home exercise programs: the library, assigning, progress (staff token)."},
    {"name": "Plans", "description": "Treatment plans: a series of visits booked all or nothing (staff token)."},
]


class _Parser(FlaskParser):
    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except RecursionError:  # absurdly nested JSON: a client error, not a crash
            raise json.JSONDecodeError("JSON nested too deeply", doc="-", pos=0) from None


class ApiBlueprint(Blueprint):
    ARGUMENTS_PARSER = _Parser()


bp = ApiBlueprint(
    "api",
    __name__,
    url_prefix=API_PREFIX,
    description="The clinic's JSON API (version 1).",
)
errors.install(bp)


@bp.before_request
def _check_body() -> None:
    """Bodies are JSON and small: say so with a 400/413 instead of guessing."""
    if request.method not in _BODY_METHODS:
        return
    request.max_content_length = MAX_BODY_BYTES  # werkzeug answers 413 beyond it
    if request.get_data(cache=True).strip() and not request.is_json:
        raise UnsupportedContentType(
            "Send the body as JSON with the header Content-Type: application/json.",
            fields={"body": "Use Content-Type: application/json."},
        )


def documented_errors(*statuses: int):
    """Document the error responses an operation may give (shape: ``ErrorSchema``)."""
    import http

    def decorator(view):
        for status in statuses:
            view = bp.alt_response(status, response=http.HTTPStatus(status).name)(view)
        return view

    return decorator


class JsonApi(Api):
    """flask-smorest's Api with the error shape of this API.

    flask-smorest installs an app-wide ``HTTPException`` handler; this one answers in the API's
    error shape under ``/api/v1`` and hands every other path back to Flask, so the HTML pages
    keep their own error pages.
    """

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):
        if errors.is_api_request():
            return errors.handle_http_exception(error)
        return error


def register_api(app: Flask) -> None:
    from booking_service.api import alerts, manage, plans, programs, public, staff  # noqa: F401  (their routes join bp)
    from booking_service.api.auth import SECURITY_SCHEME, SECURITY_SCHEME_SPEC
    from booking_service.extensions import csrf

    app.config.setdefault("OPENAPI_URL_PREFIX", API_PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = JsonApi(
        spec_kwargs={
            "title": "Clinic booking API",
            "version": API_VERSION,
            "openapi_version": "3.0.3",
            "info": {
                "description": "Book, reschedule and cancel physiotherapy appointments; staff read the "
                "day, change statuses and see every message sent. Times are ISO 8601 with an offset. "
                'Errors: {"error": {"code", "message", "fields"}}. Request bodies reject unknown keys.'
            },
            "tags": TAGS,
        }
    )
    api.init_app(app)
    api.spec.components.security_scheme(SECURITY_SCHEME, SECURITY_SCHEME_SPEC)
    api.register_blueprint(bp)
    csrf.exempt(bp)  # token-authenticated or public JSON: no session cookie to protect
    app.before_request(errors.routing_errors)
    app.extensions["api"] = api
