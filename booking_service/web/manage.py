"""The manage page at ``/m/<token>`` (the path is fixed: every message links to it).

The token is the only credential, so these pages show only what its holder needs (no intake, a
masked contact hint), are never cached, and send no Referer. GET never changes anything: each
change is a POST with a CSRF token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from flask import Response, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import refresh

from booking_service.audit.web import reached_by_link
from booking_service.clinic.models import Service
from booking_service.context import db_session, settings
from booking_service.errors import DomainError, LateCancellationBlocked, NotFound, SlotTaken, SlotUnavailable
from booking_service.form_values import parse_date
from booking_service.scheduling.models import ACTIVE_STATUSES, Appointment
from booking_service.scheduling.operations import find_by_token, inside_cancellation_window
from booking_service.usecases.booking import cancel, reschedule
from booking_service.web import draft as drafts
from booking_service.web import i18n
from booking_service.web.common import (
    current_clinic,
    now,
    page,
    page_message,
    parse_slot_value,
    private,
    slot_value,
)
from booking_service.web.picker import week_of_slots

# Why patients cancel, for staff (stored in English) and for the form (translated).
CANCEL_REASONS = (
    ("better", "Feeling better", _l("I am feeling better")),
    ("time", "Cannot make this time", _l("I cannot make this time")),
    ("elsewhere", "Seeing someone else", _l("I am seeing someone else")),
    ("mistake", "Booked by mistake", _l("I booked by mistake")),
    ("other", "Other", _l("Another reason")),
)
CANCEL_DETAIL_MAX = 300


def _load(token: str) -> Appointment | Response:
    try:
        appointment = find_by_token(db_session(), token, now=now())
    except NotFound:
        return private(page("pages/not_found.html", 404))
    reached_by_link(appointment.id)  # what the holder changes is audited as this link's
    # Pages about a booking speak the patient's language unless they chose another here.
    g.subject_language = appointment.language
    refresh()
    return appointment


def mask_email(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    local, _at, domain = email.partition("@")
    return f"{local[0]}•••@{domain}"


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    return f"••• {phone[-4:]}"


def google_calendar_url(appointment: Appointment, clinic) -> str:
    """An "add to Google Calendar" link. Nothing private: no name, no manage link, no intake."""
    stamp = "%Y%m%dT%H%M%SZ"
    start, end = appointment.start_at.astimezone(UTC), appointment.end_at.astimezone(UTC)
    query = {
        "action": "TEMPLATE",
        "text": _("%(service)s at %(clinic)s", service=i18n.service_name(appointment.service), clinic=clinic.name),
        "dates": f"{start.strftime(stamp)}/{end.strftime(stamp)}",
        "details": _("To change or cancel, use the link in your confirmation, or call %(phone)s.", phone=clinic.phone),
        "location": f"{clinic.name} {appointment.location.name}, {appointment.location.address}",
        "ctz": appointment.location.timezone,
    }
    return "https://calendar.google.com/calendar/render?" + urlencode(query)


def calendar_uid(appointment: Appointment) -> str:
    """Stable for the appointment's whole life, so a re-import updates instead of duplicating."""
    host = urlsplit(settings().PUBLIC_BASE_URL).hostname or "localhost"
    return f"appointment-{appointment.id}@{host}"


def _changeable(appointment: Appointment, at: datetime) -> bool:
    return appointment.status in ("booked", "confirmed") and appointment.start_at > at


