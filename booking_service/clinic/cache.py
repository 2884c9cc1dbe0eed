"""The catalogue in memory: one copy per process (per engine), checked against the database once
per transaction.

The catalogue is what changes rarely and is read by nearly every request: the clinic's settings,
locations, services, practitioners (with the locations they work at and the services they
offer), weekly hours and closures. Time off is not in it: it is busy time, as live as
appointments, and stays in the calendar's busy query.

**Invalidation.** A one-row table, ``catalogue_version``, holds a number. Every change to the
catalogue raises it *in the same transaction* (:func:`bump_catalogue`): the write functions of
``clinic.operations`` and ``clinic.catalogue`` call it, and a ``before_flush`` safety net calls it
whenever a flush writes an instance of a catalogue class (and ``do_orm_execute`` for a bulk
UPDATE, DELETE or INSERT on a catalogue table), so a forgotten call cannot leave a process stale.
A reader asks :func:`catalogue` for the catalogue: the first time in a transaction it reads the
number (one tiny statement, remembered in ``session.info`` until the transaction ends); when it
differs from the number the process loaded with, the whole catalogue is loaded again (one query
per table, under a lock so that threads load it once). The number is read before the rows, so a
copy is never labelled newer than it is. A change committed anywhere is therefore seen by every
process at its next transaction.

**Its own changes.** Once a transaction has changed the catalogue (or holds unflushed changes to
it), :func:`catalogue` answers None for the rest of that transaction and the readers query the
database, so a transaction always sees its own writes, new rows included. Not seen by the net:
raw SQL text writing catalogue tables; such code must call :func:`bump_catalogue` itself.

**What readers get.** Locations, services, practitioners and the settings row are kept as fully
loaded, *detached* ORM instances (their relationships not loaded). :func:`attach` puts one into
the requesting session with ``session.merge(obj, load=False)`` (SQLAlchemy's pattern for cached
objects, as in its dogpile caching example): no SQL, and the object is an ordinary persistent
instance of that session, so later many-to-one loads by primary key (``appointment.service``,
``session.get(ClinicSettings, 1)``) find it in the identity map, and an admin edit through it is
flushed as usual. An instance the session already holds with changes is returned as it is.
Weekly hours and closures are frozen values (:class:`Hours`, :class:`ClosedDay`): the slot
engine needs only values.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any, TypeVar

from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.orm.attributes import instance_state, set_committed_value

from booking_service.clinic.models import (
    ClinicSettings,
    Closure,
    Location,
    Practitioner,
    Service,
    WorkingHours,
    catalogue_version,
    practitioner_locations,
    practitioner_services,
)

CATALOGUE_CLASSES = (ClinicSettings, Location, Practitioner, Service, WorkingHours, Closure)
CATALOGUE_TABLES = frozenset(
    {
        "clinic_settings",
        "locations",
        "services",
        "practitioners",
        "practitioner_locations",
        "practitioner_services",
        "working_hours",
        "closures",
    }
)

# Keys of session.info, all cleared when the session's outermost transaction ends.
_VERSION = "catalogue_version"  # the number read in this transaction
_CHANGED = "catalogue_changed"  # this transaction changed the catalogue: read the database
_BUMPED = "catalogue_bumped"  # the (sub)transaction in which the number was last raised
_ATTACHED = "catalogue_attached"  # identity keys attach() merged in this transaction

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Hours:
    """One weekly row of a practitioner at a location (local wall times), as stored."""

    id: int
    practitioner_id: int
    location_id: int
    weekday: int
    start: time
    end: time
    break_start: time | None
    break_end: time | None
    valid_from: date | None
    valid_until: date | None

    def valid_within(self, first_day: date, last_day: date) -> bool:
        """Whether the row's validity shares a day with first_day..last_day."""
        return (self.valid_from is None or self.valid_from <= last_day) and (
            self.valid_until is None or self.valid_until >= first_day
        )


@dataclass(frozen=True, slots=True)
class ClosedDay:
    """A closure: a local day closed at one location, or everywhere (``location_id`` None)."""

    location_id: int | None
    day: date


