"""The booking journey: service and location, practitioner and time, details and intake,
urgent-care guidance when a red flag is answered yes, review, confirmation.

Steps 1-2 are GET forms (nothing personal in them). From step 3 on, what the patient types is
POSTed and kept in the draft (``web.draft``: a server-side row; the cookie holds only its key),
never in a query string or the cookie. Each controller
parses, calls one domain operation, commits, and answers; a DomainError re-renders the step
with the message and the patient's input kept.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import abort, g, redirect, request, url_for
from flask_babel import gettext as _

from booking_service.clinic.models import Location, Practitioner, Service
from booking_service.clinic.queries import active_locations, active_services, bookable, practitioners_for
from booking_service.context import db_session, settings
from booking_service.errors import (
    DomainError,
    NotFound,
    PatientBusy,
    SlotTaken,
    SlotUnavailable,
    ValidationFailed,
)
from booking_service.form_values import parse_date
from booking_service.patients.models import Patient
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.operations import find_by_token
from booking_service.scheduling.tokens import manage_path, manage_token
from booking_service.usecases import first_run
from booking_service.usecases.booking import BookingRequest, book
from booking_service.web import draft as drafts
from booking_service.web import i18n
from booking_service.web.common import (
    allow_images_from,
    current_clinic,
    domain_message,
    field_errors,
    is_bot,
    now,
    page,
    page_message,
    parse_int,
    parse_slot_value,
    private,
    slot_value,
)
from booking_service.web.forms import REASON_MAX, RED_FLAG_QUESTIONS, check_details, read_details
from booking_service.web.manage import appointment_context, mask_email, mask_phone
from booking_service.web.picker import week_of_slots


class Selection:
    """Service, location, practitioner (None: first available) and, later, a start: what the
    patient picked in steps 1-2. ``resolve`` loads and checks them against the catalogue."""

    def __init__(self, service_id, location_id, practitioner_id=None, start=None):
        self.service_id: int | None = service_id
        self.location_id: int | None = location_id
        self.practitioner_id: int | None = practitioner_id
        self.start = start
        self.service: Service | None = None
        self.location: Location | None = None
        self.candidates: list[Practitioner] = []
        self.practitioner: Practitioner | None = None

    @classmethod
    def from_values(cls, values) -> Selection:
        return cls(
            parse_int(values.get("service_id")),
            parse_int(values.get("location_id")),
            parse_int(values.get("practitioner_id")),
            parse_slot_value(values.get("start")),
        )

    @classmethod
    def from_draft(cls, draft: dict[str, Any]) -> Selection:
        return cls(
            draft.get("service_id"),
            draft.get("location_id"),
            draft.get("practitioner_id"),
            parse_slot_value(draft.get("start")),
        )

    def resolve(self) -> dict[str, str]:
        """Load the catalogue rows; field name -> message for what is missing or unknown."""
        errors: dict[str, str] = {}
        if self.service_id is None:
            errors["service_id"] = _("Choose the type of appointment.")
        if self.location_id is None:
            errors["location_id"] = _("Choose a location.")
        if errors:
            return errors
        try:
            self.service, self.location, self.candidates = bookable(
                db_session(),
                service_id=self.service_id,
                location_id=self.location_id,
                practitioner_id=self.practitioner_id,
            )
        except NotFound as exc:
            field = next(iter(exc.fields), "service_id")
            errors[field] = (
                _("Choose a location from the list.")
                if field == "location_id"
                else _("Choose a service from the list.")
            )
            return errors
        except ValidationFailed:
            # The practitioner does not offer this here (a stale link): fall back to anyone.
            self.practitioner_id = None
            return self.resolve()
        if self.practitioner_id is not None:
            self.practitioner = self.candidates[0]
        return errors

    def args(self, **extra) -> dict[str, Any]:
        values = {
            "service_id": self.service_id,
            "location_id": self.location_id,
            "practitioner_id": self.practitioner_id or "",
        }
        values.update(extra)
        return values

    def store(self, draft: dict[str, Any]) -> None:
        draft.update(
            service_id=self.service_id,
            location_id=self.location_id,
            practitioner_id=self.practitioner_id,
            start=slot_value(self.start) if self.start else None,
        )


# --- step 1: service and location -------------------------------------------------------------


def start():
    draft = drafts.load()
    return _render_start(
        selected_service=parse_int(request.args.get("service_id")) or draft.get("service_id"),
        selected_location=parse_int(request.args.get("location_id")) or draft.get("location_id"),
    )


def _render_start(*, selected_service=None, selected_location=None, errors=None, status=200):
    session_ = db_session()
    services = active_services(session_)
    locations = active_locations(session_)
    if current_clinic(required=False) is None or not services or not locations:
        # Nothing to book yet: a database not set up (the guided setup is linked while it is open
        # to anyone), or a clinic with no location or no service bookable online yet.
        clinic_missing = current_clinic(required=False) is None
        return page("pages/not_set_up.html", setup_open=clinic_missing and first_run.is_first_run(session_))
    if selected_location is None and len(locations) == 1:
        selected_location = locations[0].id
    if selected_service is None and len(services) == 1:
        selected_service = services[0].id
    return page(
        "pages/start.html",
        status,
        new_services=[s for s in services if s.kind == "initial"],
        returning_services=[s for s in services if s.kind != "initial"],
        locations=locations,
        selected_service=selected_service,
        selected_location=selected_location,
        errors=errors or {},
    )


# --- step 2: practitioner and time ------------------------------------------------------------


def choose_time():
    selection = Selection.from_values(request.args)
    errors = selection.resolve()
    if errors:
        return _render_start(
            selected_service=selection.service_id,
            selected_location=selection.location_id,
            errors=errors,
            status=422,
        )
    draft = drafts.load()
    chosen = parse_slot_value(request.args.get("start"))
    same_choice = (draft.get("service_id"), draft.get("location_id"), draft.get("practitioner_id")) == (
        selection.service_id,
        selection.location_id,
        selection.practitioner_id,
    )
    if chosen is None and same_choice:
        chosen = parse_slot_value(draft.get("start"))
    return _render_time(selection, from_day=parse_date(request.args.get("from", "")), chosen=chosen)


def _render_time(selection: Selection, *, from_day: date | None, chosen=None, error: str | None = None, status=200):
    clinic = current_clinic()
    week = None
    if selection.candidates:
        week = week_of_slots(
            db_session(),
            clinic=clinic,
            service=selection.service,
            location=selection.location,
            practitioners=selection.candidates,
            from_day=from_day,
            now=now(),
        )
    if selection.practitioner_id is None:
        practitioners = selection.candidates  # already everyone offering it there
    else:
        practitioners = practitioners_for(
            db_session(), location_id=selection.location_id, service_id=selection.service_id, online_only=True
        )
    allow_images_from(p.photo_url for p in practitioners)
    return page(
        "pages/time.html",
        status,
        selection=selection,
        practitioners=practitioners,
        week=week,
        chosen=slot_value(chosen) if chosen else None,
        error=error,
    )


# --- step 3: details and intake ---------------------------------------------------------------


def details():
    draft = drafts.load()
    if request.method == "POST":
        return _post_details(draft)
    if request.args.get("start") or request.args.get("service_id"):
        selection = Selection.from_values(request.args)
    else:
        selection = Selection.from_draft(draft)
    if selection.resolve():
        return redirect(url_for("web.start"))
    if selection.start is None:
        return _render_time(selection, from_day=None, error=_("Choose a time to continue."), status=422)
    values = _draft_values(draft)
    return private(_render_details(selection, values, on_file=_hints(draft)))


def _draft_values(draft: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {key: draft.get(key) for key in drafts.CONTACT_KEYS}
    values["language"] = values.get("language") or i18n.language()
    values["reason"] = draft.get("reason") or ""
    values["red_flags"] = draft.get("red_flags") or {}
    return values


def _on_file(draft: dict[str, Any]) -> Patient | None:
    """The patient whose manage link started this draft ("book again"), if any. The draft is
    server side, so the id cannot be set by the visitor; their stored contacts never reach the
    browser, only masked hints."""
    patient_id = draft.get("returning_patient_id")
    return db_session().get(Patient, patient_id) if isinstance(patient_id, int) else None


def _with_contacts_on_file(values: dict[str, Any], draft: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the stored email and phone of the patient on file when the visitor typed
    neither; typed contacts are used alone (and follow the identity rule of
    ``patients.operations.find_or_create_patient``)."""
    patient = _on_file(draft)
    if patient is None or values.get("email") or values.get("phone"):
        return values
    return {**values, "email": patient.email or "", "phone": patient.phone or ""}


