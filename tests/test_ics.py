"""Calendar invitations, checked by parsing the bytes back with icalendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from booking_service.messaging.ics import build_ics

PARIS = ZoneInfo("Europe/Paris")
STAMP = datetime(2026, 3, 20, 9, 15, 30, tzinfo=UTC)


def _ics(**overrides) -> bytes:
    arguments = {
        "uid": "appointment-42@clinic.example",
        "sequence": 0,
        "method": "REQUEST",
        "start": datetime(2026, 3, 24, 10, 0, tzinfo=PARIS),
        "end": datetime(2026, 3, 24, 10, 45, tzinfo=PARIS),
        "summary": "Follow-up",
        "location": "12 Rue de la Paix, Lyon",
        "description": "Wear comfortable clothes.",
        "organizer_name": "Physio Lyon",
        "organizer_email": "desk@clinic.example",
        "attendee_email": "pat@example.org",
        "stamp": STAMP,
    }
    arguments.update(overrides)
    return build_ics(**arguments)


def _parse(data: bytes):
    calendar = Calendar.from_ical(data)
    [event] = calendar.walk("VEVENT")
    return calendar, event


def test_an_invitation_round_trips_with_its_fields():
    calendar, event = _parse(_ics())

    assert str(calendar["method"]) == "REQUEST"
    assert str(calendar["version"]) == "2.0"
    assert str(event["uid"]) == "appointment-42@clinic.example"
    assert event["sequence"] == 0
    assert str(event["summary"]) == "Follow-up"
    assert str(event["location"]) == "12 Rue de la Paix, Lyon"
    assert str(event["description"]) == "Wear comfortable clothes."
    assert str(event["status"]) == "CONFIRMED"
    assert event["dtstamp"].dt == STAMP


def test_times_are_written_in_utc():
    data = _ics()
    _, event = _parse(data)

    # 10:00 in Paris on 24 March 2026 is 09:00 UTC (CET, before the change to summer time).
    assert b"DTSTART:20260324T090000Z" in data
    assert b"DTEND:20260324T094500Z" in data
    assert event["dtstart"].dt == datetime(2026, 3, 24, 9, 0, tzinfo=UTC)
    assert event["dtstart"].dt.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("local_start", "utc_start"),
    [
        (datetime(2026, 3, 28, 10, 0, tzinfo=PARIS), datetime(2026, 3, 28, 9, 0, tzinfo=UTC)),  # CET
        (datetime(2026, 3, 30, 10, 0, tzinfo=PARIS), datetime(2026, 3, 30, 8, 0, tzinfo=UTC)),  # CEST
        (datetime(2026, 10, 26, 10, 0, tzinfo=PARIS), datetime(2026, 10, 26, 9, 0, tzinfo=UTC)),  # CET again
        (
            datetime(2026, 3, 24, 5, 0, tzinfo=timezone(timedelta(hours=-4))),
            datetime(2026, 3, 24, 9, 0, tzinfo=UTC),
        ),
    ],
)
def test_each_instant_is_converted_with_its_own_offset_across_dst(local_start, utc_start):
    _, event = _parse(_ics(start=local_start, end=local_start + timedelta(minutes=45)))

    assert event["dtstart"].dt == utc_start
    assert event["dtend"].dt == utc_start + timedelta(minutes=45)


def test_a_reschedule_keeps_the_uid_and_raises_the_sequence():
    first = _parse(_ics())[1]
    moved = _parse(
        _ics(
            sequence=1,
            start=datetime(2026, 3, 25, 14, 0, tzinfo=PARIS),
            end=datetime(2026, 3, 25, 14, 45, tzinfo=PARIS),
        )
    )[1]

    assert str(moved["uid"]) == str(first["uid"])
    assert moved["sequence"] > first["sequence"]
    assert moved["dtstart"].dt == datetime(2026, 3, 25, 13, 0, tzinfo=UTC)


def test_a_cancellation_has_method_cancel_and_status_cancelled():
    calendar, event = _parse(_ics(method="CANCEL", sequence=2))

    assert str(calendar["method"]) == "CANCEL"
    assert str(event["status"]) == "CANCELLED"
    assert str(event["uid"]) == "appointment-42@clinic.example"
    assert event["sequence"] == 2


def test_organizer_and_attendee_are_mailto_addresses_with_a_name():
    _, event = _parse(_ics())

    organizer = event["organizer"]
    assert str(organizer) == "mailto:desk@clinic.example"
    assert organizer.params["CN"] == "Physio Lyon"
    attendee = event["attendee"]
    assert str(attendee) == "mailto:pat@example.org"
    assert attendee.params["RSVP"] == "FALSE"


def test_organizer_and_attendee_are_optional():
    _, event = _parse(_ics(organizer_email=None, attendee_email=None, description=""))

    assert "organizer" not in event
    assert "attendee" not in event
    assert "description" not in event


def test_commas_semicolons_and_newlines_survive_the_round_trip():
    text = "Bring: shorts, a towel; and your referral.\nParking behind the building."
    data = _ics(description=text, location="Clinic; 2nd floor, room 3")
    _, event = _parse(data)

    assert str(event["description"]) == text
    assert str(event["location"]) == "Clinic; 2nd floor, room 3"
    assert b"\r\n" in data  # RFC 5545 line endings


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start": datetime(2026, 3, 24, 10, 0)}, "start must be timezone-aware"),
        ({"end": datetime(2026, 3, 24, 10, 45)}, "end must be timezone-aware"),
        ({"stamp": datetime(2026, 3, 20, 9, 0)}, "stamp must be timezone-aware"),
        ({"method": "PUBLISH"}, "method must be REQUEST or CANCEL"),
        ({"sequence": -1}, "sequence"),
        ({"uid": ""}, "uid"),
        ({"end": datetime(2026, 3, 24, 9, 0, tzinfo=PARIS)}, "end must be after start"),
    ],
)
def test_invalid_arguments_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        _ics(**overrides)
