"""The per-process catalogue cache (``booking_service.clinic.cache``), on SQLite and PostgreSQL.

A change made anywhere (the console's and the clinic file's write functions, or a plain ORM
change) raises ``catalogue_version`` in its own transaction, and every other process (here: a real
second OS process, and a second Database with its own cache in this process) sees the change at
its next transaction; a change rolled back leaves nothing behind; a transaction that changed the
catalogue reads its own changes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import select, update

from booking_service.clinic import catalogue, operations
from booking_service.clinic.cache import CatalogueCache, bump_catalogue, cache_for, read_version
from booking_service.clinic.catalogue import ClinicFields, LocationFields, PractitionerFields, ServiceFields
from booking_service.clinic.models import Closure, Location, Practitioner, Service, WorkingHours
from booking_service.clinic.operations import HoursRow
from booking_service.clinic.queries import active_services, bookable, get_clinic, practitioners_for
from booking_service.config import PROJECT_ROOT
from booking_service.db import Database
from booking_service.scheduling import slots

TZ_DAY = date(2026, 11, 24)  # a Tuesday


def version(database: Database) -> int:
    with database.session() as session:
        return read_version(session)


def service_names(database: Database) -> list[str]:
    with database.session() as session:
        return [s.name for s in active_services(session, online_only=False)]


# --- another process --------------------------------------------------------------------------------

_RENAME_IN_ANOTHER_PROCESS = textwrap.dedent(
    """
    import sys
    from datetime import date

    import booking_service.models  # noqa: F401
    from booking_service.clinic import catalogue, operations
    from booking_service.clinic.catalogue import ServiceFields
    from booking_service.clinic.models import Service
    from booking_service.db import Database

    database_url, service_id, new_name, closed_day = sys.argv[1:]
    database = Database(database_url)
    with database.unit_of_work() as session:
        service = session.get(Service, int(service_id))
        catalogue.save_service(session, service.id, ServiceFields(
            key=service.key, name=new_name, name_fr=service.name_fr, kind=service.kind,
            duration_minutes=service.duration_minutes, buffer_minutes=service.buffer_minutes,
            practitioner_ids=[p.id for p in service.practitioners],
        ))
    with database.unit_of_work() as session:
        operations.add_closure(session, date.fromisoformat(closed_day), "Holiday")
    database.dispose()
    """
)


def test_a_change_made_in_another_process_is_seen_by_this_one_at_its_next_request(make_clinic, app, db_url):
    clinic = make_clinic()
    client = app.test_client()
    monday = date.today() + timedelta(days=14 - date.today().weekday())  # a Monday two weeks ahead
    query = (
        f"/api/v1/availability?service_id={clinic.follow_up_id}&location_id={clinic.location_id}"
        f"&practitioner_id={clinic.practitioner_ids[0]}&start={monday}&end={monday}"
    )
    assert [s["name"] for s in client.get("/api/v1/services").get_json()["services"]] == [
        "Initial assessment",
        "Follow-up",
    ]
    assert client.get(query).get_json()["slots"]  # the cache is warm: the day is open

    subprocess.run(
        [sys.executable, "-c", _RENAME_IN_ANOTHER_PROCESS, db_url, str(clinic.follow_up_id), "Review", str(monday)],
        cwd=PROJECT_ROOT,
        check=True,
        timeout=60,
    )

    assert [s["name"] for s in client.get("/api/v1/services").get_json()["services"]] == [
        "Initial assessment",
        "Review",
    ]
    assert client.get(query).get_json()["slots"] == []  # closed now


def test_two_databases_in_one_process_keep_separate_caches_and_each_sees_the_others_change(
    make_clinic, database, db_url
):
    clinic = make_clinic()
    other = Database(db_url)
    try:
        assert service_names(other) == ["Initial assessment", "Follow-up"]
        with database.session() as session, other.session() as elsewhere:
            assert cache_for(session) is not cache_for(elsewhere)
        with database.unit_of_work() as session:
            get_clinic(session)  # the settings row attached from this process's cache
            session.get(Service, clinic.initial_id).name = "Assessment"  # no explicit bump: the net
        assert service_names(other) == ["Assessment", "Follow-up"]
    finally:
        other.dispose()


# --- every write function raises the version --------------------------------------------------------


def _hours(session, c) -> None:
    operations.set_weekly_hours(
        session, c.practitioner_ids[0], c.location_id, [HoursRow(weekday=5, start=time(9), end=time(12))]
    )


def _add_closure(session, c) -> None:
    operations.add_closure(session, TZ_DAY, "Remembrance Day", c.location_id)


def _remove_closure(session, c) -> None:
    operations.remove_closure(session, session.scalar(select(Closure.id)))


def _policy(session, c) -> None:
    operations.update_policy(session, slot_step_minutes=30)


def _clinic(session, c) -> None:
    catalogue.update_clinic(
        session,
        ClinicFields(
            name="Harbour Physio",
            phone="+14165550100",
            email=None,
            address="",
            country="CA",
            timezone="America/Toronto",
            languages=["en", "fr"],
        ),
    )


def _location(session, c) -> None:
    catalogue.save_location(
        session,
        None,
        LocationFields(key=None, name="Midtown", address="2300 Yonge St", phone=None, timezone="America/Toronto"),
    )


def _practitioner(session, c) -> None:
    catalogue.save_practitioner(
        session,
        c.practitioner_ids[1],
        PractitionerFields(
            key=None,
            first_name="Daniel",
            last_name="Okafor",
            profession="Physiotherapist",
            location_ids=[c.location_id],
            service_ids=[c.initial_id],  # no longer offers the follow-up
        ),
    )


def _service(session, c) -> None:
    catalogue.save_service(
        session,
        None,
        ServiceFields(key=None, name="Acupuncture", name_fr=None, kind="other", duration_minutes=45),
    )


WRITES: list[tuple[str, Callable]] = [
    ("set_weekly_hours", _hours),
    ("add_closure", _add_closure),
    ("remove_closure", _remove_closure),
    ("update_policy", _policy),
    ("update_clinic", _clinic),
    ("save_location", _location),
    ("save_practitioner", _practitioner),
    ("save_service", _service),
]


@pytest.mark.parametrize("write", [w for _, w in WRITES], ids=[name for name, _ in WRITES])
def test_every_catalogue_write_function_raises_the_version_in_its_transaction(make_clinic, database, write):
    clinic = make_clinic()
    with database.unit_of_work() as session:
        session.add(Closure(day=TZ_DAY - timedelta(days=1), name="Earlier", location_id=None))
    before = version(database)

    with database.unit_of_work() as session:
        write(session, clinic)
        assert version(database) == before  # not before the commit: another process sees the old one

    assert version(database) > before


def test_the_explicit_bump_raises_the_version_once_per_transaction(make_clinic, database):
    make_clinic()
    before = version(database)
    with database.unit_of_work() as session:
        bump_catalogue(session)
        bump_catalogue(session)
    assert version(database) == before + 1


def test_time_off_is_not_catalogue_and_leaves_the_version_alone(make_clinic, database):
    clinic = make_clinic()
    before = version(database)
    start = datetime.fromisoformat("2026-11-24T15:00:00+00:00")
    with database.unit_of_work() as session:
        operations.add_time_off(session, clinic.practitioner_ids[0], start, start + timedelta(hours=2))
    assert version(database) == before


# --- the safety net, rollbacks, own changes --------------------------------------------------------------


def test_a_direct_orm_change_without_the_bump_is_caught_by_the_before_flush_net(make_clinic, database, db_url):
    clinic = make_clinic()
    other = Database(db_url)
    try:
        with other.session() as session:
            assert {p.id for p in practitioners_for(session, location_id=clinic.location_id)} == set(
                clinic.practitioner_ids
            )
        before = version(database)
        with database.unit_of_work() as session:
            session.get(Practitioner, clinic.practitioner_ids[1]).locations = []
        assert version(database) == before + 1
        with other.session() as session:
            assert [p.id for p in practitioners_for(session, location_id=clinic.location_id)] == [
                clinic.practitioner_ids[0]
            ]
    finally:
        other.dispose()


def test_a_bulk_orm_update_of_a_catalogue_table_is_caught_too(make_clinic, database):
    clinic = make_clinic()
    assert service_names(database) == ["Initial assessment", "Follow-up"]  # warm
    before = version(database)
    with database.unit_of_work() as session:
        session.execute(update(Service).where(Service.id == clinic.follow_up_id).values(name="Review"))
    assert version(database) == before + 1
    assert service_names(database) == ["Initial assessment", "Review"]


def test_a_rolled_back_change_does_not_poison_the_cache(make_clinic, database):
    clinic = make_clinic()
    assert service_names(database) == ["Initial assessment", "Follow-up"]
    cache = cache_for(database.session())  # binds only: no connection is taken
    loads = cache.loads
    before = version(database)

    session = database.session()
    session.get(Service, clinic.follow_up_id).name = "Changed then undone"
    session.add(
        WorkingHours(
            practitioner_id=clinic.practitioner_ids[0],
            location_id=clinic.location_id,
            weekday=6,
            start_time=time(9),
            end_time=time(10),
        )
    )
    # Its own transaction sees its own changes (the database, not the cache) ...
    assert [s.name for s in active_services(session, online_only=False)] == [
        "Initial assessment",
        "Changed then undone",
    ]
    session.rollback()
    session.close()

    # ... and once it is rolled back nothing of it is left: same version, same copy, old name.
    assert version(database) == before
    assert service_names(database) == ["Initial assessment", "Follow-up"]
    assert cache.loads == loads


def test_a_transaction_that_changed_the_catalogue_sees_its_new_rows(make_clinic, database):
    clinic = make_clinic()
    assert service_names(database) == ["Initial assessment", "Follow-up"]  # warm
    with database.unit_of_work() as session:
        _service(session, clinic)
        _add_closure(session, clinic)
        assert [s.name for s in active_services(session, online_only=False)][-1] == "Acupuncture"
        location = session.get(Location, clinic.location_id)
        people = practitioners_for(session, location_id=clinic.location_id)
        (calendar, _) = slots.load_calendars(
            session, location=location, practitioners=people, first_day=TZ_DAY, last_day=TZ_DAY
        )
        assert calendar.closed_days == {TZ_DAY}


def test_an_edit_through_an_instance_attached_from_the_cache_is_stored(make_clinic, database, db_url):
    clinic = make_clinic()
    assert service_names(database) == ["Initial assessment", "Follow-up"]  # warm
    with database.unit_of_work() as session:
        service, _location, _people = bookable(
            session, service_id=clinic.initial_id, location_id=clinic.location_id, practitioner_id=None
        )
        service.duration_minutes = 75
        get_clinic(session).languages.append("xx")  # in place, on the session's own copy
    other = Database(db_url)
    try:
        with other.session() as session:
            assert session.get(Service, clinic.initial_id).duration_minutes == 75
    finally:
        other.dispose()
    with database.session() as session:
        assert get_clinic(session).languages == ["en", "fr"]  # the cached list was not touched
        assert session.get(Service, clinic.initial_id).duration_minutes == 75


def test_a_long_lived_session_sees_a_change_committed_elsewhere_at_its_next_transaction(make_clinic, database, db_url):
    make_clinic()
    session = database.session()  # a worker's or a command's session: kept across transactions
    try:
        assert get_clinic(session).name == "Lakeshore Physio"
        session.commit()
        other = Database(db_url)
        try:
            with other.unit_of_work() as elsewhere:
                operations.update_policy(elsewhere, slot_step_minutes=30)
        finally:
            other.dispose()
        assert get_clinic(session).slot_step_minutes == 30
    finally:
        session.close()


def test_cached_and_database_calendars_are_identical(make_clinic, database):
    clinic = make_clinic()
    with database.unit_of_work() as session:
        operations.add_closure(session, TZ_DAY + timedelta(days=1), "Holiday", None)
        operations.set_weekly_hours(
            session,
            clinic.practitioner_ids[0],
            clinic.location_id,
            [
                HoursRow(weekday=1, start=time(9), end=time(17), break_start=time(12), break_end=time(13)),
                HoursRow(weekday=2, start=time(10), end=time(14), valid_until=TZ_DAY),
                HoursRow(weekday=3, start=time(8), end=time(11), valid_from=TZ_DAY + timedelta(days=30)),
            ],
        )

    def calendars(session):
        location = session.get(Location, clinic.location_id)
        people = [session.get(Practitioner, pid) for pid in clinic.practitioner_ids]
        return slots.load_calendars(
            session, location=location, practitioners=people, first_day=TZ_DAY, last_day=TZ_DAY + timedelta(days=9)
        )

    with database.session() as session:
        cached = calendars(session)
    with database.session() as session:
        bump_catalogue(session)  # this transaction "changed" the catalogue: it reads the database
        from_database = calendars(session)
        session.rollback()
    assert [(c.practitioner_id, set(c.hours), c.closed_days, c.busy) for c in cached] == [
        (c.practitioner_id, set(c.hours), c.closed_days, c.busy) for c in from_database
    ]


def test_a_cache_loads_once_per_version_across_threads(make_clinic, database):
    import threading

    make_clinic()
    cache = CatalogueCache()
    seen: list[int] = []

    def read() -> None:
        with database.session() as session:
            seen.append(cache.get(session).version)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1 and cache.loads == 1
