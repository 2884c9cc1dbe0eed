"""The booking in progress, kept in the signed session between the steps of the journey.

Why the session and not the URL: the intake (reason for the visit, red-flag answers) must never
appear in a URL, where it would land in browser history, proxy logs and Referer headers. Why
not hidden fields alone: every step can then be shown again by a plain GET (back button,
refresh, language switch) without losing anything the patient typed. The draft is removed once
the booking is made. Each draft has an id that the review page posts back, so a booking made
from one tab cannot silently take the details typed in another.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import session

KEY = "booking_draft"
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


def load() -> dict[str, Any]:
    value = session.get(KEY)
    return dict(value) if isinstance(value, dict) else {}


def save(draft: dict[str, Any]) -> dict[str, Any]:
    draft.setdefault("id", secrets.token_urlsafe(9))
    session[KEY] = draft
    return draft


def clear() -> None:
    session.pop(KEY, None)


def choice_of(draft: dict[str, Any]) -> dict[str, Any]:
    return {k: draft.get(k) for k in ("service_id", "location_id", "practitioner_id", "start")}


def any_red_flag(draft: dict[str, Any]) -> bool:
    flags = draft.get("red_flags") or {}
    return any(flags.get(k) == "yes" for k in RED_FLAG_KEYS)
