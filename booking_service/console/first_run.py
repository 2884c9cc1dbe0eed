"""The guided setup of a new clinic (first run): the first admin's account at ``/setup``, then
four console pages for that admin: the clinic, one location, one practitioner with weekly hours,
one service.

``/setup`` is the one page open to anyone, and only while the database holds neither a clinic
nor a staff user; after that it answers 404, so a stranger can never take over a clinic that
runs. The account is committed in its own unit of work and its owner signed in at once; the
later steps are console pages (admins only) that read their forms as the clinic setup pages do
(``console.setup``) and save through the same operations (``usecases.catalogue``,
``clinic.operations.set_weekly_hours``): the rules live there, once. Where the setup stands is
read from the database (``usecases.first_run``), never from the cookie.
"""

from __future__ import annotations

from datetime import time

from flask import abort, flash, redirect, render_template, request, url_for

from booking_service.clinic import catalogue
from booking_service.clinic.catalogue import ClinicFields, LocationFields, PractitionerFields, ServiceFields
from booking_service.clinic.models import CLINIC_LANGUAGES, SERVICE_KINDS
from booking_service.clinic.operations import set_weekly_hours
from booking_service.console import auth
from booking_service.console import setup as clinic_setup
from booking_service.console.common import staff_field_errors, staff_message
from booking_service.console.settings import WEEKDAYS, _form_fields, _posted_table, _rows_of, _table
from booking_service.context import database, db_session, utcnow
from booking_service.errors import DomainError, NotFound
from booking_service.staff.operations import MIN_PASSWORD_LENGTH
from booking_service.usecases import catalogue as changes
from booking_service.usecases import first_run

MAX_EMAIL = 254
MAX_NAME = 120
MAX_PASSWORD = 1024  # as at sign-in: hashing a megabyte is work nobody gets for free
PASSWORDS_DIFFER = "The two passwords are not the same. Type the same password in both boxes."
DEFAULT_HOURS = (time(9), time(17))  # offered Monday to Friday on a new practitioner's grid
# What the finished setup points at: (endpoint, link, what for).
NEXT_PAGES = (
    ("console.users", "Staff accounts", "add your colleagues: front desk, practitioners and other admins"),
    ("console.practitioners", "Practitioners", "add colleagues, their bios and photos, link their logins"),
    ("console.services", "Services", "follow-ups and other visits, prices, who offers what"),
    ("console.locations", "Locations", "more addresses, directions and parking notes"),
    ("console.clinic", "The clinic", "address, brand colour, languages"),
    ("console.hours", "Weekly hours", "breaks, split days, dated changes"),
    ("console.time_off", "Time off and closures", "holidays and days the clinic is closed"),
    ("console.settings", "Booking and reminder policies", "reminders, quiet hours, the cancellation window"),
)


# --- step 1: the first admin's account (public while the database is empty) -------------------------


def account():
    """GET: the account form. POST: create the first admin, sign them in, go on to the clinic.
    404 as soon as the database holds a clinic or a staff user."""
    if not first_run.is_first_run(db_session()):
        abort(404)
    form = request.form
    values = {
        "name": form.get("name", "").strip()[:MAX_NAME],
        "email": form.get("email", "").strip()[:MAX_EMAIL],
    }
    if request.method == "GET":
        return _render_account(values)
    password = form.get("password", "")[:MAX_PASSWORD]
    if password != form.get("password_again", "")[:MAX_PASSWORD]:
        return _render_account(values, errors={"password_again": PASSWORDS_DIFFER}, status=422)
    try:
        # Committed before signing in: the console session row refers to the new user.
        with database().unit_of_work() as session:
            user = first_run.create_first_admin(session, values["email"], password, name=values["name"], now=utcnow())
    except NotFound:
        abort(404)  # someone else finished this step a moment ago
    except DomainError as exc:
        return _render_account(values, errors=staff_field_errors(exc), message=staff_message(exc), status=exc.status)
    return auth.sign_in(user, url_for("console.first_run"))


def _render_account(values, *, errors=None, message=None, status=200):
    return (
        render_template(
            "staff/first_run_account.html",
            values=values,
            errors=errors or {},
            message=message,
            min_password=MIN_PASSWORD_LENGTH,
        ),
        status,
    )


