"""The booking in progress, kept server side between the steps of the journey.

Where it lives: a ``booking_drafts`` row (``patients.models.BookingDraft``). Flask's session
cookie is signed, not encrypted: anything put in it (names, contacts, the reason for the visit,
red-flag answers, a manage token) can be read by whoever sees the cookie: a shared computer, a
proxy that logs headers, a browser extension. So the cookie carries only a random 256-bit key;
the database keeps the key's SHA-256 and the draft, for two hours after its last change.

Why not the URL: the intake must never appear in a URL, where it would land in browser history,
proxy logs and Referer headers. Why not hidden fields alone: every step can then be shown again
by a plain GET (back button, refresh, language switch) without losing anything the patient
typed. Each draft has an id that the review page posts back, so a booking made from one tab
cannot silently take the details typed in another.

A draft is the visitor's scratch pad, not part of the request's unit of work: :func:`save`
writes it in its own short transaction, so what was typed is kept even when the step answers
422. :func:`complete` is the exception: the booking's own request deletes the draft, in the
booking's transaction, and leaves only a pointer to the appointment for the confirmation page.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import session
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from booking_service.context import database, db_session
from booking_service.patients.models import BookingDraft
from booking_service.web.common import now

KEY = "booking_draft"  # cookie: the draft's key
CONFIRMED_KEY = "booked"  # cookie: the key of the row naming the appointment just booked
LIFETIME = timedelta(hours=2)
RED_FLAG_KEYS = ("bladder_bowel", "saddle_numbness", "leg_weakness", "systemic")
CONTACT_KEYS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "language",
    "sms_consent",
    "email_consent",
    "exercise_sms_consent",
)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _row(db: Session, key: Any, at: datetime) -> BookingDraft | None:
    """The live row of a cookie's key; None for no key, an unknown key or an expired row."""
    if not isinstance(key, str) or not key or len(key) > 64:
        return None
    return db.scalars(
        select(BookingDraft).where(BookingDraft.key_hash == _hash(key), BookingDraft.expires_at > at)
    ).first()


def _new_row(db: Session, data: dict[str, Any], at: datetime) -> str:
    """Insert a row for ``data`` and return its key; expired rows are swept on the way."""
    db.execute(delete(BookingDraft).where(BookingDraft.expires_at <= at))
    key = secrets.token_urlsafe(32)
    db.add(BookingDraft(key_hash=_hash(key), data=data, created_at=at, expires_at=at + LIFETIME))
    return key


def load() -> dict[str, Any]:
    """The visitor's draft (a copy), or {} when there is none or it expired."""
    row = _row(db_session(), session.get(KEY), now())
    return dict(row.data) if row is not None and isinstance(row.data, dict) else {}


def save(draft: dict[str, Any], *, fresh: bool = False) -> dict[str, Any]:
    """Store ``draft`` for the visitor (its own transaction) and return it; ``fresh`` starts a
    new draft under a new key, the old one deleted."""
    draft.setdefault("id", secrets.token_urlsafe(9))
    at = now()
    with database().unit_of_work() as db:
        row = _row(db, session.get(KEY), at)
        if row is not None and fresh:
            db.delete(row)
            row = None
        if row is None:
            session[KEY] = _new_row(db, dict(draft), at)
        else:
            row.data = dict(draft)
            row.expires_at = at + LIFETIME
    return draft


def complete(appointment_id: int) -> None:
    """The booking was made: delete the draft in the request's transaction (kept if the booking
    does not commit), and leave only the appointment's id for the confirmation page."""
    db, at = db_session(), now()
    row = _row(db, session.pop(KEY, None), at)
    if row is not None:
        db.delete(row)
    session[CONFIRMED_KEY] = _new_row(db, {"appointment_id": appointment_id}, at)


def confirmed_appointment_id() -> int | None:
    """The appointment this visitor has just booked, while its confirmation row lives."""
    row = _row(db_session(), session.get(CONFIRMED_KEY), now())
    value = row.data.get("appointment_id") if row is not None and isinstance(row.data, dict) else None
    return value if isinstance(value, int) else None


def choice_of(draft: dict[str, Any]) -> dict[str, Any]:
    return {k: draft.get(k) for k in ("service_id", "location_id", "practitioner_id", "start")}


def any_red_flag(draft: dict[str, Any]) -> bool:
    flags = draft.get("red_flags") or {}
    return any(flags.get(k) == "yes" for k in RED_FLAG_KEYS)
