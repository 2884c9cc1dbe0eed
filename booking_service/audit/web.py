"""The request edge of the audit trail: who is acting in this request.

:func:`init_app` binds a resolver before each request; it is called only when something is
recorded, and reads what the request's own authentication already established:

- a manage-link view called :func:`reached_by_link` -> ``patient_link`` (the appointment);
- the staff API set ``g.staff_user`` -> ``api_token`` (the token's id and its user);
- a signed-in console user (Flask-Login's ``current_user``) -> ``staff``;
- the Twilio webhooks -> ``webhook``; anything else -> ``public`` (an anonymous visitor).
"""

from __future__ import annotations

import hashlib

from flask import Flask, g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.audit import context
from booking_service.audit.context import Actor
from booking_service.observability import request_id as request_ids
from booking_service.staff.models import ApiToken

REQUEST_ID = request_ids.SANE


def reached_by_link(appointment_id: int) -> None:
    """A manage-link view found its appointment: what is recorded next is the link holder's."""
    g.audit_patient_link = appointment_id


def _request_id() -> str | None:
    # Set by observability.web for every request; else a proxy's X-Request-ID, if sane.
    value = g.get("request_id") or request.headers.get("X-Request-ID")
    return value if isinstance(value, str) and REQUEST_ID.match(value) else None


def _token_id(session: Session) -> int | None:
    if "audit_token_id" not in g:
        _scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        # Tokens are stored as their SHA-256 (staff.operations); the id is all the trail keeps.
        digest = hashlib.sha256(token.strip().encode()).hexdigest()
        g.audit_token_id = session.scalar(select(ApiToken.id).where(ApiToken.token_hash == digest))
    return g.audit_token_id


def request_actor(session: Session) -> Actor:
    where = {"address": request.remote_addr, "request_id": _request_id()}
    appointment_id = g.get("audit_patient_link")
    if appointment_id is not None:
        return Actor("patient_link", appointment_id=appointment_id, **where)
    user = g.get("staff_user")
    if user is not None:
        return Actor("api_token", user_id=user.id, label=user.email, token_id=_token_id(session), **where)
    if request.blueprint == "console":
        from flask_login import current_user

        if current_user.is_authenticated:
            return Actor("staff", user_id=current_user.user_id, label=current_user.email, **where)
    if request.blueprint == "webhooks":
        return Actor("webhook", **where)
    return Actor("public", **where)


def _bind() -> None:
    g.audit_context_token = context.bind(request_actor)


def _unbind(_exc: BaseException | None = None) -> None:
    token = g.pop("audit_context_token", None)
    if token is not None:
        context.unbind(token)


def init_app(app: Flask) -> None:
    app.before_request(_bind)
    app.teardown_request(_unbind)
