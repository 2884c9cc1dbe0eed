"""Setting up the clinic: its details, and creating or changing locations, practitioners and
services.

Staff (the console's admin pages), the first-run setup and the clinic file all go through these
functions. Each takes a session and a frozen ``*Fields`` value holding every field of the item
(a form, a YAML entry), checks all of it, writes, records an audit row and flushes; none
commits. Bad input raises :class:`~booking_service.errors.ValidationFailed` whose ``fields``
name every problem at once (a field code each, ``field_params`` the values its words need), and
nothing is changed then; an unknown id raises :class:`~booking_service.errors.NotFound`.

Nothing is ever deleted: a closed location, a retired service and a practitioner who left keep
their rows (``active`` False), so past appointments keep their place, service and person. These
functions never touch appointments: which future ones a change leaves to move is a scheduling
question (``usecases.catalogue``, which asks staff to confirm before saving).

A ``key`` is a stable slug (``[a-z0-9-]+``) that names the item in the clinic file; None on
create makes one from the name (``"Initial assessment"`` -> ``initial-assessment``, then
``-2`` ... when taken); None on update keeps the current one.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service import audit, errors
from booking_service.clinic.cache import bump_catalogue
from booking_service.clinic.models import (
    CLINIC_LANGUAGES,
    KEY_LENGTH,
    SERVICE_KINDS,
    ClinicSettings,
    Location,
    Practitioner,
    Service,
    slugify,
    unique_key,
)
from booking_service.clinic.operations import COLOUR_DEFAULT, colour_problem
from booking_service.clinic.queries import get_clinic
from booking_service.db import utcnow
from booking_service.errors import NotFound, ValidationFailed
from booking_service.patients.operations import normalise_email, normalise_phone
from booking_service.staff.models import User

KEY_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Text limits: the columns' sizes, and for free text what a page shows without scrolling.
MAX_NAME = 120
MAX_PERSON_NAME = 80
MAX_ADDRESS = 255
MAX_DIRECTIONS = 1000
MAX_BIO = 1000
MAX_NOTES = 1000
MAX_DESCRIPTION = 2000
MAX_URL = 500
MAX_DURATION = 480  # minutes: a service is at most a working day's morning or afternoon
MAX_BUFFER = 120
MAX_PRICE_CENTS = 100_000_00


@dataclass(frozen=True)
class ClinicFields:
    name: str
    phone: str
    email: str | None
    address: str
    country: str  # ISO 3166 alpha-2, the phone numbers' home region
    timezone: str  # IANA, the default for new locations
    languages: Sequence[str]  # offered to patients; the first is the default when the current one goes
    brand_color: str = COLOUR_DEFAULT


@dataclass(frozen=True)
class LocationFields:
    key: str | None
    name: str
    address: str
    phone: str | None
    timezone: str
    directions: str = ""
    active: bool = True
    directions_fr: str = ""


@dataclass(frozen=True)
class PractitionerFields:
    key: str | None
    first_name: str
    last_name: str
    profession: str
    bio: str = ""
    photo_url: str | None = None
    location_ids: Collection[int] = ()
    service_ids: Collection[int] = ()
    online_bookable: bool = True
    user_id: int | None = None  # the staff login they use (a practitioner login)
    active: bool = True  # False: left the clinic


@dataclass(frozen=True)
class ServiceFields:
    key: str | None
    name: str
    name_fr: str | None
    kind: str
    duration_minutes: int
    buffer_minutes: int = 0
    price_cents: int | None = None
    online_bookable: bool = True
    preparation_notes: str = ""
    description: str = ""
    description_fr: str = ""
    practitioner_ids: Collection[int] = ()
    active: bool = True
    preparation_notes_fr: str = ""


class _Problems:
    """Field -> field code, and field -> the values its words need, gathered while checking."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.params: dict[str, dict[str, object]] = {}

    def add(self, field: str, code: str, **params: object) -> None:
        self.fields.setdefault(field, code)
        if params and field not in self.params:
            self.params[field] = params

    def text(self, field: str, value: str | None, limit: int, *, required: bool) -> str:
        """``value`` with its spaces tidied (runs of spaces in one line; free text keeps its lines)."""
        cleaned = (value or "").strip()
        if required and not cleaned:
            self.add(field, errors.VALUE_MISSING)
        elif len(cleaned) > limit:
            self.add(field, errors.TOO_LONG, limit=limit)
        return cleaned

    def line(self, field: str, value: str | None, limit: int, *, required: bool) -> str:
        return self.text(field, " ".join((value or "").split()), limit, required=required)

    def raise_if_any(self, reason: str) -> None:
        if self.fields:
            raise ValidationFailed(reason, fields=self.fields, field_params=self.params)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _timezone(problems: _Problems, value: str | None) -> str:
    zone = (value or "").strip()
    if not zone:
        problems.add("timezone", errors.VALUE_MISSING)
    elif zone not in available_timezones():
        problems.add("timezone", errors.TIMEZONE_INVALID)
    return zone


