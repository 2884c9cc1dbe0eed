"""Helpers shared by the patient-page controllers: the clinic, the clock, headers, messages."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Response, g, make_response, render_template
from flask_babel import gettext as _

from booking_service import errors
from booking_service.clinic.models import ClinicSettings
from booking_service.clinic.queries import get_clinic
from booking_service.context import db_session, utcnow
from booking_service.errors import DomainError, NotFound
from booking_service.form_values import parse_int, parse_slot_value, slot_value  # noqa: F401  (re-exported)
from booking_service.patients.operations import MAX_NAME_LENGTH

log = logging.getLogger(__name__)

# The honeypot: a text input people never see or reach (hidden by CSS, out of the tab order,
# named so that form-filling bots want it). Anything in it means the post came from a bot.
HONEYPOT_FIELD = "website"


def now() -> datetime:
    return utcnow()


def current_clinic(*, required: bool = True) -> ClinicSettings | None:
    """The clinic row, read once per request."""
    if "clinic" not in g:
        try:
            g.clinic = get_clinic(db_session())
        except NotFound:
            if required:
                raise
            return None
    return g.clinic


def page(template: str, status: int = 200, **context) -> Response:
    response = make_response(render_template(template, **context), status)
    return response


def private(response: Response) -> Response:
    """A page about one person's booking: never cached, never leaked through Referer."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def is_bot(form) -> bool:
    if form.get(HONEYPOT_FIELD, "").strip():
        log.info("honeypot field filled in: post refused")
        return True
    return False


def field_words(code: str) -> str | None:
    """The page's words (in the page's language) for a domain field code, or None."""
    words = {
        errors.FIRST_NAME_MISSING: _("Enter your first name."),
        errors.LAST_NAME_MISSING: _("Enter your last name."),
        errors.NAME_TOO_LONG: _("Keep this to %(count)d characters or fewer.", count=MAX_NAME_LENGTH),
        errors.NAME_INVALID: _("Use letters, spaces, hyphens or apostrophes only."),
        errors.EMAIL_INVALID: _("Enter an email address like name@example.com."),
        errors.PHONE_INVALID: _("Enter a mobile number like 416 555 0123."),
        errors.CONTACT_MISSING: _("Enter an email address or a mobile number, so we can confirm your booking."),
        errors.LANGUAGE_INVALID: _("Choose English or French."),
    }
    return words.get(code)


# Field messages in the page's language for fields whose rule has no code yet: the page names
# the field in words a patient reads.
def field_message(field: str) -> str:
    messages = {
        "first_name": _("Enter your first name."),
        "last_name": _("Enter your last name."),
        "email": _("Enter an email address like name@example.com."),
        "phone": _("Enter a mobile number like 416 555 0123."),
        "language": _("Choose English or French."),
        "earliest_date": _("Choose today or a later date."),
        "latest_date": _("Choose a date on or after the first date, within the booking period."),
    }
    return messages.get(field, _("Check this answer."))


def domain_message(code: str) -> str:
    """A patient-facing sentence for a domain error's code, in the page's language."""
    clinic = current_clinic(required=False)
    phone = clinic.phone if clinic is not None else ""
    messages = {
        "slot_taken": _("Sorry, that time was just taken by someone else. Please choose another time."),
        "slot_unavailable": _("That time can no longer be booked. Please choose another time."),
        "patient_overlap": _("You already have an appointment at that time. Please choose another time."),
        "invalid_transition": _("This appointment can no longer be changed online."),
        "late_cancellation": _("Please call the clinic at %(phone)s to change this appointment.", phone=phone),
        "not_found": _("We could not find that. Please start again."),
        "invalid": _("Some answers need checking."),
    }
    return messages.get(code, _("Something went wrong. Please try again, or call us at %(phone)s.", phone=phone))


def field_errors(exc: DomainError) -> dict[str, str]:
    """The domain's field errors in the page's words (the keys are the form's field names)."""
    return {
        field: field_words(code) or field_message(field)
        for field, code in exc.fields.items()
        if field not in ("service_id", "location_id", "practitioner_id")
    }
