"""The guided setup of a new clinic (first run): the first admin's account at ``/setup``, then
four console pages for that admin: the clinic, one location, one practitioner with weekly hours,
one service.

``/setup`` is the one page open to anyone, and only while the database holds neither a clinic
nor a staff user; after that it answers 404, so a stranger can never take over a clinic that
runs. The account is committed in its own unit of work and its owner signed in at once; the
later steps are ordinary console pages (admins only) that save through the same operations as
the admin pages. Where the setup stands is read from the database (``usecases.first_run``),
never from the cookie.
"""

from __future__ import annotations

import functools
import re
from datetime import time
from zoneinfo import available_timezones

import phonenumbers
from babel import Locale
from babel.dates import get_timezone_location
from flask import abort, flash, redirect, render_template, request, url_for

from booking_service.clinic import catalogue
from booking_service.clinic.models import CLINIC_LANGUAGES
from booking_service.clinic.operations import set_weekly_hours
from booking_service.console import auth
from booking_service.console.common import staff_field_errors, staff_message
from booking_service.console.settings import WEEKDAYS, _form_fields, _posted_table, _rows_of, _table
from booking_service.context import database, db_session, utcnow
from booking_service.errors import DomainError, NotFound
from booking_service.staff.operations import MIN_PASSWORD_LENGTH
from booking_service.usecases import first_run

MAX_EMAIL = 254
MAX_NAME = 120
MAX_PASSWORD = 1024  # as at sign-in: hashing a megabyte is work nobody gets for free
PASSWORDS_DIFFER = "The two passwords are not the same. Type the same password in both boxes."
MAX_TEXT = 2000  # longer than any field of the catalogue: its own limits answer with what to fix
LANGUAGE_LABELS = {"en": "English", "fr": "French (français)"}
KIND_LABELS = (("initial", "Initial visit (new patients)"), ("follow_up", "Follow-up"), ("other", "Other"))
DEFAULT_HOURS = (time(9), time(17))  # offered Monday to Friday on a new practitioner's grid
# What the finished setup points at: (endpoint, link, what for).
NEXT_PAGES = (
    ("console.users", "Staff accounts", "add your colleagues: front desk, practitioners and other admins"),
    ("console.hours", "Weekly hours", "breaks, split days, dated changes"),
    ("console.time_off", "Time off and closures", "holidays and days the clinic is closed"),
    ("console.settings", "Clinic settings", "reminders, quiet hours, the cancellation window, the booking horizon"),
)
_WHOLE = re.compile(r"^\d{1,4}$")
_PRICE = re.compile(r"^(\d{1,6})(?:[.,](\d{1,2}))?$")


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
            steps=first_run.STEPS,
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


# --- choices: countries and time zones -----------------------------------------------------------------


@functools.cache
def countries() -> tuple[tuple[str, str], ...]:
    """(ISO code, English name) of every country with phone numbers, by name."""
    names = Locale("en").territories
    return tuple(sorted(((code, names.get(code, code)) for code in phonenumbers.SUPPORTED_REGIONS), key=lambda c: c[1]))


@functools.cache
def zones() -> tuple[tuple[str, str], ...]:
    """(IANA zone, where it is in words: "Canada (Toronto) Time") of the zones of places, for a
    searchable list; legacy aliases (``US/Eastern``, ``Etc/GMT+5``) are left out of the list,
    though the catalogue accepts any IANA name typed in full."""
    legacy = ("Etc/", "SystemV/", "US/", "posix/", "right/", "Canada/", "Brazil/", "Chile/", "Mexico/")
    names = sorted(zone for zone in available_timezones() if "/" in zone and not zone.startswith(legacy))
    return tuple((zone, get_timezone_location(zone, locale="en")) for zone in names)


def _text(name: str) -> str:
    return request.form.get(name, "")[:MAX_TEXT]


def _step_errors(exc: DomainError, renamed: dict[str, str] | None = None) -> dict[str, str]:
    """The console's words for each field the operation refused, under the form's field names."""
    return {(renamed or {}).get(field, field): words for field, words in staff_field_errors(exc).items()}


# --- step 2: the clinic --------------------------------------------------------------------------------