def _phone(problems: _Problems, value: str | None, country: str, *, required: bool) -> str | None:
    raw = (value or "").strip()
    if not raw:
        if required:
            problems.add("phone", errors.VALUE_MISSING)
        return None
    try:
        return normalise_phone(raw, country)
    except ValidationFailed:
        problems.add("phone", errors.PHONE_INVALID)
        return raw


def _key(problems: _Problems, session: Session, model: type, value: str | None, own_id: int | None) -> str | None:
    """The checked key (None: to be made from the name)."""
    if value is None:
        return None
    key = value.strip()
    if not KEY_PATTERN.fullmatch(key) or len(key) > KEY_LENGTH:
        problems.add("key", errors.KEY_INVALID)
    elif session.scalar(select(model.id).where(model.key == key, model.id != (own_id or 0))) is not None:
        problems.add("key", errors.KEY_TAKEN)
    return key


def _new_key(session: Session, model: type, name: str, fallback: str) -> str:
    base = slugify(name) or fallback
    taken = set(session.scalars(select(model.key).where(model.key.like(f"{base}%"))))
    return unique_key(base, taken, fallback)


def _ids_known(problems: _Problems, session: Session, model: type, field: str, ids: Collection[int], code: str) -> list:
    wanted = sorted(set(ids))
    if any(not _is_int(i) for i in wanted):
        problems.add(field, code)
        return []
    rows = list(session.scalars(select(model).where(model.id.in_(wanted)))) if wanted else []
    missing = set(wanted) - {row.id for row in rows}
    if missing:
        problems.add(field, code, ids=", ".join(map(str, sorted(missing))))
    return sorted(rows, key=lambda row: row.id)


def _changed(row: object, values: dict[str, object]) -> list[str]:
    """Set ``values`` on ``row``; the names of those that changed (for the audit row)."""
    changed = []
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed.append(name)
    return changed


def _today(session: Session, now: datetime | None) -> date:
    clinic = session.get(ClinicSettings, 1)
    zone = ZoneInfo(clinic.timezone if clinic is not None else "UTC")
    return (now or utcnow()).astimezone(zone).date()


# --- the clinic --------------------------------------------------------------------------------------