def _hints(draft: dict[str, Any]) -> dict[str, str] | None:
    patient = _on_file(draft)
    if patient is None:
        return None
    return {"email": mask_email(patient.email), "phone": mask_phone(patient.phone)}


def _render_details(selection: Selection, values: dict[str, Any], errors=None, status=200, message=None, on_file=None):
    return page(
        "pages/details.html",
        status,
        selection=selection,
        values=values,
        errors=errors or {},
        message=message,
        questions=RED_FLAG_QUESTIONS,
        reason_max=REASON_MAX,
        on_file=on_file,
        start_label=i18n.format_when(selection.start, selection.location.timezone),
        zone=i18n.zone_label(selection.location.timezone, [selection.start]),
    )


def _post_details(draft: dict[str, Any]):
    if is_bot(request.form):
        abort(400)
    selection = Selection.from_values(request.form)
    if selection.resolve():
        return redirect(url_for("web.start"))
    if selection.start is None:
        return _render_time(selection, from_day=None, error=_("Choose a time to continue."), status=422)
    values = read_details(request.form)
    clinic = current_clinic()
    errors = check_details(_with_contacts_on_file(values, draft), country=clinic.country)
    previous_flags = draft.get("red_flags")
    selection.store(draft)
    draft.update({key: values[key] for key in (*drafts.CONTACT_KEYS, "reason", "red_flags")})
    if values["red_flags"] != previous_flags:
        draft["urgent_ack"] = False
    draft.pop("problem", None)
    if errors:
        # Keep what was typed (valid or not) so a language switch or a refresh shows it again.
        drafts.save(draft)
        return private(_render_details(selection, values, errors, status=422, on_file=_hints(draft)))
    drafts.save(draft)
    if drafts.any_red_flag(draft) and not draft.get("urgent_ack"):
        return redirect(url_for("web.urgent"))
    return redirect(url_for("web.review"))


