"""Loading a clinic file: what would change (a dry run) and changing it (a load), by one path.

The file's format, schema and export are the clinic's (:mod:`booking_service.clinic.files`);
loading it is a use case because a change of the catalogue may leave booked appointments to
move, which only this layer may ask about (``usecases.catalogue``).

Items are matched by their ``key``. A field present in the file is set; a field left out keeps
its stored value (a new item takes the default); items absent from the file are left alone.
Rows are written only through the catalogue's functions (``usecases.catalogue``, which checks
and saves with ``clinic.catalogue``: the console's validation and audit),
``clinic.operations.set_weekly_hours`` and ``update_policy``, so a file cannot store what the
console would refuse. A change that leaves future appointments to move (a practitioner who no
longer offers a service, a closed location, a longer service) lists them, and the load refuses
it unless the caller confirms (:class:`MovesNotConfirmed`), as the console does.

The changes are read, not predicted: the load applies each item, then compares the stored
clinic before and after (in the file's own terms, :mod:`booking_service.clinic.files.state`).
An item whose file values differ from the stored ones only in how they are written (a phone
number with spaces, a time as ``9:00``) is applied in a savepoint and rolled back when nothing
stored changed, so loading an unchanged file writes nothing, not even an audit row.
:func:`plan_changes` does all of it in a savepoint it rolls back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking_service.clinic import catalogue
from booking_service.clinic.files.document import ClinicFileError, Document, Path, Problem, render_path
from booking_service.clinic.files.schema import DAY_NAMES
from booking_service.clinic.files.state import (
    CLINIC_FIELDS,
    clinic_state,
    current_state,
    location_state,
    practitioner_state,
    row_order,
    service_state,
)
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service
from booking_service.clinic.operations import HoursRow, set_weekly_hours, update_policy
from booking_service.db import write_transaction
from booking_service.errors import DomainError
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.queries import outside_weekly_hours
from booking_service.staff.models import User
from booking_service.usecases import catalogue as checked

T = TypeVar("T")

# What a field left out of a new item means (a stored item keeps its value instead).
NEW_LOCATION = {"address": "", "phone": None, "directions": "", "directions_fr": "", "active": True}
NEW_SERVICE = {
    "name_fr": None,
    "buffer_minutes": 0,
    "price_cents": None,
    "online_bookable": True,
    "preparation_notes": "",
    "preparation_notes_fr": "",
    "description": "",
    "description_fr": "",
    "active": True,
}
NEW_PRACTITIONER = {
    "profession": "",
    "bio": "",
    "photo_url": None,
    "online_bookable": True,
    "active": True,
    "login": None,
    "locations": [],
    "services": [],
}
NEW_CLINIC = {
    "phone": "",
    "email": None,
    "address": "",
    "country": "CA",
    "timezone": "America/Toronto",
    "languages": ["en", "fr"],
    "brand_color": "#0f6e6e",
}

# The catalogue's field names that the file names otherwise.
_FILE_NAMES = {"location_ids": "locations", "service_ids": "services", "user_id": "login"}


# --- changes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    name: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Change:
    """One item created or updated: ``kind`` is clinic, policy, location, service, practitioner
    or hours (``key``: ``<practitioner> at <location>``, one field per day)."""

    action: str  # "create" | "update"
    kind: str
    key: str
    fields: tuple[FieldChange, ...]
    # The future appointments the change leaves to move, described (time, service, who, where).
    to_move: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """The change as text: a heading, then one indented line per field, then the
        appointments it leaves to move."""
        title = f"{self.action} {self.kind}" + (f" {self.key}" if self.key else "")
        if self.action == "create":
            body = [f"    {f.name}: {show(f.new)}" for f in self.fields]
        else:
            body = [f"    {f.name}: {show(f.old)} -> {show(f.new)}" for f in self.fields]
        if self.to_move:
            count = len(self.to_move)
            body.append(f"    leaves {count} future appointment{'s' if count != 1 else ''} to move:")
            body += [f"      {text}" for text in self.to_move]
        return [title, *body]


class MovesNotConfirmed(Exception):
    """The file's changes leave future appointments to move and the caller did not confirm:
    nothing is kept (the caller rolls back). ``changes`` lists them, each with ``to_move``."""

    def __init__(self, changes: list[Change]) -> None:
        super().__init__("the clinic file leaves future appointments to move")
        self.changes = changes

    @property
    def count(self) -> int:
        return sum(len(change.to_move) for change in self.changes)


def _appointment_text(appointment: Appointment) -> str:
    start = appointment.start_at.astimezone(ZoneInfo(appointment.location.timezone))
    return (
        f"appointment {appointment.id}: {start:%a %Y-%m-%d %H:%M} {appointment.service.name} "
        f"with {appointment.practitioner.display_name} at {appointment.location.name}"
    )


def show(value: Any) -> str:
    """A value as the file writes it, on one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{name}: {show(item)}" for name, item in value.items()) + "}"
    return str(value)