@dataclass(frozen=True)
class Catalogue:
    """One loaded copy of the catalogue, as of ``version``. Never changed once built.

    The ORM instances in it are detached: read their columns, or :func:`attach` them to a
    session before handing them out (their relationships are not loaded).
    """

    version: int
    clinic: ClinicSettings | None
    locations: Mapping[int, Location]  # every location, by id, in id order
    services: Mapping[int, Service]  # every service, in (sort_order, id) order
    practitioners: Mapping[int, Practitioner]  # every practitioner, in id order
    practitioner_locations: Mapping[int, frozenset[int]]  # practitioner id -> location ids
    practitioner_services: Mapping[int, frozenset[int]]  # practitioner id -> service ids
    hours: Mapping[tuple[int, int], tuple[Hours, ...]]  # (practitioner id, location id) -> rows, by id
    closures: tuple[ClosedDay, ...]
    # Values other modules derive from this copy once (the slot engine's hours); same lifetime.
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def hours_of(self, practitioner_id: int) -> list[Hours]:
        """Every weekly row of the practitioner, at every location."""
        return [row for (pid, _), rows in self.hours.items() if pid == practitioner_id for row in rows]

    def closed_days(self, location_id: int, first_day: date, last_day: date) -> frozenset[date]:
        """Local days first_day..last_day closed at the location or for the whole clinic."""
        return frozenset(
            c.day
            for c in self.closures
            if (c.location_id is None or c.location_id == location_id) and first_day <= c.day <= last_day
        )


class CatalogueCache:
    """The catalogue of one database, shared by the threads of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: Catalogue | None = None
        self.loads = 0  # how many times it was loaded (tests, diagnostics)

    def get(self, session: Session) -> Catalogue:
        version = read_version(session)
        current = self._current
        if current is not None and current.version == version:
            return current
        with self._lock:
            current = self._current
            if current is None or current.version != version:
                current = _load(session, version)
                self._current = current
                self.loads += 1
            return current


# One cache per engine: a process has one engine per database (create_app, the worker, the CLI),
# and two Database objects in one process (tests) get two independent caches.
_caches: weakref.WeakKeyDictionary[Engine, CatalogueCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_for(session: Session) -> CatalogueCache:
    """The process's cache of the database ``session`` is bound to."""
    bind = session.get_bind()
    key = bind if isinstance(bind, Engine) else bind.engine  # a session bound to a Connection
    found = _caches.get(key)
    if found is None:
        with _caches_lock:
            found = _caches.setdefault(key, CatalogueCache())
    return found


def catalogue(session: Session) -> Catalogue | None:
    """The catalogue as this transaction sees it, or None when this transaction has changed the
    catalogue (the caller reads the database then, to see its own changes).

    Unflushed changes to catalogue instances count as a change (the database queries that
    follow autoflush them, and the ``before_flush`` net raises the version); the session is not
    flushed here, so reading the catalogue never moves a flush earlier than it was. Costs one
    statement per transaction (the version), plus a full load when another transaction changed
    the catalogue.
    """
    info = session.info
    if info.get(_CHANGED) or (_holds_catalogue_changes(session) and info.setdefault(_CHANGED, True)):
        return None
    return cache_for(session).get(session)


def _holds_catalogue_changes(session: Session) -> bool:
    for group in (session.new, session.dirty, session.deleted):
        for obj in group:
            if isinstance(obj, CATALOGUE_CLASSES):
                return True
    return False


def attach(session: Session, obj: T) -> T:
    """``obj`` (a detached instance from :class:`Catalogue`) as a persistent instance of
    ``session``, without SQL: the session's own instance when it holds one with changes (merging
    would overwrite them), otherwise a copy merged with ``load=False``, which also brings an
    instance the session kept from an earlier transaction up to date (sessions do not expire
    on commit here)."""
    key = instance_state(obj).key
    existing = session.identity_map.get(key)
    attached = session.info.setdefault(_ATTACHED, set())
    if existing is not None:
        state = instance_state(existing)
        if state.modified or (key in attached and not state.expired_attributes):
            return existing  # its changes, or merged already in this transaction
    merged = session.merge(obj, load=False)
    attached.add(key)
    if isinstance(merged, ClinicSettings):
        # merge(load=False) shares attribute values: give the session its own JSON lists, so an
        # in-place change cannot reach the cached copy.
        set_committed_value(merged, "languages", list(merged.languages or ()))
        set_committed_value(merged, "reminder_rules", [dict(rule) for rule in merged.reminder_rules or ()])
    return merged


def attach_all(session: Session, objects: Iterable[T]) -> list[T]:
    return [attach(session, obj) for obj in objects]


def read_version(session: Session) -> int:
    """The catalogue's version as this transaction sees it: read once per transaction (0 when the
    row is missing, as in a database emptied by hand)."""
    version = session.info.get(_VERSION)
    if version is None:
        version = session.connection().execute(version_query()).scalar() or 0
        session.info[_VERSION] = version
    return version