def details_with_expired_token():
    """The details form came back without a valid CSRF token (most often: left open past the
    token's lifetime). Show it again with what was typed and a fresh token; nothing is kept or
    acted on until the patient sends it again. None when it cannot be shown."""
    if request.endpoint != "web.details" or request.method != "POST" or is_bot(request.form):
        return None
    selection = Selection.from_values(request.form)
    if selection.resolve() or selection.start is None:
        return None
    message = _("For your security, please check your answers and send the form again.")
    return private(_render_details(selection, read_details(request.form), status=400, message=message))


# --- urgent-care guidance -----------------------------------------------------------------------


def urgent():
    draft = drafts.load()
    if not draft or not drafts.any_red_flag(draft):
        return redirect(url_for("web.review") if draft else url_for("web.start"))
    error = None
    if request.method == "POST":
        if request.form.get("acknowledge") == "yes":
            draft["urgent_ack"] = True
            drafts.save(draft)
            return redirect(url_for("web.review"))
        error = _("Tick the box to say you have read this, or change your answers.")
    answered_yes = [text for key, text in RED_FLAG_QUESTIONS if (draft.get("red_flags") or {}).get(key) == "yes"]
    return private(
        page(
            "pages/urgent.html",
            422 if error else 200,
            answered_yes=answered_yes,
            errors={"acknowledge": error} if error else {},
        )
    )


# --- step 4: review and confirm -----------------------------------------------------------------


def _ready(draft: dict[str, Any]):
    """(selection, None) when the draft can be booked, else (None, a redirect to the step to fix)."""
    if not draft:
        return None, redirect(url_for("web.start"))
    selection = Selection.from_draft(draft)
    if selection.resolve():
        return None, redirect(url_for("web.start"))
    if selection.start is None:
        return None, redirect(url_for("web.choose_time", **selection.args()))
    values = _with_contacts_on_file(_draft_values(draft), draft)
    if check_details(values, country=current_clinic().country):
        return None, redirect(url_for("web.details"))
    if drafts.any_red_flag(draft) and not draft.get("urgent_ack"):
        return None, redirect(url_for("web.urgent"))
    return selection, None


def review():
    draft = drafts.load()
    selection, elsewhere = _ready(draft)
    if elsewhere is not None:
        return elsewhere
    return private(_render_review(selection, draft))