def appointment_context(appointment: Appointment) -> dict:
    """What every page about one booking shows."""
    clinic = current_clinic()
    at = now()
    tz = appointment.location.timezone
    return {
        "appointment": appointment,
        "service_name": i18n.service_name(appointment.service),
        "when": i18n.format_when(appointment.start_at, tz),
        "ends": i18n.format_clock(appointment.end_at, tz),
        "zone": i18n.zone_label(tz, [appointment.start_at]),
        "duration": int((appointment.end_at - appointment.start_at).total_seconds() // 60),
        "is_initial": appointment.service.kind == "initial",
        "changeable": _changeable(appointment, at),
        "active": appointment.status in ACTIVE_STATUSES and appointment.end_at > at,
        "late": inside_cancellation_window(clinic, appointment, at),
        "policy": clinic.late_cancellation_policy,
        "window_hours": clinic.cancellation_window_hours,
        "email_hint": mask_email(appointment.patient.email),
        "phone_hint": mask_phone(appointment.patient.phone),
        "google_url": google_calendar_url(appointment, clinic),
    }


def show(token: str):
    appointment = _load(token)
    if isinstance(appointment, Response):
        return appointment
    return private(page("pages/manage.html", token=token, **appointment_context(appointment)))


def calendar(token: str):
    appointment = _load(token)
    if isinstance(appointment, Response):
        return appointment
    if appointment.status not in ACTIVE_STATUSES:
        return private(page("pages/not_found.html", 404))
    from booking_service.messaging.ics import build_ics

    clinic = current_clinic()
    location = appointment.location
    body = build_ics(
        uid=calendar_uid(appointment),
        sequence=appointment.ics_sequence,
        method="REQUEST",
        start=appointment.start_at,
        end=appointment.end_at,
        summary=_("%(service)s at %(clinic)s", service=i18n.service_name(appointment.service), clinic=clinic.name),
        location=f"{clinic.name} {location.name}, {location.address}",
        description=_("To change or cancel, use the link in your confirmation, or call %(phone)s.", phone=clinic.phone),
        stamp=now(),
    )
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Disposition"] = 'attachment; filename="appointment.ics"'
    return private(response)


# --- reschedule -----------------------------------------------------------------------------------


def reschedule_page(token: str):
    appointment = _load(token)
    if isinstance(appointment, Response):
        return appointment
    if request.method == "POST":
        return _post_reschedule(token, appointment)
    return _render_reschedule(token, appointment, from_day=parse_date(request.args.get("from", "")))


def _blocked(appointment: Appointment) -> bool:
    clinic = current_clinic()
    return clinic.late_cancellation_policy == "block" and inside_cancellation_window(clinic, appointment, now())


def _render_reschedule(token, appointment, *, from_day=None, status=200, message=None, alternatives=()):
    context = appointment_context(appointment)
    week = None
    if context["changeable"] and not _blocked(appointment):
        week = week_of_slots(
            db_session(),
            clinic=current_clinic(),
            service=appointment.service,
            location=appointment.location,
            practitioners=[appointment.practitioner],
            from_day=from_day,
            now=now(),
            ignore_appointment_id=appointment.id,
            exclude_starts=frozenset({appointment.start_at}),
        )
    tz = appointment.location.timezone
    return private(
        page(
            "pages/reschedule.html",
            status,
            token=token,
            week=week,
            current=slot_value(appointment.start_at),
            message=message,
            alternatives=[
                {"value": slot_value(s.start), "label": i18n.format_when(s.start, tz, year=False)} for s in alternatives
            ],
            **context,
        )
    )


def _post_reschedule(token: str, appointment: Appointment):
    start = parse_slot_value(request.form.get("start"))
    if start is None:
        return _render_reschedule(token, appointment, status=422, message=_("Choose a new time to continue."))
    session_ = db_session()
    try:
        reschedule(session_, appointment.id, start, now=now(), by_patient=True)
    except (SlotTaken, SlotUnavailable) as exc:
        return _render_reschedule(
            token,
            appointment,
            from_day=start.astimezone(ZoneInfo(appointment.location.timezone)).date(),
            status=exc.status,
            message=page_message(exc),
            alternatives=exc.extra.get("alternatives", []),
        )
    except DomainError as exc:
        return _render_reschedule(token, appointment, status=exc.status, message=page_message(exc))
    flash(
        i18n.end_sentence(
            _(
                "Your appointment has been moved to %(when)s.",
                when=i18n.format_when(start, appointment.location.timezone),
            )
        ),
        "success",
    )
    return redirect(url_for("web.manage", token=token))


# --- cancel ------------------------------------------------------------------------------------------


def cancel_page(token: str):
    appointment = _load(token)
    if isinstance(appointment, Response):
        return appointment
    if request.method == "POST":
        return _post_cancel(token, appointment)
    return _render_cancel(token, appointment)


def _render_cancel(token, appointment, *, status=200, message=None, errors=None, values=None):
    return private(
        page(
            "pages/cancel.html",
            status,
            token=token,
            reasons=CANCEL_REASONS,
            message=message,
            errors=errors or {},
            values=values or {},
            blocked=_blocked(appointment),
            **appointment_context(appointment),
        )
    )


def _post_cancel(token: str, appointment: Appointment):
    reason_key = request.form.get("reason")
    detail = (request.form.get("detail") or "").strip()
    values = {"reason": reason_key, "detail": detail}
    errors = {}
    labels = {key: english for key, english, _label in CANCEL_REASONS}
    if reason_key not in labels:
        errors["reason"] = _("Choose a reason.")
    if len(detail) > CANCEL_DETAIL_MAX:
        errors["detail"] = _("Keep this to %(count)d characters or fewer.", count=CANCEL_DETAIL_MAX)
    if errors:
        return _render_cancel(token, appointment, status=422, errors=errors, values=values)
    reason = labels[reason_key] + (f": {detail}" if detail else "")
    session_ = db_session()
    try:
        cancelled = cancel(session_, appointment.id, now=now(), by_patient=True, reason=reason)
    except LateCancellationBlocked as exc:
        return _render_cancel(token, appointment, status=exc.status, values=values)
    except DomainError as exc:
        return _render_cancel(token, appointment, status=exc.status, message=page_message(exc), values=values)
    if cancelled.late_cancellation:
        flash(
            _(
                "Your appointment is cancelled. As it was less than %(hours)d hours away, it is recorded as a "
                "late cancellation.",
                hours=current_clinic().cancellation_window_hours,
            ),
            "success",
        )
    else:
        flash(_("Your appointment is cancelled. We have let the clinic know."), "success")
    return redirect(url_for("web.manage", token=token))


# --- book the next visit -------------------------------------------------------------------------


def _next_service(appointment: Appointment) -> Service:
    """The follow-up this practitioner offers online, or else the same service again."""
    for service in sorted(appointment.practitioner.services, key=lambda s: (s.sort_order, s.id)):
        if service.kind == "follow_up" and service.active and service.online_bookable:
            return service
    return appointment.service


def book_again(token: str):
    """Start a new booking for the same patient (after a visit or a cancellation).

    The link may have been forwarded, so the new draft carries no name or contact from the
    record: the details step shows the contacts on file masked (as this page does) and books
    with them unless the visitor types new ones, which then follow the identity rule of
    ``patients.operations.find_or_create_patient``.
    """
    appointment = _load(token)
    if isinstance(appointment, Response):
        return appointment
    patient = appointment.patient
    service = _next_service(appointment) if appointment.status == "completed" else appointment.service
    practitioner_id = appointment.practitioner_id if appointment.practitioner.active else None
    draft = {
        "service_id": service.id,
        "location_id": appointment.location_id,
        "practitioner_id": practitioner_id,
        "returning_patient_id": patient.id,
        "language": patient.language,
        "sms_consent": patient.sms_consent,
        "email_consent": patient.email_consent,
        "exercise_sms_consent": patient.exercise_sms_consent,
    }
    drafts.save(draft, fresh=True)
    return redirect(
        url_for(
            "web.choose_time",
            service_id=service.id,
            location_id=appointment.location_id,
            practitioner_id=practitioner_id or "",
        )
    )