def bump_catalogue(session: Session) -> None:
    """Raise the catalogue's version in ``session``'s transaction: every process reloads its copy
    once this commits; this transaction reads the database for the rest of its life.

    Called by every function that changes the catalogue (the ``before_flush`` net calls it too);
    once per (sub)transaction: a second call while the same one is active does nothing, while
    a call after a rolled-back savepoint raises it again.
    """
    connection = session.connection()
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info[_CHANGED] = True
    bumped = session.info.get(_BUMPED)
    if bumped is not None and bumped is transaction and transaction.is_active:
        return
    connection.execute(_bump_statement(connection.dialect.name))
    session.info[_BUMPED] = transaction


@functools.cache
def version_query():
    return select(catalogue_version.c.version).where(catalogue_version.c.id == 1)


@functools.cache
def _bump_statement(dialect: str):
    """``version + 1``, or the row itself when it is missing: one statement on either engine."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return (
        insert(catalogue_version)
        .values(id=1, version=1)
        .on_conflict_do_update(
            index_elements=[catalogue_version.c.id], set_={"version": catalogue_version.c.version + 1}
        )
    )


def _load(session: Session, version: int) -> Catalogue:
    """Every catalogue row through ``session``'s connection (its transaction, so the rows are at
    least as new as ``version``), as detached instances and frozen values."""
    connection = session.connection()
    with Session(bind=connection, autoflush=False, expire_on_commit=False) as loader:
        clinic = loader.get(ClinicSettings, 1)
        locations = {row.id: row for row in loader.scalars(select(Location).order_by(Location.id))}
        services = {row.id: row for row in loader.scalars(select(Service).order_by(Service.sort_order, Service.id))}
        practitioners = {row.id: row for row in loader.scalars(select(Practitioner).order_by(Practitioner.id))}
        loader.expunge_all()

    where: dict[int, set[int]] = {pid: set() for pid in practitioners}
    for pid, location_id in connection.execute(
        select(practitioner_locations.c.practitioner_id, practitioner_locations.c.location_id)
    ):
        where.setdefault(pid, set()).add(location_id)
    offers: dict[int, set[int]] = {pid: set() for pid in practitioners}
    for pid, service_id in connection.execute(
        select(practitioner_services.c.practitioner_id, practitioner_services.c.service_id)
    ):
        offers.setdefault(pid, set()).add(service_id)

    hours_t = WorkingHours.__table__.c
    hours: dict[tuple[int, int], list[Hours]] = {}
    for row in connection.execute(
        select(
            hours_t.id,
            hours_t.practitioner_id,
            hours_t.location_id,
            hours_t.weekday,
            hours_t.start_time,
            hours_t.end_time,
            hours_t.break_start,
            hours_t.break_end,
            hours_t.valid_from,
            hours_t.valid_until,
        ).order_by(hours_t.id)
    ):
        hours.setdefault((row.practitioner_id, row.location_id), []).append(Hours(*row))

    closures_t = Closure.__table__.c
    closures = tuple(
        ClosedDay(location_id, day)
        for location_id, day in connection.execute(
            select(closures_t.location_id, closures_t.day).order_by(closures_t.day, closures_t.id)
        )
    )
    return Catalogue(
        version=version,
        clinic=clinic,
        locations=locations,
        services=services,
        practitioners=practitioners,
        practitioner_locations={pid: frozenset(ids) for pid, ids in where.items()},
        practitioner_services={pid: frozenset(ids) for pid, ids in offers.items()},
        hours={key: tuple(rows) for key, rows in hours.items()},
        closures=closures,
    )


# --- the safety net: a catalogue write that forgot bump_catalogue() still raises the version ------


@event.listens_for(Session, "before_flush")
def _bump_on_flush(session: Session, _flush_context, _instances) -> None:
    if _holds_catalogue_changes(session):
        bump_catalogue(session)


@event.listens_for(Session, "do_orm_execute")
def _bump_on_bulk_write(state: ORMExecuteState) -> None:
    if state.is_select or not (state.is_update or state.is_delete or state.is_insert):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in CATALOGUE_TABLES:
        bump_catalogue(state.session)


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction) -> None:
    if transaction.parent is None:
        info = session.info
        info.pop(_VERSION, None)
        info.pop(_CHANGED, None)
        info.pop(_BUMPED, None)
        info.pop(_ATTACHED, None)