def _render_review(selection: Selection, draft: dict[str, Any], status=200, message=None):
    g.language_return = url_for("web.review")  # also when answering POST /book/confirm
    problem = draft.get("problem") or {}
    alternatives = []
    for raw in problem.get("alternatives", []):
        instant = parse_slot_value(raw)
        if instant is not None:
            alternatives.append(
                {"value": raw, "label": i18n.format_when(instant, selection.location.timezone, year=False)}
            )
    if problem and message is None:
        message = domain_message(problem.get("code", ""))
    values = _draft_values(draft)
    return page(
        "pages/review.html",
        status,
        selection=selection,
        values=values,
        on_file=_hints(draft),
        draft_id=draft.get("id"),
        start_label=i18n.format_when(selection.start, selection.location.timezone),
        zone=i18n.zone_label(selection.location.timezone, [selection.start]),
        urgent=drafts.any_red_flag(draft),
        message=message,
        problem=problem,
        alternatives=alternatives,
    )


def confirm():
    draft = drafts.load()
    if draft and request.form.get("draft_id") != draft.get("id"):
        # The details changed in another tab since this review page was shown: show them again.
        return redirect(url_for("web.review"))
    selection, elsewhere = _ready(draft)
    if elsewhere is not None:
        return elsewhere
    values = _with_contacts_on_file(_draft_values(draft), draft)
    flags = {key: answer == "yes" for key, answer in (draft.get("red_flags") or {}).items()}
    booking = BookingRequest(
        service_id=selection.service_id,
        location_id=selection.location_id,
        practitioner_id=selection.practitioner_id,
        start=selection.start,
        source="online",
        consent_source="booking_form",
        intake_reason=values["reason"] or None,
        red_flags=flags,
        patient=PatientDetails(
            first_name=values["first_name"],
            last_name=values["last_name"],
            email=values["email"] or None,
            phone=values["phone"] or None,
            language=values["language"],
            sms_consent=bool(values["sms_consent"]),
            email_consent=bool(values["email_consent"]),
            exercise_sms_consent=bool(values["exercise_sms_consent"]),
        ),
    )
    session_ = db_session()
    try:
        booked = book(session_, booking, secret_key=settings().SECRET_KEY, now=now())
    # The problem is shown on this answer only: the draft is not saved here, as the failed
    # booking still holds the write lock (SQLite) until the request's work is rolled back.
    except (SlotTaken, SlotUnavailable) as exc:
        draft["problem"] = {
            "code": exc.code,
            "alternatives": [slot_value(slot.start) for slot in exc.extra.get("alternatives", [])],
        }
        return private(_render_review(selection, draft, status=exc.status))
    except PatientBusy as exc:
        draft["problem"] = {"code": exc.code, "alternatives": []}
        return private(_render_review(selection, draft, status=exc.status))
    except ValidationFailed as exc:
        shown = _draft_values(draft)  # never the contacts on file, only their hints
        return private(_render_details(selection, shown, field_errors(exc), status=exc.status, on_file=_hints(draft)))
    except DomainError as exc:
        return private(_render_review(selection, draft, status=exc.status, message=page_message(exc)))
    drafts.complete(booked.appointment.id)
    return redirect(url_for("web.confirmed"))


def change_time():
    """After "that time was just taken": take one of the offered times and review again."""
    draft = drafts.load()
    if not draft:
        return redirect(url_for("web.start"))
    chosen = parse_slot_value(request.form.get("start"))
    if chosen is None:
        selection, elsewhere = _ready(draft)
        if elsewhere is not None:
            return elsewhere
        return private(_render_review(selection, draft, status=422, message=_("Choose one of the times below.")))
    draft["start"] = slot_value(chosen)
    draft.pop("problem", None)
    drafts.save(draft)
    return redirect(url_for("web.review"))


# --- confirmation ---------------------------------------------------------------------------------


def confirmed():
    appointment_id = drafts.confirmed_appointment_id()
    appointment = db_session().get(Appointment, appointment_id) if appointment_id is not None else None
    if appointment is None:
        return redirect(url_for("web.start"))
    # The token is rebuilt from the appointment's nonce (as for a reminder), never kept anywhere.
    token = manage_token(settings().SECRET_KEY, appointment.manage_nonce)
    try:
        appointment = find_by_token(db_session(), token, now=now())
    except NotFound:
        return redirect(url_for("web.start"))
    return private(
        page(
            "pages/confirmed.html",
            manage_url=settings().PUBLIC_BASE_URL + manage_path(token),
            token=token,
            **appointment_context(appointment),
        )
    )