def describe(changes: list[Change]) -> str:
    """Every change as text, or exactly ``no change``."""
    if not changes:
        return "no change"
    return "\n".join(line for change in changes for line in change.lines())


def _row_text(row: Mapping[str, Any]) -> str:
    text = f"{row['start']}-{row['end']}"
    if row.get("break_start"):
        text += f" (break {row['break_start']}-{row['break_end']})"
    if row.get("valid_from"):
        text += f" from {row['valid_from']}"
    if row.get("valid_until"):
        text += f" until {row['valid_until']}"
    return text


def _items(state: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every item of a state, by (kind, key), as the fields a change lists."""
    items: dict[tuple[str, str], dict[str, Any]] = {}
    if state["clinic"] is not None:
        items["clinic", ""] = {name: state["clinic"][name] for name in CLINIC_FIELDS}
        items["policy", ""] = dict(state["clinic"]["policy"])
    for kind, section in (("location", "locations"), ("service", "services")):
        for item in state[section]:
            items[kind, item["key"]] = dict(item)
    for item in state["practitioners"]:
        items["practitioner", item["key"]] = {name: value for name, value in item.items() if name != "hours"}
        for location_key, rows in item["hours"].items():
            days: dict[str, str] = {}
            for row in rows:
                days[row["day"]] = "; ".join(filter(None, [days.get(row["day"]), _row_text(row)]))
            items["hours", f"{item['key']} at {location_key}"] = {day: days[day] for day in DAY_NAMES if day in days}
    return items


def _diff(before: dict, after: dict) -> list[Change]:
    changes = []
    for ident, new in after.items():
        old = before.get(ident)
        if old == new:
            continue
        kind, key = ident
        if old is None and kind != "hours":
            fields = tuple(FieldChange(name, None, value) for name, value in new.items() if name != "key")
            changes.append(Change("create", kind, key, fields))
            continue
        old = old or {}
        names = [*old, *(name for name in new if name not in old)]
        if kind == "hours":
            names = [day for day in DAY_NAMES if day in old or day in new]
        fields = tuple(
            FieldChange(name, old.get(name), new.get(name)) for name in names if old.get(name) != new.get(name)
        )
        changes.append(Change("update", kind, key, fields))
    for ident, old in before.items():
        kind, key = ident
        if ident not in after and kind == "hours":  # every row at that location removed
            changes.append(
                Change("update", kind, key, tuple(FieldChange(day, text, None) for day, text in old.items()))
            )
    return changes


# --- reading the file's values -------------------------------------------------------------------


def _time_text(value: str | None) -> str | None:
    """``9:00`` -> ``09:00`` (the schema checked the shape)."""
    if value is None:
        return None
    hours, minutes = value.split(":")
    return f"{int(hours):02d}:{minutes}"


def _as_time(value: str | None) -> time | None:
    return None if value is None else time.fromisoformat(_time_text(value))


def _day_name(value: str | int) -> str:
    return DAY_NAMES[value] if isinstance(value, int) else value.lower()[:3]


def _row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A weekly row of the file as the state writes it."""
    row = {
        "day": _day_name(raw["day"]),
        "start": _time_text(raw["start"]),
        "end": _time_text(raw["end"]),
        "break_start": _time_text(raw.get("break_start")),
        "break_end": _time_text(raw.get("break_end")),
        "valid_from": raw.get("valid_from"),
        "valid_until": raw.get("valid_until"),
    }
    return {name: value for name, value in row.items() if value is not None or name in ("day", "start", "end")}


def _hours_row(row: Mapping[str, Any]) -> HoursRow:
    return HoursRow(
        weekday=DAY_NAMES.index(row["day"]),
        start=_as_time(row["start"]),
        end=_as_time(row["end"]),
        break_start=_as_time(row.get("break_start")),
        break_end=_as_time(row.get("break_end")),
        valid_from=date.fromisoformat(row["valid_from"]) if row.get("valid_from") else None,
        valid_until=date.fromisoformat(row["valid_until"]) if row.get("valid_until") else None,
    )


def _policy_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The file's policy as the state writes it."""
    values = dict(raw)
    for name in ("quiet_hours_start", "quiet_hours_end"):
        if name in values:
            values[name] = _time_text(values[name])
    return values


# --- checks across the file ------------------------------------------------------------------------


@dataclass
class _Context:
    session: Session
    document: Document
    locations: dict[str, int]  # key -> id, stored or created so far
    services: dict[str, int]
    now: datetime
    # (kind, key) -> the future appointments the item's change leaves to move
    to_move: dict[tuple[str, str], list[Appointment]]


def _stored_keys(session: Session, model: type) -> dict[str, int]:
    return dict(session.execute(select(model.key, model.id)).all())


def _enumerate(document: Document, section: str) -> Iterator[tuple[int, dict[str, Any]]]:
    yield from enumerate(document.data.get(section) or [])


def check_references(session: Session, document: Document) -> None:
    """Refuse, before anything is written, what only the whole file shows: a key used twice in
    a section, a reference to a location, service or login that exists neither in the file nor
    in the database, hours at a location the practitioner does not work at, a date that is not
    a day, and a file without a clinic for a database that has none."""
    problems: list[Problem] = []
    data = document.data
    if "clinic" not in data and session.get(ClinicSettings, 1) is None:
        problems.append(document.problem(("clinic",), "is missing: the database has no clinic yet"))
    known: dict[str, set[str]] = {}
    for section, model in (("locations", Location), ("services", Service), ("practitioners", Practitioner)):
        first: dict[str, int] = {}
        for index, item in _enumerate(document, section):
            key = item["key"]
            if key in first:
                where = render_path((section, first[key]))
                line = document.line((section, first[key], "key"))
                problems.append(
                    document.problem((section, index, "key"), f"{key!r} is already the key of {where} (line {line})")
                )
            first.setdefault(key, index)
        known[section] = set(first) | set(_stored_keys(session, model))
    stored_locations = {
        p.key: [location.key for location in p.locations] for p in session.scalars(select(Practitioner))
    }
    logins = set(session.scalars(select(User.email)))
    for index, item in _enumerate(document, "practitioners"):
        path: Path = ("practitioners", index)
        for field, section in (("locations", "locations"), ("services", "services")):
            for position, key in enumerate(item.get(field) or []):
                if key not in known[section]:
                    problems.append(
                        document.problem(
                            (*path, field, position),
                            f"{key!r} is not the key of any of the {section} (in this file or stored)",
                        )
                    )
        works_at = item.get("locations", stored_locations.get(item["key"], []))
        for location_key, rows in (item.get("hours") or {}).items():
            if location_key not in works_at:
                problems.append(
                    document.problem(
                        (*path, "hours", location_key),
                        f"{location_key!r} is not one of this practitioner's locations: add it to locations",
                    )
                )
            for position, row in enumerate(rows):
                for name in ("valid_from", "valid_until"):
                    try:
                        if row.get(name):
                            date.fromisoformat(row[name])
                    except ValueError:
                        problems.append(
                            document.problem((*path, "hours", location_key, position, name), "is not a real date")
                        )
        login = item.get("login")
        if login is not None and login.strip().lower() not in logins:
            problems.append(document.problem((*path, "login"), f"no staff user has the email {login!r}"))
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.path))
        raise ClinicFileError(problems)