def update_clinic(session: Session, fields: ClinicFields) -> ClinicSettings:
    """Set the clinic's name, contact details, country, default time zone, languages and brand
    colour; creates the settings row (policies at their defaults) when the clinic is new.

    Raises ValidationFailed (reason ``CLINIC_INVALID``) for a missing name or phone, a phone
    that is not a number of the clinic's country, an e-mail address that is not one, a country
    that is not an ISO 3166 code with phone numbers, a zone not in the IANA database, languages
    that are none or not among :data:`~booking_service.clinic.models.CLINIC_LANGUAGES`, or a
    brand colour that is not ``#rrggbb`` with 4.5:1 contrast against white. Returns the row, flushed.
    """
    problems = _Problems()
    name = problems.line("name", fields.name, MAX_NAME, required=True)
    country = (fields.country or "").strip().upper()
    if country not in phonenumbers.SUPPORTED_REGIONS:
        problems.add("country", errors.COUNTRY_INVALID)
    phone = _phone(problems, fields.phone, country if "country" not in problems.fields else "CA", required=True)
    email = None
    if (fields.email or "").strip():
        try:
            email = normalise_email(fields.email or "")
        except ValidationFailed:
            problems.add("email", errors.EMAIL_INVALID)
    address = problems.line("address", fields.address, MAX_ADDRESS, required=False)
    timezone = _timezone(problems, fields.timezone)
    languages = list(dict.fromkeys(fields.languages or ()))
    if not languages or any(language not in CLINIC_LANGUAGES for language in languages):
        problems.add("languages", errors.LANGUAGES_INVALID, choices=", ".join(CLINIC_LANGUAGES))
    colour = (fields.brand_color or "").strip().lower()
    colour_code, colour_params = colour_problem(colour)
    if colour_code:
        problems.add("brand_color", colour_code, **colour_params)
    problems.raise_if_any(errors.CLINIC_INVALID)

    clinic = session.get(ClinicSettings, 1)
    created = clinic is None
    if clinic is None:
        clinic = ClinicSettings(id=1, default_language=languages[0])
        session.add(clinic)
    changed = _changed(
        clinic,
        {
            "name": name,
            "phone": phone,
            "email": email,
            "address": address,
            "country": country,
            "timezone": timezone,
            "brand_color": colour,
            # In the order CLINIC_LANGUAGES lists them; a new list for JSON change tracking.
            "languages": sorted(languages, key=CLINIC_LANGUAGES.index),
        },
    )
    if clinic.default_language not in languages:
        clinic.default_language = languages[0]
        changed.append("default_language")
    session.flush()
    bump_catalogue(session)
    audit.record(
        session, "clinic.create" if created else "clinic.update", "clinic_settings", clinic.id, {"fields": changed}
    )
    return clinic


# --- locations -----------------------------------------------------------------------------------------


@dataclass
class _Clean:
    """What a save writes, once every field is checked: the row (None: a new one), the key
    (None: keep it, or make one from the name), the column values and the related rows."""

    row: Any
    key: str | None
    values: dict[str, Any]
    related: dict[str, list[Any]]


def _location(session: Session, location_id: int) -> Location:
    location = session.get(Location, location_id)
    if location is None:
        raise NotFound(errors.LOCATION_NOT_FOUND, fields={"location_id": errors.LOCATION_UNKNOWN})
    return location


def _clean_location(session: Session, location_id: int | None, fields: LocationFields) -> _Clean:
    location = _location(session, location_id) if location_id is not None else None
    country = get_clinic(session).country
    problems = _Problems()
    key = _key(problems, session, Location, fields.key, location_id)
    values: dict[str, Any] = {
        "name": problems.line("name", fields.name, MAX_NAME, required=True),
        "address": problems.line("address", fields.address, MAX_ADDRESS, required=True),
        "phone": _phone(problems, fields.phone, country, required=False),
        "timezone": _timezone(problems, fields.timezone),
        "directions": problems.text("directions", fields.directions, MAX_DIRECTIONS, required=False),
        "directions_fr": problems.text("directions_fr", fields.directions_fr, MAX_DIRECTIONS, required=False),
        "active": bool(fields.active),
    }
    problems.raise_if_any(errors.LOCATION_INVALID)
    return _Clean(location, key, values, {})


def check_location(session: Session, location_id: int | None, fields: LocationFields) -> None:
    """Raise what :func:`save_location` would raise, changing nothing."""
    _clean_location(session, location_id, fields)


def save_location(session: Session, location_id: int | None, fields: LocationFields) -> Location:
    """Create a location (``location_id`` None) or change one; ``active`` False closes it
    (kept, no longer offered or bookable).

    Raises NotFound for an unknown id and ValidationFailed (``LOCATION_INVALID``) for a bad or
    taken key, a missing name or address, a phone that is not a number of the clinic's country,
    a zone not in the IANA database, or directions over 1000 characters. Returns it, flushed.
    """
    clean = _clean_location(session, location_id, fields)
    return _write(session, Location, clean, clean.values["name"], "location")


# --- practitioners ---------------------------------------------------------------------------------------


def _practitioner(session: Session, practitioner_id: int) -> Practitioner:
    practitioner = session.get(Practitioner, practitioner_id)
    if practitioner is None:
        raise NotFound(errors.PRACTITIONER_NOT_FOUND, fields={"practitioner_id": errors.PRACTITIONER_UNKNOWN})
    return practitioner


def _photo_url(problems: _Problems, value: str | None) -> str | None:
    url = (value or "").strip()
    if not url:
        return None
    if not re.fullmatch(r"https://[^\s/?#]+\.[^\s/?#]+(?:[/?#]\S*)?", url) or len(url) > MAX_URL:
        problems.add("photo_url", errors.PHOTO_URL_INVALID)
    return url