# --- steps 2 to 5: console pages for the new admin --------------------------------------------------


def overview():
    """Where the setup stands: the next step to do, or, once done, what to do next."""
    state = first_run.progress(db_session())
    if not state.complete:
        return redirect(url_for(f"console.first_run_{state.next_step}"))
    return render_template("staff/first_run_done.html", nav="setup", state=state, next_pages=NEXT_PAGES)


def _open_step(step: str):
    """(the setup's state, or a redirect when this step is not the place to be: the setup is
    complete, or an earlier step is not done yet)."""
    state = first_run.progress(db_session())
    if state.complete and request.method == "GET":
        return state, redirect(url_for("console.first_run"))
    if not state.reachable(step):
        return state, redirect(url_for(f"console.first_run_{state.next_step}"))
    return state, None


def _render_step(step: str, state, *, values, errors=None, message=None, status=200, **extra):
    done = tuple(name for name in first_run.STEPS if state.done(name))
    return (
        render_template(
            f"staff/first_run_{step}.html",
            nav="setup",
            step=step,
            done=done,
            values=values,
            errors=errors or {},
            message=message,
            **extra,
        ),
        status,
    )


def _refused(exc: DomainError, renamed: dict[str, str] | None = None) -> dict:
    """What a step shows after the operation refused its form: each field's words under the
    form's field names, and the message."""
    errors = {(renamed or {}).get(field, field): words for field, words in staff_field_errors(exc).items()}
    return {"errors": errors, "message": staff_message(exc), "status": exc.status}


def _text(name: str) -> str:
    return request.form.get(name, "")[: clinic_setup.MAX_FIELD].strip()


# --- step 2: the clinic --------------------------------------------------------------------------------


def clinic():
    state, elsewhere = _open_step("clinic")
    if elsewhere is not None:
        return elsewhere
    if request.method == "GET":
        values = clinic_setup._clinic_values(state.clinic)
        if state.clinic is None:
            values["timezone"] = "America/Toronto"  # with the country's default, Canada
        return _render_clinic(state, values)
    values = {name: _text(name) for name in ("name", "phone", "email", "address", "country", "timezone")}
    values["languages"] = [code for code in request.form.getlist("languages") if code in CLINIC_LANGUAGES]
    fields = ClinicFields(
        name=values["name"],
        phone=values["phone"],
        email=values["email"] or None,
        address=values["address"],
        country=values["country"],
        timezone=values["timezone"],
        languages=values["languages"],
        brand_color=state.clinic.brand_color if state.clinic else catalogue.COLOUR_DEFAULT,
    )
    try:
        catalogue.update_clinic(db_session(), fields)
    except DomainError as exc:
        return _render_clinic(state, values, **_refused(exc))
    flash("Saved the clinic.", "success")
    return redirect(url_for("console.first_run"))


def _render_clinic(state, values, **problems):
    return _render_step(
        "clinic",
        state,
        values=values,
        countries=clinic_setup._countries(),
        timezones=clinic_setup._timezones(),
        languages=[(code, clinic_setup.LANGUAGE_LABELS[code]) for code in CLINIC_LANGUAGES],
        **problems,
    )


# --- step 3: a location -------------------------------------------------------------------------------------


def location():
    state, elsewhere = _open_step("location")
    if elsewhere is not None:
        return elsewhere
    row = state.location
    timezones = clinic_setup._timezones()
    if request.method == "GET":
        values = clinic_setup._location_values(row)
        if row is None:
            values["address"] = state.clinic.address
        return _render_step("location", state, values=values, timezones=timezones)
    values = {name: _text(name) for name in ("name", "address", "phone", "timezone", "directions")}
    fields = LocationFields(
        key=row.key if row else None,
        name=values["name"],
        address=values["address"],
        phone=values["phone"] or None,
        timezone=values["timezone"],
        directions=values["directions"],
        directions_fr=row.directions_fr if row else "",  # not asked here: stays as it is
    )
    try:
        changes.save_location(db_session(), row.id if row else None, fields, now=utcnow())
    except DomainError as exc:
        return _render_step("location", state, values=values, timezones=timezones, **_refused(exc))
    flash(f"Saved the location {fields.name}.", "success")
    return redirect(url_for("console.first_run"))