# --- applying ----------------------------------------------------------------------------------------


def _refused(
    document: Document, path: Path, key: str, exc: DomainError, rename: Callable[[str], Path]
) -> ClinicFileError:
    """The domain's refusal of one item (``key``: the item's, if it has one), with each of its
    fields placed in the file."""
    fields = {}
    for name in exc.fields:
        field_path = (*path, *rename(name))
        fields[name] = (render_path(field_path), document.line(field_path))
    return ClinicFileError(
        domain_error=exc,
        where=Problem(render_path(path), document.line(path), key),
        domain_fields=fields,
    )


def _file_field(name: str) -> Path:
    return (_FILE_NAMES.get(name, name),)


def _save(
    session: Session, save: Callable[[], T], stored: Mapping[str, Any] | None, state_of: Callable[[T], Mapping]
) -> tuple[T, bool]:
    """Run ``save`` in a savepoint, kept unless the item was stored before (``stored``, its
    state then) and ``state_of`` its result is still the same: an item written otherwise in
    the file but stored alike leaves no trace, not even an audit row. Returns (the result,
    whether it was kept)."""
    savepoint = session.begin_nested()
    try:
        result = save()
        session.flush()
    except BaseException:
        savepoint.rollback()
        raise
    if stored is not None and dict(state_of(result)) == dict(stored):
        savepoint.rollback()
        return result, False
    savepoint.commit()
    return result, True


