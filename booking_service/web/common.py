"""Helpers shared by the patient-page controllers: the clinic, the clock, headers, messages."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime, time
from urllib.parse import urlsplit

from flask import Response, g, make_response, render_template
from flask_babel import format_date, format_time
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

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
    """The clinic row, read once per request. Not ``required``: None when there is none, or once
    the request found the database away (:func:`database_away`), without trying it again."""
    if not required and g.get("database_away"):
        return None
    if "clinic" not in g:
        try:
            g.clinic = get_clinic(db_session())
        except NotFound:
            if required:
                raise
            return None
    return g.clinic


def database_away() -> None:
    """This request found the database away: the page that says so is rendered without reading
    the clinic (its language falls back to every one offered; see :func:`current_clinic`)."""
    g.database_away = True


def allow_images_from(urls) -> None:
    """Let the page show images from the origins of ``urls`` (practitioners' photos, set by an
    admin): the page's Content-Security-Policy otherwise allows its own images only."""
    origins = g.setdefault("image_origins", set())
    for url in urls:
        parts = urlsplit(url or "")
        if parts.scheme == "https" and parts.netloc:
            origins.add(f"https://{parts.netloc}")


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


# The pages' words for the domain's codes, in the page's language (translated when shown);
# ``%(name)s`` is a value the error carries. Staff-only rules have words too, so that every code
# reads as a sentence wherever it ends up.
PAGE_MESSAGES = {
    errors.NOT_FOUND: _l("We could not find that. Please start again."),
    errors.INVALID: _l("Some answers need checking."),
    errors.CONFLICT: _l("Something changed meanwhile. Please reload the page and try again."),
    errors.SLOT_TAKEN: _l("Sorry, that time was just taken by someone else. Please choose another time."),
    errors.SLOT_UNAVAILABLE: _l("That time can no longer be booked. Please choose another time."),
    errors.PATIENT_OVERLAP: _l("You already have an appointment at that time. Please choose another time."),
    errors.INVALID_TRANSITION: _l("This appointment can no longer be changed online."),
    errors.LATE_CANCELLATION: _l("Please call the clinic at %(phone)s to change this appointment."),
    errors.CLINIC_NOT_SET_UP: _l("Online booking is not open yet. Please call the clinic."),
    errors.SERVICE_NOT_FOUND: _l("That service can no longer be booked online. Please choose another."),
    errors.LOCATION_NOT_FOUND: _l("That location can no longer be booked online. Please choose another."),
    errors.PRACTITIONER_NOT_FOUND: _l("That practitioner can no longer be booked online. Please choose another."),
    errors.PRACTITIONER_NOT_OFFERING: _l("That practitioner does not offer this service here. Please choose another."),
    errors.APPOINTMENT_NOT_FOUND: _l("We could not find that appointment. Please call the clinic."),
    errors.PATIENT_NOT_FOUND: _l("We could not find your details. Please call the clinic."),
    errors.MESSAGE_NOT_FOUND: _l("We could not find that message."),
    errors.LINK_INVALID: _l("This link is not valid any more. Please contact the clinic."),
    errors.START_NEEDS_OFFSET: _l("That time can no longer be booked. Please choose another time."),
    errors.RED_FLAG_UNKNOWN: _l("Please answer the health questions again."),
    errors.STATUS_UNKNOWN: _l("This appointment can no longer be changed online."),
    errors.LATE_CHANGE: _l("Please call the clinic at %(phone)s to change this appointment."),
    errors.APPOINTMENT_CLOSED: _l("This appointment can no longer be changed online."),
    errors.APPOINTMENT_STARTED: _l("This appointment has already started and can no longer be changed online."),
    errors.STATUS_CHANGE_NOT_ALLOWED: _l("This appointment can no longer be changed online."),
    errors.CHECK_IN_TOO_EARLY: _l("Check-in opens %(hours)s hours before your appointment."),
    errors.NOT_STARTED_YET: _l("This can only be done once the appointment has started."),
    errors.HOURS_INVALID: _l("Some hours need fixing."),
    errors.TIME_OFF_INVALID: _l("The time off needs fixing."),
    errors.TIME_OFF_GONE: _l("That time off was already removed."),
    errors.CLOSURE_INVALID: _l("The closure needs fixing."),
    errors.CLOSURE_GONE: _l("That closure was already removed."),
    errors.POLICY_INVALID: _l("Some settings need fixing."),
    errors.WAITLIST_DATES_INVALID: _l("Some dates need fixing."),
    errors.WAITLIST_ENTRY_NOT_FOUND: _l("We could not find your place on the waitlist. Please join again."),
    errors.WAITLIST_ENTRY_CLOSED: _l("This waitlist request is closed. Please join the waitlist again."),
    errors.ROLE_UNKNOWN: _l("Some answers need checking."),
    errors.PRACTITIONER_LINK_NEEDS_ROLE: _l("Some answers need checking."),
    errors.PASSWORD_TOO_SHORT: _l("The password is too short."),
    errors.USER_EXISTS: _l("That account already exists."),
    errors.USER_NOT_FOUND: _l("We could not find that account."),
    errors.USER_DEACTIVATED: _l("That account is closed."),
    # Treatment-plan series: staff book them; these pages never meet them (existing wordings).
    errors.PLAN_CONFLICTS: _l("That time can no longer be booked. Please choose another time."),
    errors.PLAN_NOT_FOUND: _l("We could not find that appointment. Please call the clinic."),
    errors.PLAN_INVALID: _l("Some answers need checking."),
    errors.PLAN_NOTHING_LEFT: _l("This appointment can no longer be changed online."),
}
PAGE_FIELD_MESSAGES = {
    errors.FIRST_NAME_MISSING: _l("Enter your first name."),
    errors.LAST_NAME_MISSING: _l("Enter your last name."),
    errors.NAME_TOO_LONG: _l("Keep this to %(count)s characters or fewer."),
    errors.NAME_INVALID: _l("Use letters, spaces, hyphens or apostrophes only."),
    errors.EMAIL_INVALID: _l("Enter an email address like name@example.com."),
    errors.PHONE_INVALID: _l("Enter a mobile number like 416 555 0123."),
    errors.CONTACT_MISSING: _l("Enter an email address or a mobile number, so we can confirm your booking."),
    errors.LANGUAGE_INVALID: _l("Choose English or French."),
    errors.SERVICE_UNKNOWN: _l("Choose a service from the list."),
    errors.LOCATION_UNKNOWN: _l("Choose a location from the list."),
    errors.PRACTITIONER_UNKNOWN: _l("Choose a practitioner from the list, or anyone."),
    errors.TIME_NEEDS_ZONE: _l("Choose a time from the list."),
    errors.START_NOT_A_SLOT: _l("Choose a time from the list."),
    errors.END_NOT_AFTER_START: _l("Choose an end after the start."),
    errors.DAY_INVALID: _l("Enter a date like 2026-11-24."),
    errors.RED_FLAG_KEYS_UNKNOWN: _l("Please answer the questions on this page."),
    errors.STATUS_INVALID: _l("Check this answer."),
    errors.WEEKDAY_INVALID: _l("Choose a day of the week."),
    errors.BREAK_INCOMPLETE: _l("Give both ends of the break, or neither."),
    errors.BREAK_END_NOT_AFTER_START: _l("The break must end after it starts."),
    errors.BREAK_OUTSIDE_HOURS: _l("The break must be inside the working hours."),
    errors.UNTIL_BEFORE_FROM: _l("Choose an end date on or after the start date."),
    errors.HOURS_OVERLAP: _l("This overlaps the hours %(start)s to %(end)s of the same day."),
    errors.HOURS_OVERLAP_ELSEWHERE: _l("This overlaps the hours at %(location)s (%(start)s to %(end)s)."),
    errors.REASON_TOO_LONG: _l("Keep this to %(limit)s characters or fewer."),
    errors.CLOSURE_NAME_MISSING: _l("Say why it is closed (for example: Boxing Day)."),
    errors.CLOSURE_NAME_TOO_LONG: _l("Keep this to %(limit)s characters or fewer."),
    errors.DAY_ALREADY_CLOSED: _l("That day is already closed."),
    errors.NUMBER_OUT_OF_RANGE: _l("Enter a whole number from %(low)s to %(high)s."),
    errors.SLOT_STEP_INVALID: _l("Choose one of %(choices)s minutes."),
    errors.LATE_POLICY_INVALID: _l("Check this answer."),
    errors.YES_NO_INVALID: _l("Choose yes or no."),
    errors.TIME_INVALID: _l("Enter a time like 09:30."),
    errors.QUIET_HOURS_ORDER: _l("The end must be after the start."),
    errors.COLOUR_INVALID: _l("Enter a colour like #0f6e6e."),
    errors.COLOUR_CONTRAST_LOW: _l("Choose a darker colour: white text on %(colour)s is hard to read."),
    errors.RULES_NOT_LIST: _l("A reminder rule is not right."),
    errors.RULE_NOT_OBJECT: _l("A reminder rule is not right."),
    errors.RULE_CHANNEL_INVALID: _l("Choose text message or email."),
    errors.RULE_NEEDS_ONE_OFFSET: _l("A reminder rule is not right."),
    errors.RULE_HOURS_INVALID: _l("Enter a number of hours from 1 to 744."),
    errors.RULE_AT_WITH_HOURS: _l("A reminder rule is not right."),
    errors.RULE_DAYS_INVALID: _l("Enter a number of days from 0 to 31."),
    errors.RULE_AT_INVALID: _l("Enter a time like 09:30."),
    errors.EARLIEST_DATE_PAST: _l("Choose today or a later date."),
    errors.LATEST_BEFORE_EARLIEST: _l("Choose a date on or after the first date."),
    errors.LATEST_BEYOND_HORIZON: _l("Choose a date up to %(last_day)s: we book up to %(horizon_days)s days ahead."),
    errors.ROLE_INVALID: _l("Check this answer."),
    errors.PRACTITIONER_LINK_INVALID: _l("Check this answer."),
    errors.PASSWORD_LENGTH: _l("Use at least %(minimum)s characters."),
}


