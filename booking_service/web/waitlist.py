"""Joining the waitlist when no time fits (``waitlist.operations.join_waitlist``)."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, g, redirect, request, session, url_for

from booking_service.context import db_session
from booking_service.errors import DomainError, ValidationFailed
from booking_service.form_values import parse_date
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling import slots as slot_search
from booking_service.waitlist.operations import WaitlistRequest, join_waitlist
from booking_service.web import draft as drafts
from booking_service.web import i18n
from booking_service.web.booking import Selection
from booking_service.web.common import (
    current_clinic,
    field_errors,
    is_bot,
    now,
    page,
    page_message,
    private,
)
from booking_service.web.forms import check_waitlist, read_waitlist

JOINED_KEY = "waitlist_joined"
DEFAULT_SPAN_DAYS = 28


def join():
    selection = Selection.from_values(request.values)
    if selection.resolve():
        return redirect(url_for("web.start"))
    clinic = current_clinic()
    today = slot_search.local_date(now(), selection.location)
    last_day = today + timedelta(days=clinic.horizon_days)
    if request.method == "GET":
        draft = drafts.load()
        first = parse_date(request.args.get("from", "")) or today
        first = max(today, min(first, last_day))
        values = {key: draft.get(key) for key in drafts.CONTACT_KEYS}
        values["language"] = values.get("language") or i18n.language()
        values.update(
            earliest_date=first.isoformat(),
            latest_date=min(first + timedelta(days=DEFAULT_SPAN_DAYS - 1), last_day).isoformat(),
            notes="",
        )
        return private(_render(selection, values, today=today, last_day=last_day))

    if is_bot(request.form):
        abort(400)
    values = read_waitlist(request.form)
    errors = check_waitlist(values, country=clinic.country)
    if errors:
        return private(_render(selection, values, errors, today=today, last_day=last_day, status=422))
    request_ = WaitlistRequest(
        service_id=selection.service_id,
        location_id=selection.location_id,
        practitioner_id=selection.practitioner_id,
        earliest_date=parse_date(values["earliest_date"]),
        latest_date=parse_date(values["latest_date"]),
        notes=values["notes"],
        patient=PatientDetails(
            first_name=values["first_name"],
            last_name=values["last_name"],
            email=values["email"] or None,
            phone=values["phone"] or None,
            language=values["language"],
            sms_consent=values["sms_consent"],
            email_consent=values["email_consent"],
            exercise_sms_consent=False,
        ),
    )
    session_ = db_session()
    try:
        entry = join_waitlist(session_, request_, now=now())
    except ValidationFailed as exc:
        return private(_render(selection, values, field_errors(exc), today=today, last_day=last_day, status=exc.status))
    except DomainError as exc:
        return private(
            _render(selection, values, today=today, last_day=last_day, status=exc.status, message=page_message(exc))
        )
    session[JOINED_KEY] = {
        "service_id": entry.service_id,
        "location_id": entry.location_id,
        "practitioner_id": entry.practitioner_id,
        "earliest": entry.earliest_date.isoformat(),
        "latest": entry.latest_date.isoformat(),
        "contact": "sms" if values["sms_consent"] else ("email" if values["email"] else "phone"),
    }
    return redirect(url_for("web.waitlist_joined"))


def _render(selection, values, errors=None, *, today, last_day, status=200, message=None):
    g.language_return = url_for("web.waitlist", **selection.args())
    return page(
        "pages/waitlist.html",
        status,
        selection=selection,
        values=values,
        errors=errors or {},
        message=message,
        today=today.isoformat(),
        last_day=last_day.isoformat(),
    )


def joined():
    info = session.get(JOINED_KEY)
    if not info:
        return redirect(url_for("web.start"))
    selection = Selection(info["service_id"], info["location_id"], info["practitioner_id"])
    if selection.resolve():
        return redirect(url_for("web.start"))
    earliest, latest = parse_date(info["earliest"]), parse_date(info["latest"])
    return private(
        page(
            "pages/waitlist_joined.html",
            selection=selection,
            earliest=i18n.format_day(earliest, year=True),
            latest=i18n.format_day(latest, year=True),
            contact=info.get("contact"),
            clinic_phone=current_clinic().phone,
        )
    )
