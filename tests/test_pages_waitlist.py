"""Joining the waitlist: the domain function (``waitlist.operations.join_waitlist``) and the page."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from booking_service.errors import NotFound, ValidationFailed
from booking_service.patients.models import ConsentEvent
from booking_service.patients.operations import PatientDetails
from booking_service.waitlist.models import WaitlistEntry
from booking_service.waitlist.operations import WaitlistRequest, join_waitlist
from tests.conftest import NOW

TODAY = date(2026, 11, 23)


def request_for(clinic, **changes) -> WaitlistRequest:
    values = {
        "service_id": clinic.initial_id,
        "location_id": clinic.location_id,
        "earliest_date": TODAY,
        "latest_date": date(2026, 12, 18),
        "patient": PatientDetails(
            first_name="Jordan", last_name="Singh", phone="647 555 0178", sms_consent=True, language="fr"
        ),
        "notes": "Mornings",
    }
    values.update(changes)
    return WaitlistRequest(**values)


def test_joining_the_waitlist_records_the_entry_and_the_consent(session, clinic):
    entry = join_waitlist(session, request_for(clinic), now=NOW)
    session.commit()
    assert (entry.status, entry.earliest_date, entry.latest_date, entry.notes) == (
        "waiting",
        TODAY,
        date(2026, 12, 18),
        "Mornings",
    )
    assert entry.practitioner_id is None and entry.patient.language == "fr"
    consent = session.scalars(select(ConsentEvent)).one()
    assert (consent.channel, consent.source) == ("sms", "waitlist_form")


def test_joining_again_updates_the_same_entry(session, clinic):
    first = join_waitlist(session, request_for(clinic), now=NOW)
    again = join_waitlist(session, request_for(clinic, latest_date=date(2027, 1, 15), notes=""), now=NOW)
    session.commit()
    assert again.id == first.id and again.latest_date == date(2027, 1, 15)
    other = join_waitlist(session, request_for(clinic, practitioner_id=clinic.practitioner_ids[1]), now=NOW)
    assert other.id != first.id
    assert len(session.scalars(select(WaitlistEntry)).all()) == 2


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"earliest_date": date(2026, 11, 22)}, "earliest_date"),
        ({"latest_date": date(2026, 11, 22)}, "latest_date"),
        ({"latest_date": date(2027, 3, 1)}, "latest_date"),  # beyond the 90-day horizon
        ({"patient": PatientDetails(first_name="", last_name="Singh", email="j@example.com")}, "first_name"),
    ],
)
def test_bad_dates_and_details_are_refused_and_nothing_is_written(session, clinic, changes, field):
    with pytest.raises(ValidationFailed) as caught:
        join_waitlist(session, request_for(clinic, **changes), now=NOW)
    assert field in caught.value.fields
    session.rollback()
    assert session.scalars(select(WaitlistEntry)).all() == []


def test_an_unknown_service_or_practitioner_is_refused(session, clinic):
    with pytest.raises(NotFound):
        join_waitlist(session, request_for(clinic, service_id=999), now=NOW)
    with pytest.raises(ValidationFailed):
        join_waitlist(session, request_for(clinic, practitioner_id=999), now=NOW)


def test_the_waitlist_page_adds_the_patient(app, clinic, database):
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    form_page = client.get(
        f"/waitlist?service_id={clinic.initial_id}&location_id={clinic.location_id}&practitioner_id=&from=2026-11-30"
    ).get_data(as_text=True)
    assert 'value="2026-11-30"' in form_page and 'value="2026-12-27"' in form_page
    data = {
        "service_id": clinic.initial_id,
        "location_id": clinic.location_id,
        "practitioner_id": "",
        "earliest_date": "2026-11-30",
        "latest_date": "2026-12-27",
        "first_name": "Jordan",
        "last_name": "Singh",
        "email": "",
        "phone": "647 555 0178",
        "sms_consent": "yes",
        "language": "en",
        "notes": "After 4 p.m.",
    }
    invalid = client.post("/waitlist", data={**data, "latest_date": "2026-11-01"})
    assert invalid.status_code == 422 and 'href="#f-latest_date"' in invalid.get_data(as_text=True)
    response = client.post("/waitlist", data=data)
    assert response.status_code == 302 and response.headers["Location"].endswith("/waitlist/joined")
    joined = client.get("/waitlist/joined").get_data(as_text=True)
    assert "You are on the waitlist" in joined and "Monday, November 30, 2026" in joined
    with database.unit_of_work() as s:
        entry = s.scalars(select(WaitlistEntry)).one()
        assert (entry.earliest_date, entry.latest_date, entry.notes) == (
            date(2026, 11, 30),
            date(2026, 12, 27),
            "After 4 p.m.",
        )


def test_the_waitlist_honeypot_refuses_bots(app, clinic, database):
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    response = client.post(
        "/waitlist",
        data={
            "service_id": clinic.initial_id,
            "location_id": clinic.location_id,
            "website": "x",
            "first_name": "Bot",
            "last_name": "Bot",
            "email": "bot@example.com",
            "language": "en",
            "earliest_date": "2026-11-30",
            "latest_date": "2026-12-01",
        },
    )
    assert response.status_code == 400
    with database.unit_of_work() as s:
        assert s.scalars(select(WaitlistEntry)).all() == []
