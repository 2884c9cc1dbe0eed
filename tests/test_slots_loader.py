"""The database side of the slot search (booking_service.scheduling.slots), on SQLite and
PostgreSQL: what load_calendars hands the engine."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from booking_service.clinic.models import Location, Practitioner, TimeOff
from booking_service.scheduling import slots
from booking_service.scheduling.availability import Interval

TUESDAY = date(2026, 11, 24)


def test_load_calendars_reads_busy_time_as_utc_including_unflushed_changes(make_clinic, session):
    clinic = make_clinic()
    practitioners = [session.get(Practitioner, pid) for pid in clinic.practitioner_ids]
    location = session.get(Location, clinic.location_id)
    start = datetime(2026, 11, 24, 15, tzinfo=UTC)
    # Not flushed: the loader's statements must see it all the same, as an ORM query would.
    session.add(TimeOff(practitioner_id=practitioners[0].id, start_at=start, end_at=start + timedelta(hours=2)))

    calendars = slots.load_calendars(
        session,
        location=location,
        practitioners=practitioners,
        first_day=TUESDAY,
        last_day=TUESDAY,
    )

    assert [c.practitioner_id for c in calendars] == clinic.practitioner_ids
    assert calendars[0].busy == (Interval(start, start + timedelta(hours=2)),)
    assert all(b.start.tzinfo is UTC and b.end.tzinfo is UTC for b in calendars[0].busy)
    assert calendars[1].busy == ()
    assert len(calendars[0].hours) == 5


def test_utc_keeps_utc_values_and_converts_the_others():
    instant = datetime(2026, 11, 24, 15, tzinfo=UTC)

    assert slots._utc(instant) is instant
    assert slots._utc(instant.replace(tzinfo=None)) == instant  # SQLite: naive UTC
    converted = slots._utc(instant.astimezone(timezone(timedelta(hours=-5))))
    assert converted == instant and converted.tzinfo is UTC