def _page_render(value: object) -> str:
    """Dates and times in the page's language."""
    if isinstance(value, time):
        return format_time(value, "short")
    if isinstance(value, date) and not isinstance(value, datetime):
        return format_date(value, "long")
    return errors.default_render(value)


def domain_message(reason: str, values: Mapping[str, object] | None = None) -> str:
    """A patient-facing sentence for a domain error's reason (or code), in the page's language."""
    words = PAGE_MESSAGES.get(reason)
    if words is None:
        clinic = current_clinic(required=False)
        phone = clinic.phone if clinic is not None else ""
        return _("Something went wrong. Please try again, or call us at %(phone)s.", phone=phone)
    return errors.fill(str(words), values or {}, _page_render)


def page_message(exc: DomainError) -> str:
    """The page's sentence for a domain error, with the values it carries."""
    return domain_message(exc.reason, exc.values()) if exc.reason in PAGE_MESSAGES else domain_message(exc.code)


def field_words(code: str, values: Mapping[str, object] | None = None) -> str | None:
    """The page's words (in the page's language) for a domain field code, or None."""
    words = PAGE_FIELD_MESSAGES.get(code)
    if words is None:
        return None
    return errors.fill(str(words), {"count": MAX_NAME_LENGTH, **(values or {})}, _page_render)


# Field messages in the page's language for a field whose problem is not a code (text from
# older code): the page names the field in words a patient reads.
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


def field_errors(exc: DomainError) -> dict[str, str]:
    """The domain's field errors in the page's words (the keys are the form's field names)."""
    return {
        field: field_words(code, exc.field_params.get(field)) or field_message(field)
        for field, code in exc.fields.items()
        if field not in ("service_id", "location_id", "practitioner_id")
    }