def _clean_practitioner(session: Session, practitioner_id: int | None, fields: PractitionerFields) -> _Clean:
    practitioner = _practitioner(session, practitioner_id) if practitioner_id is not None else None
    problems = _Problems()
    key = _key(problems, session, Practitioner, fields.key, practitioner_id)
    values: dict[str, Any] = {
        "first_name": problems.line("first_name", fields.first_name, MAX_PERSON_NAME, required=True),
        "last_name": problems.line("last_name", fields.last_name, MAX_PERSON_NAME, required=True),
        "profession": problems.line("profession", fields.profession, MAX_PERSON_NAME, required=True),
        "bio": problems.text("bio", fields.bio, MAX_BIO, required=False),
        "photo_url": _photo_url(problems, fields.photo_url),
        "online_bookable": bool(fields.online_bookable),
        "user_id": fields.user_id,
        "active": bool(fields.active),
    }
    related = {
        "locations": _ids_known(
            problems, session, Location, "location_ids", fields.location_ids, errors.LOCATION_UNKNOWN
        ),
        "services": _ids_known(problems, session, Service, "service_ids", fields.service_ids, errors.SERVICE_UNKNOWN),
    }
    if fields.user_id is not None:
        user = session.get(User, fields.user_id) if _is_int(fields.user_id) else None
        other = session.scalar(
            select(Practitioner).where(
                Practitioner.user_id == fields.user_id, Practitioner.id != (practitioner_id or 0)
            )
        )
        if user is None or user.role != "practitioner" or not user.active:
            problems.add("user_id", errors.STAFF_LOGIN_INVALID)
        elif other is not None:
            problems.add("user_id", errors.STAFF_LOGIN_TAKEN, practitioner=other.display_name)
    problems.raise_if_any(errors.PRACTITIONER_INVALID)
    return _Clean(practitioner, key, values, related)


def check_practitioner(session: Session, practitioner_id: int | None, fields: PractitionerFields) -> None:
    """Raise what :func:`save_practitioner` would raise, changing nothing."""
    _clean_practitioner(session, practitioner_id, fields)


def save_practitioner(
    session: Session,
    practitioner_id: int | None,
    fields: PractitionerFields,
    *,
    now: datetime | None = None,
) -> Practitioner:
    """Create a practitioner (``practitioner_id`` None) or change one: name, profession, the
    bio and photo patients see, the locations and services they offer, whether patients may
    book them online, their staff login, and whether they still work here.

    ``active`` False records that they left (``left_on``: the clinic's local day of ``now``);
    they keep their appointments, hours and programs, and are no longer offered or bookable.
    Back to True clears ``left_on``.

    Raises NotFound for an unknown id and ValidationFailed (``PRACTITIONER_INVALID``) for a bad
    or taken key, a missing first name, last name or profession, a bio over 1000 characters, a
    photo that is not an ``https://`` address, unknown location or service ids, or a staff
    login that is not an active practitioner login or is already another practitioner's.
    Returns it, flushed.
    """
    clean = _clean_practitioner(session, practitioner_id, fields)
    left_on = clean.row.left_on if clean.row is not None else None
    clean.values["left_on"] = None if clean.values["active"] else (left_on or _today(session, now))
    name = f"{clean.values['first_name']} {clean.values['last_name']}"
    return _write(session, Practitioner, clean, name, "practitioner")


# --- services -----------------------------------------------------------------------------------------------


def _service(session: Session, service_id: int) -> Service:
    service = session.get(Service, service_id)
    if service is None:
        raise NotFound(errors.SERVICE_NOT_FOUND, fields={"service_id": errors.SERVICE_UNKNOWN})
    return service


