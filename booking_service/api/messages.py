"""The API's words for the domain's field codes (``booking_service.errors``).

``fields`` of an API error maps a field path to a readable message: integrators show it as it
is. Values that are not a code here are already readable text and pass through.
"""

from __future__ import annotations

from collections.abc import Mapping

from booking_service import errors
from booking_service.patients.operations import MAX_NAME_LENGTH

FIELD_MESSAGES = {
    errors.FIRST_NAME_MISSING: "Enter a first name.",
    errors.LAST_NAME_MISSING: "Enter a last name.",
    errors.NAME_TOO_LONG: f"Use at most {MAX_NAME_LENGTH} characters.",
    errors.NAME_INVALID: "Use letters, spaces, hyphens or apostrophes only.",
    errors.EMAIL_INVALID: "Enter an email address such as name@example.com.",
    errors.PHONE_INVALID: "Enter a mobile number such as 416 555 0123 or +1 416 555 0123.",
    errors.CONTACT_MISSING: "Give an email address or a mobile number so we can confirm your booking.",
    errors.LANGUAGE_INVALID: "Choose en or fr.",
}


def field_message(code: str) -> str:
    return FIELD_MESSAGES.get(code, code)


def field_messages(fields: Mapping[str, str]) -> dict[str, str]:
    """Field path -> readable message, for the ``fields`` of an API error."""
    return {path: field_message(code) for path, code in fields.items()}
