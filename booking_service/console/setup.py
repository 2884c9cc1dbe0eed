"""Setting up the clinic, for admins: the clinic's details, locations, practitioners and services.

Thin controllers: read the form into a ``*Fields`` value, call one function of
``clinic.catalogue`` (the clinic) or ``usecases.catalogue`` (the rest: it lists the future
appointments a change leaves to move, and refuses to save until the admin ticks the confirm box),
answer. A refused form comes back with every problem marked and what was typed kept; a saved one
redirects to its page, which lists the future appointments still to move (a practitioner who
left, a closed location, a service no longer offered by someone booked for it).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from zoneinfo import available_timezones

import phonenumbers
from babel import Locale
from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from booking_service.clinic import catalogue
from booking_service.clinic.catalogue import ClinicFields, LocationFields, PractitionerFields, ServiceFields
from booking_service.clinic.models import CLINIC_LANGUAGES, SERVICE_KINDS, Location, Practitioner, Service
from booking_service.console.common import clinic_or_none, staff_field_errors, staff_message
from booking_service.context import db_session, utcnow
from booking_service.errors import DomainError
from booking_service.form_values import parse_int
from booking_service.staff.models import User
from booking_service.usecases import catalogue as changes
from booking_service.usecases.catalogue import ImpactNotConfirmed

LANGUAGE_LABELS = {"en": "English", "fr": "French"}
KIND_LABELS = {"initial": "Initial assessment", "follow_up": "Follow-up", "other": "Other"}
MAX_FIELD = 4000  # longer than any limit of the catalogue: the domain names the field
UNREADABLE = -1  # a number that did not read: the domain's range check names the field


def _timezones() -> list[str]:
    return sorted(zone for zone in available_timezones() if "/" in zone and not zone.startswith(("Etc/", "SystemV/")))


def _countries() -> list[tuple[str, str]]:
    names = Locale("en").territories
    return sorted(((code, names.get(code, code)) for code in phonenumbers.SUPPORTED_REGIONS), key=lambda c: c[1])


def _text(name: str) -> str:
    return request.form.get(name, "")[:MAX_FIELD].strip()


def _number(raw: str) -> int | None:
    """None for a blank field, else the whole number, else UNREADABLE."""
    raw = raw.strip()
    if not raw:
        return None
    value = parse_int(raw)
    return UNREADABLE if value is None else value


def _ids(name: str) -> list[int]:
    return [UNREADABLE if parse_int(raw) is None else parse_int(raw) for raw in request.form.getlist(name)]


def price_cents(raw: str) -> int | None:
    """``95``, ``95.5``, ``$95.50`` or ``95,50`` as cents; None when blank; UNREADABLE otherwise."""
    cleaned = raw.strip().lstrip("$").strip().replace(",", ".")
    if not cleaned:
        return None
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        return UNREADABLE
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        return UNREADABLE
    return int(amount * 100)


def _price_text(cents: int | None) -> str:
    return "" if cents is None else f"{cents // 100}" if cents % 100 == 0 else f"{cents / 100:.2f}"


def _checked(name: str) -> bool:
    return request.form.get(name) == "yes"


def _refused(template: str, exc: DomainError, *, renamed: dict[str, str] | None = None, **context):
    """The form again after a refused save: every problem marked (``renamed``: the domain's
    field -> the form's), or the appointments to move with the confirm box."""
    errors = {(renamed or {}).get(field, field): words for field, words in staff_field_errors(exc).items()}
    return render_template(
        template,
        errors=errors,
        error=staff_message(exc),
        impact=exc.appointments if isinstance(exc, ImpactNotConfirmed) else [],
        to_move=[],
        **context,
    ), exc.status


def _saved(message: str, to_move: list) -> str:
    if not to_move:
        return message
    noun = "appointment" if len(to_move) == 1 else "appointments"
    return f"{message} {len(to_move)} future {noun} to move: see the list below."


# --- the clinic -------------------------------------------------------------------------------------


def _clinic_values(clinic) -> dict:
    if clinic is None:
        return {"languages": list(CLINIC_LANGUAGES), "brand_color": catalogue.COLOUR_DEFAULT, "country": "CA"}
    return {
        "name": clinic.name,
        "phone": clinic.phone,
        "email": clinic.email or "",
        "address": clinic.address,
        "country": clinic.country,
        "timezone": clinic.timezone,
        "languages": list(clinic.languages or CLINIC_LANGUAGES),
        "brand_color": clinic.brand_color,
    }


def _render_clinic(values: dict, errors: dict, error: str | None, status: int = 200):
    return render_template(
        "staff/setup_clinic.html",
        nav="setup",
        setup="clinic",
        values=values,
        errors=errors,
        error=error,
        timezones=_timezones(),
        countries=_countries(),
        languages=[(code, LANGUAGE_LABELS[code]) for code in CLINIC_LANGUAGES],
    ), status


def clinic():
    """GET: the clinic's name, contact details, country, zone, languages, colour. POST: save."""
    if request.method == "GET":
        return _render_clinic(_clinic_values(clinic_or_none()), {}, None)
    values = {name: _text(name) for name in ("name", "phone", "email", "address", "country", "timezone")}
    values["brand_color"] = _text("brand_color")
    values["languages"] = [code for code in request.form.getlist("languages") if code in CLINIC_LANGUAGES]
    fields = ClinicFields(
        name=values["name"],
        phone=values["phone"],
        email=values["email"] or None,
        address=values["address"],
        country=values["country"],
        timezone=values["timezone"],
        languages=values["languages"],
        brand_color=values["brand_color"],
    )
    try:
        catalogue.update_clinic(db_session(), fields)
    except DomainError as exc:
        return _render_clinic(values, staff_field_errors(exc), staff_message(exc), exc.status)
    flash("Saved the clinic's details. Patients see them from now on.", "success")
    return redirect(url_for("console.clinic"))


# --- locations ------------------------------------------------------------------------------------


def locations():
    rows = list(db_session().scalars(select(Location).order_by(Location.active.desc(), Location.name)))
    return render_template("staff/setup_locations.html", nav="setup", setup="locations", locations=rows)


def _location_values(location: Location | None) -> dict:
    if location is None:
        clinic = clinic_or_none()
        return {"timezone": clinic.timezone if clinic else "", "active": True}
    return {
        "key": location.key,
        "name": location.name,
        "address": location.address,
        "phone": location.phone or "",
        "timezone": location.timezone,
        "directions": location.directions,
        "directions_fr": location.directions_fr,
        "active": location.active,
    }


def location_form(location_id: int | None = None):
    """GET: the form (new, or the location and its future appointments still to move). POST:
    save; a change that leaves appointments to move needs ``confirm_impact``."""
    session = db_session()
    location = session.get(Location, location_id) if location_id is not None else None
    if location_id is not None and location is None:
        abort(404)
    context = {"nav": "setup", "setup": "locations", "location": location, "timezones": _timezones()}
    template = "staff/setup_location.html"
    if request.method == "GET":
        values = _location_values(location)
        to_move = changes.impact_of_location(session, location_id, _location_fields(values), utcnow())
        return render_template(template, values=values, errors={}, error=None, impact=[], to_move=to_move, **context)
    names = ("key", "name", "address", "phone", "timezone", "directions", "directions_fr")
    values = {name: _text(name) for name in names}
    values["active"] = _checked("active")
    try:
        saved, to_move = changes.save_location(
            session, location_id, _location_fields(values), now=utcnow(), confirm_impact=_checked("confirm_impact")
        )
    except DomainError as exc:
        return _refused(template, exc, values=values, **context)
    flash(_saved(f"Saved the location {saved.name}.", to_move), "success")
    return redirect(url_for("console.location_edit", location_id=saved.id))


def _location_fields(values: dict) -> LocationFields:
    return LocationFields(
        key=values.get("key") or None,
        name=values.get("name", ""),
        address=values.get("address", ""),
        phone=values.get("phone") or None,
        timezone=values.get("timezone", ""),
        directions=values.get("directions", ""),
        directions_fr=values.get("directions_fr", ""),
        active=bool(values.get("active")),
    )


# --- practitioners ------------------------------------------------------------------------------------


def practitioners():
    rows = list(
        db_session().scalars(
            select(Practitioner).order_by(Practitioner.active.desc(), Practitioner.last_name, Practitioner.first_name)
        )
    )
    return render_template("staff/setup_practitioners.html", nav="setup", setup="practitioners", practitioners=rows)


def _practitioner_values(practitioner: Practitioner | None) -> dict:
    if practitioner is None:
        return {"online_bookable": True, "active": True, "location_ids": [], "service_ids": []}
    return {
        "key": practitioner.key,
        "first_name": practitioner.first_name,
        "last_name": practitioner.last_name,
        "profession": practitioner.profession,
        "bio": practitioner.bio,
        "photo_url": practitioner.photo_url or "",
        "location_ids": sorted(loc.id for loc in practitioner.locations),
        "service_ids": sorted(s.id for s in practitioner.services),
        "online_bookable": practitioner.online_bookable,
        "user_id": practitioner.user_id,
        "active": practitioner.active,
    }


def _practitioner_fields(values: dict) -> PractitionerFields:
    return PractitionerFields(
        key=values.get("key") or None,
        first_name=values.get("first_name", ""),
        last_name=values.get("last_name", ""),
        profession=values.get("profession", ""),
        bio=values.get("bio", ""),
        photo_url=values.get("photo_url") or None,
        location_ids=values.get("location_ids", []),
        service_ids=values.get("service_ids", []),
        online_bookable=bool(values.get("online_bookable")),
        user_id=values.get("user_id"),
        active=bool(values.get("active")),
    )


def _practitioner_context(practitioner: Practitioner | None) -> dict:
    session = db_session()
    logins = session.scalars(
        select(User).where(User.role == "practitioner", User.active.is_(True)).order_by(User.email)
    ).all()
    linked = {p.user_id: p for p in session.scalars(select(Practitioner).where(Practitioner.user_id.is_not(None)))}
    return {
        "nav": "setup",
        "setup": "practitioners",
        "practitioner": practitioner,
        "all_locations": session.scalars(select(Location).order_by(Location.active.desc(), Location.name)).all(),
        "all_services": session.scalars(select(Service).order_by(Service.active.desc(), Service.sort_order)).all(),
        "logins": logins,
        "linked": linked,
    }


def practitioner_form(practitioner_id: int | None = None):
    """GET: the form (new, or the practitioner and their future appointments still to move).
    POST: save; leaving, or no longer offering a location or service someone is booked for,
    needs ``confirm_impact``."""
    session = db_session()
    practitioner = session.get(Practitioner, practitioner_id) if practitioner_id is not None else None
    if practitioner_id is not None and practitioner is None:
        abort(404)
    context = _practitioner_context(practitioner)
    template = "staff/setup_practitioner.html"
    if request.method == "GET":
        values = _practitioner_values(practitioner)
        to_move = changes.impact_of_practitioner(session, practitioner_id, _practitioner_fields(values), utcnow())
        return render_template(template, values=values, errors={}, error=None, impact=[], to_move=to_move, **context)
    values = {name: _text(name) for name in ("key", "first_name", "last_name", "profession", "bio", "photo_url")}
    values.update(
        location_ids=_ids("location_ids"),
        service_ids=_ids("service_ids"),
        online_bookable=_checked("online_bookable"),
        user_id=_number(request.form.get("user_id", "")),
        active=request.form.get("status") != "left",
    )
    try:
        saved, to_move = changes.save_practitioner(
            session,
            practitioner_id,
            _practitioner_fields(values),
            now=utcnow(),
            confirm_impact=_checked("confirm_impact"),
        )
    except DomainError as exc:
        return _refused(template, exc, values=values, **context)
    flash(_saved(f"Saved {saved.display_name}.", to_move), "success")
    return redirect(url_for("console.practitioner_edit", practitioner_id=saved.id))


# --- services ----------------------------------------------------------------------------------------------


def services():
    rows = list(db_session().scalars(select(Service).order_by(Service.active.desc(), Service.sort_order, Service.id)))
    return render_template(
        "staff/setup_services.html", nav="setup", setup="services", services=rows, kind_labels=KIND_LABELS
    )


def _service_values(service: Service | None) -> dict:
    if service is None:
        return {
            "kind": "follow_up",
            "buffer_minutes": "0",
            "online_bookable": True,
            "active": True,
            "practitioner_ids": [],
        }
    return {
        "key": service.key,
        "name": service.name,
        "name_fr": service.name_fr or "",
        "kind": service.kind,
        "duration_minutes": str(service.duration_minutes),
        "buffer_minutes": str(service.buffer_minutes),
        "price": _price_text(service.price_cents),
        "online_bookable": service.online_bookable,
        "preparation_notes": service.preparation_notes,
        "preparation_notes_fr": service.preparation_notes_fr,
        "description": service.description,
        "description_fr": service.description_fr,
        "practitioner_ids": sorted(p.id for p in service.practitioners),
        "active": service.active,
    }


def _service_fields(values: dict) -> ServiceFields:
    duration = _number(values.get("duration_minutes", ""))
    buffer = _number(values.get("buffer_minutes", ""))
    return ServiceFields(
        key=values.get("key") or None,
        name=values.get("name", ""),
        name_fr=values.get("name_fr") or None,
        kind=values.get("kind", ""),
        duration_minutes=UNREADABLE if duration is None else duration,
        buffer_minutes=0 if buffer is None else buffer,
        price_cents=price_cents(values.get("price", "")),
        online_bookable=bool(values.get("online_bookable")),
        preparation_notes=values.get("preparation_notes", ""),
        preparation_notes_fr=values.get("preparation_notes_fr", ""),
        description=values.get("description", ""),
        description_fr=values.get("description_fr", ""),
        practitioner_ids=values.get("practitioner_ids", []),
        active=bool(values.get("active")),
    )


def _service_context(service: Service | None) -> dict:
    clinic = clinic_or_none()
    return {
        "nav": "setup",
        "setup": "services",
        "service": service,
        "kinds": [(kind, KIND_LABELS[kind]) for kind in SERVICE_KINDS],
        "step": clinic.slot_step_minutes if clinic else 15,
        "all_practitioners": db_session()
        .scalars(select(Practitioner).order_by(Practitioner.active.desc(), Practitioner.last_name))
        .all(),
    }


def service_form(service_id: int | None = None):
    """GET: the form (new, or the service and its future appointments still to move). POST:
    save; a longer visit that runs into the next appointment, or a practitioner no longer
    offering it who is booked for it, needs ``confirm_impact``."""
    session = db_session()
    service = session.get(Service, service_id) if service_id is not None else None
    if service_id is not None and service is None:
        abort(404)
    context = _service_context(service)
    template = "staff/setup_service.html"
    if request.method == "GET":
        values = _service_values(service)
        to_move = changes.impact_of_service(session, service_id, _service_fields(values), utcnow())
        return render_template(template, values=values, errors={}, error=None, impact=[], to_move=to_move, **context)
    values = {
        name: _text(name)
        for name in (
            "key",
            "name",
            "name_fr",
            "kind",
            "duration_minutes",
            "buffer_minutes",
            "price",
            "preparation_notes",
            "preparation_notes_fr",
            "description",
            "description_fr",
        )
    }
    values.update(
        practitioner_ids=_ids("practitioner_ids"),
        online_bookable=request.form.get("booking") != "staff",
        active=_checked("active"),
    )
    try:
        saved, to_move = changes.save_service(
            session, service_id, _service_fields(values), now=utcnow(), confirm_impact=_checked("confirm_impact")
        )
    except DomainError as exc:
        return _refused(template, exc, renamed={"price_cents": "price"}, values=values, **context)
    flash(_saved(f"Saved the service {saved.name}.", to_move), "success")
    return redirect(url_for("console.service_edit", service_id=saved.id))