def _clinic_fields(clinic: ClinicSettings) -> dict[str, Any]:
    return {name: value for name, value in clinic_state(clinic).items() if name != "policy"}


def _policy(clinic: ClinicSettings) -> dict[str, Any]:
    return clinic_state(clinic)["policy"]


def _differs(stored: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    if stored is None:
        return True
    for name, value in wanted.items():
        old = stored.get(name)
        if name in ("locations", "services") and isinstance(value, list):
            if sorted(old or []) != sorted(value):
                return True
        elif old != value:
            return True
    return False


def _apply_clinic(ctx: _Context) -> None:
    raw = ctx.document.data.get("clinic")
    if raw is None:
        return
    session, document = ctx.session, ctx.document
    stored = clinic_state(session.get(ClinicSettings, 1))
    wanted = {name: raw[name] for name in CLINIC_FIELDS if name in raw}
    if _differs(stored, wanted):
        values = {**(stored or NEW_CLINIC), **wanted}
        fields = catalogue.ClinicFields(**{name: values[name] for name in CLINIC_FIELDS})
        try:
            stored_fields = None if stored is None else {n: v for n, v in stored.items() if n != "policy"}
            _save(session, partial(catalogue.update_clinic, session, fields), stored_fields, _clinic_fields)
        except DomainError as exc:
            raise _refused(document, ("clinic",), "", exc, _file_field) from None
    policy = _policy_values(raw.get("policy") or {})
    stored_policy = clinic_state(session.get(ClinicSettings, 1))["policy"]
    changed = {name: value for name, value in policy.items() if stored_policy.get(name) != value}
    if changed:
        arguments = {
            name: _as_time(value) if name in ("quiet_hours_start", "quiet_hours_end") else value
            for name, value in changed.items()
        }
        try:
            _save(session, partial(update_policy, session, **arguments), stored_policy, _policy)
        except DomainError as exc:
            raise _refused(document, ("clinic", "policy"), "", exc, _file_field) from None


@dataclass(frozen=True)
class _Kind:
    """A catalogue kind a clinic file lists by ``key`` and loads the same way: locations and
    services (practitioners carry logins and hours, and have their own loader)."""

    section: str  # the file's list, and the _Context map of key -> id it fills
    move: str  # the first part of its _Context.to_move keys
    model: type
    state: Callable  # the stored item as the file would say it
    defaults: Callable[[_Context], dict]  # what a new item has that the file leaves out
    fields: Callable[[dict, object | None], object]  # the catalogue's Fields, from values and the stored item
    save: Callable  # the checked save of usecases.catalogue


def _apply_items(ctx: _Context, kind: _Kind) -> None:
    """Create or update each item of ``kind`` the file lists that differs from what is stored,
    through the catalogue's checked save; a change that strands booked visits is recorded in
    ``ctx.to_move`` (the load refuses it unless moves are confirmed)."""
    session, document = ctx.session, ctx.document
    for index, raw in _enumerate(document, kind.section):
        path: Path = (kind.section, index)
        item = session.scalar(select(kind.model).where(kind.model.key == raw["key"]))
        stored = kind.state(item) if item is not None else None
        if not _differs(stored, raw):
            continue
        fields = kind.fields({**(stored or kind.defaults(ctx)), **raw}, item)
        item_id = item.id if item is not None else None
        try:
            (saved, impact), kept = _save(
                session,
                partial(kind.save, session, item_id, fields, now=ctx.now, confirm_impact=True),
                stored,
                lambda result: kind.state(result[0]),
            )
        except DomainError as exc:
            raise _refused(document, path, raw["key"], exc, _file_field) from None
        getattr(ctx, kind.section)[saved.key] = saved.id
        if kept and impact:
            ctx.to_move[kind.move, saved.key] = impact


_LOCATIONS = _Kind(
    section="locations",
    move="location",
    model=Location,
    state=location_state,
    defaults=lambda ctx: {**NEW_LOCATION, "timezone": ctx.session.get(ClinicSettings, 1).timezone},
    fields=lambda values, _location: catalogue.LocationFields(**values),
    save=checked.save_location,
)
_SERVICES = _Kind(
    section="services",
    move="service",
    model=Service,
    state=service_state,
    defaults=lambda _ctx: NEW_SERVICE,
    # Who offers a service is said by each practitioner's ``services``.
    fields=lambda values, service: catalogue.ServiceFields(
        **values, practitioner_ids=[p.id for p in service.practitioners] if service is not None else []
    ),
    save=checked.save_service,
)


def _apply_practitioners(ctx: _Context) -> None:
    session, document = ctx.session, ctx.document
    logins = dict(session.execute(select(User.email, User.id)).all())
    user_emails = {user_id: email for email, user_id in logins.items()}
    for index, raw in _enumerate(document, "practitioners"):
        path: Path = ("practitioners", index)
        practitioner = session.scalar(select(Practitioner).where(Practitioner.key == raw["key"]))
        stored = practitioner_state(practitioner, user_emails) if practitioner is not None else None
        wanted = {name: value for name, value in raw.items() if name != "hours"}
        if "login" in wanted and wanted["login"] is not None:
            wanted["login"] = wanted["login"].strip().lower()
        if _differs(stored, wanted):
            values = {**(stored or NEW_PRACTITIONER), **wanted}
            fields = catalogue.PractitionerFields(
                key=values["key"],
                first_name=values["first_name"],
                last_name=values["last_name"],
                profession=values["profession"],
                bio=values["bio"],
                photo_url=values["photo_url"],
                location_ids=[ctx.locations[key] for key in values["locations"]],
                service_ids=[ctx.services[key] for key in values["services"]],
                online_bookable=values["online_bookable"],
                user_id=logins[values["login"]] if values["login"] is not None else None,
                active=values["active"],
            )
            practitioner_id = practitioner.id if practitioner is not None else None
            try:
                (practitioner, impact), kept = _save(
                    session,
                    partial(
                        checked.save_practitioner, session, practitioner_id, fields, now=ctx.now, confirm_impact=True
                    ),
                    None if stored is None else _without_hours(stored),
                    lambda result: _without_hours(practitioner_state(result[0], user_emails)),
                )
            except DomainError as exc:
                raise _refused(document, path, raw["key"], exc, _file_field) from None
            if kept and impact:
                ctx.to_move["practitioner", practitioner.key] = impact
        if "hours" in raw:
            _apply_hours(ctx, path, practitioner, raw["hours"])


def _without_hours(state: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in state.items() if name != "hours"}


def _apply_hours(ctx: _Context, path: Path, practitioner: Practitioner, raw: Mapping[str, list]) -> None:
    """Set the practitioner's weekly hours to the file's: each location listed gets exactly its
    rows; a location where they have hours but that the file does not list loses them (the file's
    ``hours`` is their whole week). Future visits the new hours at a location no longer cover
    are listed to move under that change (``scheduling.queries.outside_weekly_hours``)."""
    session, document = ctx.session, ctx.document
    session.expire(practitioner, ["working_hours"])
    stored = practitioner_state(practitioner, {})["hours"]
    wanted = {key: [_row(row) for row in rows] for key, rows in raw.items()}
    changed = [
        key
        for key in [*stored, *(key for key in wanted if key not in stored)]
        if sorted(wanted.get(key, []), key=row_order) != stored.get(key, [])
    ]
    if len(changed) > 1:
        # Clear first, so hours that move from one location to another do not meet themselves.
        for key in changed:
            if key in stored:
                set_weekly_hours(session, practitioner.id, ctx.locations[key], [])
    for key in changed:
        rows = raw.get(key, [])
        try:
            set_weekly_hours(session, practitioner.id, ctx.locations[key], [_hours_row(_row(row)) for row in rows])
        except DomainError as exc:
            raise _refused(document, (*path, "hours", key), "", exc, _hours_field) from None
    for key in changed:
        outside = outside_weekly_hours(session, practitioner.id, ctx.locations[key], now=ctx.now)
        if outside:
            ctx.to_move["hours", f"{practitioner.key} at {key}"] = outside


def _hours_field(name: str) -> Path:
    """``rows.2.start`` -> ``[2].start``; any other field as it is."""
    parts = name.split(".")
    if parts[0] == "rows" and len(parts) == 3 and parts[1].isdigit():
        return (int(parts[1]), parts[2])
    return (name,)


def apply_document(session: Session, document: Document, *, now: datetime) -> list[Change]:
    """Create or update what ``document`` describes, in ``session`` (flushed, never committed),
    and return what changed, each change with the future appointments (after ``now``) it leaves
    to move. Raises ClinicFileError (the caller rolls back: nothing is kept)."""
    check_references(session, document)
    before = _items(current_state(session))
    ctx = _Context(
        session,
        document,
        locations=_stored_keys(session, Location),
        services=_stored_keys(session, Service),
        now=now,
        to_move={},
    )
    _apply_clinic(ctx)
    _apply_items(ctx, _LOCATIONS)
    _apply_items(ctx, _SERVICES)
    _apply_practitioners(ctx)
    session.flush()
    to_move = {ident: tuple(map(_appointment_text, items)) for ident, items in ctx.to_move.items()}
    session.expire_all()
    changes = _diff(before, _items(current_state(session)))
    return [replace(change, to_move=to_move.get((change.kind, change.key), ())) for change in changes]


def load_clinic(session: Session, document: Document, *, now: datetime, confirm_moves: bool = False) -> list[Change]:
    """Load ``document`` into the clinic (the caller commits); returns what changed. Raises
    ClinicFileError for a bad file, and MovesNotConfirmed when the changes leave future
    appointments to move and ``confirm_moves`` is False (the caller rolls back either way)."""
    write_transaction(session)
    changes = apply_document(session, document, now=now)
    if not confirm_moves and any(change.to_move for change in changes):
        raise MovesNotConfirmed(changes)
    return changes


def plan_changes(session: Session, document: Document, *, now: datetime) -> list[Change]:
    """What loading ``document`` would change (with the appointments each change leaves to
    move), leaving the database as it was: the load runs in a savepoint that is rolled back.
    Raises ClinicFileError as the load would."""
    write_transaction(session)
    savepoint = session.begin_nested()
    try:
        return apply_document(session, document, now=now)
    finally:
        savepoint.rollback()
        session.expire_all()