# --- step 4: a practitioner and their weekly hours -------------------------------------------------------


def _default_rows() -> list[dict]:
    start, end = (value.strftime("%H:%M") for value in DEFAULT_HOURS)
    return [{"weekday": day, "start": start if day < 5 else "", "end": end if day < 5 else ""} for day in range(7)]


def practitioner():
    state, elsewhere = _open_step("practitioner")
    if elsewhere is not None:
        return elsewhere
    session = db_session()
    where = state.location
    row = state.practitioner
    if request.method == "GET":
        values = clinic_setup._practitioner_values(row)
        if row is None:
            values["profession"] = "Physiotherapist"
        stored = [hours for hours in row.working_hours if hours.location_id == where.id] if row else []
        return _render_practitioner(state, values, _table(stored) if stored else _default_rows())
    values = {name: _text(name) for name in ("first_name", "last_name", "profession", "bio")}
    table = _posted_table(request.form)[: len(WEEKDAYS)]
    hours, indexes, errors = _rows_of(table)
    if not hours and not errors:
        errors = {"hours": "Give the hours of at least one day: patients can book only when someone works."}
    kept = clinic_setup._practitioner_values(row)  # what this step does not ask stays as it is
    fields = PractitionerFields(
        key=row.key if row else None,
        first_name=values["first_name"],
        last_name=values["last_name"],
        profession=values["profession"],
        bio=values["bio"],
        photo_url=kept.get("photo_url") or None,
        location_ids=sorted({where.id, *kept["location_ids"]}),
        service_ids=kept["service_ids"],
        online_bookable=True,
        user_id=kept.get("user_id"),
    )
    message = None
    try:
        saved, _to_move = changes.save_practitioner(session, row.id if row else None, fields, now=utcnow())
        if hours:  # checked even beside unreadable rows, so every problem shows at once
            set_weekly_hours(session, saved.id, where.id, hours)
    except DomainError as exc:
        errors |= _form_fields(staff_field_errors(exc), indexes)
        message = staff_message(exc)
    if errors:
        return _render_practitioner(state, values, table, errors=errors, message=message, status=422)
    flash(f"Saved {saved.display_name} and their weekly hours.", "success")
    return redirect(url_for("console.first_run"))


def _render_practitioner(state, values, rows, **problems):
    return _render_step(
        "practitioner", state, values=values, rows=rows, weekdays=WEEKDAYS, location=state.location, **problems
    )


# --- step 5: a service ----------------------------------------------------------------------------------------


def service():
    state, elsewhere = _open_step("service")
    if elsewhere is not None:
        return elsewhere
    row = state.service
    if request.method == "GET":
        values = clinic_setup._service_values(row)
        if row is None:
            values |= {"name": "Initial assessment", "kind": "initial", "duration_minutes": "60"}
        return _render_service(state, values)
    names = ("name", "name_fr", "kind", "duration_minutes", "buffer_minutes", "price", "description")
    values = {name: _text(name) for name in (*names, "preparation_notes")}
    kept = clinic_setup._service_values(row)  # what this step does not ask stays as it is
    values |= {
        "key": row.key if row else "",
        "description_fr": kept.get("description_fr", ""),
        "preparation_notes_fr": kept.get("preparation_notes_fr", ""),
        "practitioner_ids": sorted({state.practitioner.id, *kept["practitioner_ids"]}),
        "online_bookable": True,
        "active": True,
    }
    fields: ServiceFields = clinic_setup._service_fields(values)
    try:
        changes.save_service(db_session(), row.id if row else None, fields, now=utcnow())
    except DomainError as exc:
        return _render_service(state, values, **_refused(exc, {"price_cents": "price"}))
    flash(f"Saved the service {fields.name}.", "success")
    return redirect(url_for("console.first_run"))


def _render_service(state, values, **problems):
    kinds = [(kind, clinic_setup.KIND_LABELS[kind]) for kind in SERVICE_KINDS]
    return _render_step("service", state, values=values, kinds=kinds, practitioner=state.practitioner, **problems)