def clinic():
    state, elsewhere = _open_step("clinic")
    if elsewhere is not None:
        return elsewhere
    if request.method == "GET":
        row = state.clinic
        values = {
            "name": row.name if row else "",
            "phone": row.phone if row else "",
            "email": (row.email or "") if row else "",
            "address": row.address if row else "",
            "country": row.country if row else "CA",
            "timezone": row.timezone if row else "America/Toronto",
            "languages": list(row.languages) if row else ["en"],
        }
        return _render_clinic(state, values)
    values = {name: _text(name).strip() for name in ("name", "phone", "email", "address", "country", "timezone")}
    values["languages"] = [code for code in request.form.getlist("languages") if code in CLINIC_LANGUAGES]
    fields = catalogue.ClinicFields(
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
        return _render_clinic(state, values, errors=_step_errors(exc), message=staff_message(exc), status=exc.status)
    flash("Saved the clinic.", "success")
    return redirect(url_for("console.first_run"))


def _render_clinic(state, values, **problems):
    return _render_step(
        "clinic",
        state,
        values=values,
        countries=countries(),
        zones=zones(),
        languages={code: LANGUAGE_LABELS[code] for code in CLINIC_LANGUAGES},
        **problems,
    )


# --- step 3: a location -------------------------------------------------------------------------------------


def location():
    state, elsewhere = _open_step("location")
    if elsewhere is not None:
        return elsewhere
    row = state.location
    if request.method == "GET":
        values = {
            "name": row.name if row else "",
            "address": row.address if row else (state.clinic.address or ""),
            "phone": (row.phone or "") if row else "",
            "timezone": row.timezone if row else state.clinic.timezone,
            "directions": row.directions if row else "",
        }
        return _render_step("location", state, values=values, zones=zones())
    values = {name: _text(name).strip() for name in ("name", "address", "phone", "timezone", "directions")}
    fields = catalogue.LocationFields(
        key=None,
        name=values["name"],
        address=values["address"],
        phone=values["phone"] or None,
        timezone=values["timezone"],
        directions=values["directions"],
    )
    try:
        catalogue.save_location(db_session(), row.id if row else None, fields)
    except DomainError as exc:
        return _render_step(
            "location",
            state,
            values=values,
            zones=zones(),
            errors=_step_errors(exc),
            message=staff_message(exc),
            status=exc.status,
        )
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
        values = {
            "first_name": row.first_name if row else "",
            "last_name": row.last_name if row else "",
            "profession": row.profession if row else "Physiotherapist",
            "bio": row.bio if row else "",
        }
        stored = [hours for hours in row.working_hours if hours.location_id == where.id] if row else []
        rows = _table(stored) if stored else _default_rows()
        return _render_practitioner(state, values, rows)
    values = {name: _text(name).strip() for name in ("first_name", "last_name", "profession", "bio")}
    table = _posted_table(request.form)[:7]
    hours, indexes, errors = _rows_of(table)
    if not hours and not errors:
        errors = {"hours": "Give the hours of at least one day: patients can book only when someone works."}
    fields = catalogue.PractitionerFields(
        key=None,
        first_name=values["first_name"],
        last_name=values["last_name"],
        profession=values["profession"],
        bio=values["bio"],
        location_ids=sorted({where.id, *(loc.id for loc in row.locations)}) if row else [where.id],
        service_ids=[service.id for service in row.services] if row else [],
        photo_url=row.photo_url if row else None,
        user_id=row.user_id if row else None,
    )
    message = None
    try:
        saved = catalogue.save_practitioner(session, row.id if row else None, fields, now=utcnow())
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


def _price_text(cents: int | None) -> str:
    if cents is None:
        return ""
    return f"{cents // 100}" if cents % 100 == 0 else f"{cents // 100}.{cents % 100:02d}"


def service():
    state, elsewhere = _open_step("service")
    if elsewhere is not None:
        return elsewhere
    row = state.service
    if request.method == "GET":
        values = {
            "name": row.name if row else "Initial assessment",
            "name_fr": (row.name_fr or "") if row else "",
            "kind": row.kind if row else "initial",
            "duration_minutes": str(row.duration_minutes) if row else "60",
            "buffer_minutes": str(row.buffer_minutes) if row else "0",
            "price": _price_text(row.price_cents) if row else "",
            "description": row.description if row else "",
            "preparation_notes": row.preparation_notes if row else "",
        }
        return _render_service(state, values)
    names = ("name", "name_fr", "kind", "duration_minutes", "buffer_minutes", "price", "description")
    values = {name: _text(name).strip() for name in (*names, "preparation_notes")}
    errors = {}
    duration = int(values["duration_minutes"]) if _WHOLE.match(values["duration_minutes"]) else None
    if duration is None:
        errors["duration_minutes"] = "Give the length as a whole number of minutes, such as 45."
    buffer = int(values["buffer_minutes"] or "0") if _WHOLE.match(values["buffer_minutes"] or "0") else None
    if buffer is None:
        errors["buffer_minutes"] = "Give the buffer as a whole number of minutes, such as 10, or leave it blank."
    price = _PRICE.match(values["price"]) if values["price"] else None
    if values["price"] and price is None:
        errors["price"] = "Give the price in dollars, such as 95 or 95.50, or leave it blank."
    fields = catalogue.ServiceFields(
        key=None,
        name=values["name"],
        name_fr=values["name_fr"] or None,
        kind=values["kind"],
        duration_minutes=duration if duration is not None else 0,
        buffer_minutes=buffer if buffer is not None else 0,
        price_cents=int(price[1]) * 100 + int((price[2] or "0").ljust(2, "0")) if price else None,
        preparation_notes=values["preparation_notes"],
        description=values["description"],
        description_fr=row.description_fr if row else "",
        practitioner_ids=sorted({state.practitioner.id, *(p.id for p in row.practitioners)})
        if row
        else [state.practitioner.id],
    )
    message = None
    try:
        catalogue.save_service(db_session(), row.id if row else None, fields)
    except DomainError as exc:
        errors = _step_errors(exc, {"price_cents": "price"}) | errors  # the form's own words win
        message = staff_message(exc)
    if errors:
        return _render_service(state, values, errors=errors, message=message, status=422)
    flash(f"Saved the service {fields.name}.", "success")
    return redirect(url_for("console.first_run"))


def _render_service(state, values, **problems):
    return _render_step("service", state, values=values, kinds=KIND_LABELS, practitioner=state.practitioner, **problems)
