"""Reading and checking the patient forms (details and intake, waitlist).

The rules of a patient's details are the domain's (``patients.operations.clean_details``),
called here at each step and worded by field code in the page's language (``common.field_words``);
this module keeps only the form's own shape: lengths, the yes/no questions, dates, and boxes that
need the matching contact detail.
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from booking_service.errors import ValidationFailed
from booking_service.form_values import parse_date
from booking_service.patients.operations import PatientDetails, clean_details
from booking_service.web.common import field_errors
from booking_service.web.draft import RED_FLAG_KEYS
from booking_service.web.i18n import LANGUAGES

NAME_MAX = 80
EMAIL_MAX = 254
PHONE_MAX = 32
# Enough for a reason in a few sentences; staff read it at a glance before the visit.
REASON_MAX = 400
NOTES_MAX = 300

# The red-flag screen (DOMAIN.md, "Red flags"), asked as yes/no questions in plain words.
RED_FLAG_QUESTIONS = (
    (
        "bladder_bowel",
        _l("Have you recently lost control of your bladder or bowel, or found it hard to pass urine?"),
    ),
    (
        "saddle_numbness",
        _l("Do you have numbness around your groin, buttocks or inner thighs (the area you would sit on a saddle)?"),
    ),
    (
        "leg_weakness",
        _l("Is one leg, or are both legs, getting weaker, or is numbness spreading?"),
    ),
    (
        "systemic",
        _l(
            "Along with your pain, do you have a fever, weight loss you cannot explain, a history of cancer, "
            "or a recent major injury such as a fall or car accident?"
        ),
    ),
)

# Errors are shown in the order the fields appear on the page.
DETAILS_ORDER = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "sms_consent",
    "email_consent",
    "exercise_sms_consent",
    "language",
    "reason",
    *(f"rf_{key}" for key in RED_FLAG_KEYS),
)


def _text(form, name: str, limit: int) -> str:
    return (form.get(name) or "").strip()[:limit]


def read_contact(form) -> dict[str, Any]:
    language = form.get("language")
    return {
        "first_name": _text(form, "first_name", NAME_MAX),
        "last_name": _text(form, "last_name", NAME_MAX),
        "email": _text(form, "email", EMAIL_MAX),
        "phone": _text(form, "phone", PHONE_MAX),
        "language": language if language in LANGUAGES else None,
        "sms_consent": form.get("sms_consent") == "yes",
        "email_consent": form.get("email_consent") == "yes",
        "exercise_sms_consent": form.get("exercise_sms_consent") == "yes",
    }


def read_details(form) -> dict[str, Any]:
    """What the patient typed on the details step, trimmed (typed text is kept even when wrong)."""
    values = read_contact(form)
    # The limit is checked, not silently applied: keep one character too many to notice it.
    values["reason"] = (form.get("reason") or "").strip()[: REASON_MAX + 1]
    values["red_flags"] = {
        key: form.get(f"rf_{key}") if form.get(f"rf_{key}") in ("yes", "no") else None for key in RED_FLAG_KEYS
    }
    return values


def check_contact(values: dict[str, Any], *, country: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    try:
        clean_details(
            PatientDetails(
                first_name=values["first_name"],
                last_name=values["last_name"],
                email=values["email"] or None,
                phone=values["phone"] or None,
                language=values["language"],
            ),
            country=country,
            default_language=values["language"] or "en",
        )
    except ValidationFailed as exc:
        errors.update(field_errors(exc))
    if values["sms_consent"] and not values["phone"]:
        errors["sms_consent"] = _("Enter a mobile number above to get texts, or untick this box.")
    if values["exercise_sms_consent"] and not values["phone"]:
        errors["exercise_sms_consent"] = _("Enter a mobile number above to get exercise reminders, or untick this box.")
    if values["email_consent"] and not values["email"]:
        errors["email_consent"] = _("Enter an email address above to get emails, or untick this box.")
    if values["language"] is None:
        errors["language"] = _("Choose English or French.")
    return errors


def check_details(values: dict[str, Any], *, country: str) -> dict[str, str]:
    """Field name -> message, in page order; empty when everything can be booked."""
    errors = check_contact(values, country=country)
    if len(values["reason"]) > REASON_MAX:
        errors["reason"] = _("Keep this to %(count)d characters or fewer.", count=REASON_MAX)
    unanswered = {
        "bladder_bowel": _("Answer yes or no to the question about bladder and bowel control."),
        "saddle_numbness": _("Answer yes or no to the question about numbness around the groin."),
        "leg_weakness": _("Answer yes or no to the question about leg weakness."),
        "systemic": _("Answer yes or no to the question about fever, weight loss, cancer or injury."),
    }
    for key, answer in values["red_flags"].items():
        if answer is None:
            errors[f"rf_{key}"] = unanswered[key]
    return {name: errors[name] for name in DETAILS_ORDER if name in errors}


def read_waitlist(form) -> dict[str, Any]:
    values = read_contact(form)
    values["earliest_date"] = _text(form, "earliest_date", 10)
    values["latest_date"] = _text(form, "latest_date", 10)
    values["notes"] = (form.get("notes") or "").strip()[: NOTES_MAX + 1]
    return values


WAITLIST_ORDER = ("earliest_date", "latest_date", "notes", *DETAILS_ORDER[:8])


def check_waitlist(values: dict[str, Any], *, country: str) -> dict[str, str]:
    errors = check_contact(values, country=country)
    earliest, latest = parse_date(values["earliest_date"]), parse_date(values["latest_date"])
    if earliest is None:
        errors["earliest_date"] = _("Enter a date, for example 2026-12-01.")
    if latest is None:
        errors["latest_date"] = _("Enter a date, for example 2026-12-31.")
    elif earliest is not None and latest < earliest:
        errors["latest_date"] = _("Choose a date on or after the first date.")
    if len(values["notes"]) > NOTES_MAX:
        errors["notes"] = _("Keep this to %(count)d characters or fewer.", count=NOTES_MAX)
    return {name: errors[name] for name in WAITLIST_ORDER if name in errors}