def _clean_service(session: Session, service_id: int | None, fields: ServiceFields) -> _Clean:
    service = _service(session, service_id) if service_id is not None else None
    step = get_clinic(session).slot_step_minutes
    problems = _Problems()
    key = _key(problems, session, Service, fields.key, service_id)
    if fields.kind not in SERVICE_KINDS:
        problems.add("kind", errors.KIND_INVALID, choices=", ".join(SERVICE_KINDS))
    duration = fields.duration_minutes
    if not _is_int(duration) or not 0 < duration <= MAX_DURATION or duration % step:
        problems.add("duration_minutes", errors.DURATION_INVALID, step=step, high=MAX_DURATION)
    buffer = fields.buffer_minutes
    if not _is_int(buffer) or not 0 <= buffer <= MAX_BUFFER:
        problems.add("buffer_minutes", errors.NUMBER_OUT_OF_RANGE, low=0, high=MAX_BUFFER, unit="minutes")
    price = fields.price_cents
    if price is not None and (not _is_int(price) or not 0 <= price <= MAX_PRICE_CENTS):
        problems.add("price_cents", errors.PRICE_INVALID)
    values: dict[str, Any] = {
        "name": problems.line("name", fields.name, MAX_NAME, required=True),
        "name_fr": problems.line("name_fr", fields.name_fr, MAX_NAME, required=False) or None,
        "kind": fields.kind,
        "duration_minutes": duration,
        "buffer_minutes": buffer,
        "price_cents": price,
        "online_bookable": bool(fields.online_bookable),
        "preparation_notes": problems.text("preparation_notes", fields.preparation_notes, MAX_NOTES, required=False),
        "preparation_notes_fr": problems.text(
            "preparation_notes_fr", fields.preparation_notes_fr, MAX_NOTES, required=False
        ),
        "description": problems.text("description", fields.description, MAX_DESCRIPTION, required=False),
        "description_fr": problems.text("description_fr", fields.description_fr, MAX_DESCRIPTION, required=False),
        "active": bool(fields.active),
    }
    related = {
        "practitioners": _ids_known(
            problems, session, Practitioner, "practitioner_ids", fields.practitioner_ids, errors.PRACTITIONER_UNKNOWN
        )
    }
    problems.raise_if_any(errors.SERVICE_INVALID)
    if service is None:
        last = session.scalar(select(Service.sort_order).order_by(Service.sort_order.desc()).limit(1))
        values["sort_order"] = (last or 0) + 1
    return _Clean(service, key, values, related)


def check_service(session: Session, service_id: int | None, fields: ServiceFields) -> None:
    """Raise what :func:`save_service` would raise, changing nothing."""
    _clean_service(session, service_id, fields)


def save_service(session: Session, service_id: int | None, fields: ServiceFields) -> Service:
    """Create a service (``service_id`` None) or change one; ``active`` False retires it (kept
    for its appointments, no longer offered or bookable). ``online_bookable`` False: staff book
    it, patients do not see it. A new service comes last in the patients' list.

    Its name appears in confirmations and reminders: the console warns that it must not reveal
    a condition (this function cannot tell). Changing the duration or buffer does not change
    appointments already booked: they keep their times.

    Raises NotFound for an unknown id and ValidationFailed (``SERVICE_INVALID``) for a bad or
    taken key, a missing name, a kind not in :data:`SERVICE_KINDS`, a duration that is not a
    positive multiple of the clinic's slot step up to 480 minutes, a buffer outside 0-120
    minutes, a price outside 0 to 10,000,000 cents, texts over their limits, or unknown
    practitioner ids. Returns it, flushed.
    """
    clean = _clean_service(session, service_id, fields)
    return _write(session, Service, clean, clean.values["name"], "service")


# --- writing ---------------------------------------------------------------------------------------------------


def _write(session: Session, model: type, clean: _Clean, name: str, kind: str) -> Any:
    """Create or change the row, flush, and record the audit row: on create its key, on change
    the names of the fields that changed (never their values: names and notes are not for the trail)."""
    row = clean.row
    if row is None:
        row = model(key=clean.key or _new_key(session, model, name, kind), **clean.values)
        session.add(row)
        changed: list[str] = []
    else:
        changed = _changed(row, {**clean.values, **({"key": clean.key} if clean.key is not None else {})})
    for relation, rows in clean.related.items():
        if sorted(item.id for item in getattr(row, relation)) != [item.id for item in rows]:
            setattr(row, relation, rows)
            changed.append(relation)
    session.flush()
    bump_catalogue(session)
    if clean.row is None:
        audit.record(session, f"{kind}.create", kind, row.id, {"key": row.key})
    else:
        audit.record(session, f"{kind}.update", kind, row.id, {"fields": changed})
    return row
