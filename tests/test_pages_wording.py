"""The patient pages' small print, as a new receptionist found it: the spam trap must carry its
name, attributes must not be escaped twice, a time ending a sentence ends it once, the zone is
not bracketed twice, a service named with its length is not told it twice, and "Earlier week"
appears only when earlier days may hold a time. SQLite and PostgreSQL; time frozen at Monday
2026-11-23 08:00 in Toronto."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from booking_service.clinic.models import Service
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.usecases.booking import BookingRequest, book
from booking_service.waitlist.models import WaitlistEntry
from tests.conftest import NOW, SECRET

FIRST_FREE = "2026-11-23T15:00Z"  # Monday 10:00 in Toronto
NO_FLAGS = {f"rf_{key}": "no" for key in ("bladder_bowel", "saddle_numbness", "leg_weakness", "systemic")}


def html_of(response) -> str:
    return response.get_data(as_text=True)


def trap_name(html: str) -> str:
    """The name of the spam trap's input, as rendered."""
    match = re.search(r'<div class="hp"[^>]*>.*?<input [^>]*name="([^"]*)"', html, re.S)
    assert match, "no spam trap on the page"
    return match.group(1)


def details_form(clinic, **changes) -> dict[str, str]:
    form = {
        "service_id": str(clinic.initial_id),
        "location_id": str(clinic.location_id),
        "practitioner_id": "",
        "start": FIRST_FREE,
        "first_name": "Alex",
        "last_name": "Martin",
        "email": "alex.martin@example.com",
        "phone": "416 555 0142",
        "language": "en",
        "sms_consent": "yes",
        "email_consent": "yes",
        "reason": "Pain down my left leg",
        **NO_FLAGS,
    }
    form.update(changes)
    return form


# --- the spam trap and attributes ---------------------------------------------------------------------


def test_the_details_form_spam_trap_has_its_name_and_a_filled_trap_is_refused(pages, clinic, database):
    html = html_of(
        pages.get(f"/book/details?service_id={clinic.initial_id}&location_id={clinic.location_id}&start={FIRST_FREE}")
    )
    name = trap_name(html)
    assert name == "website"

    refused = pages.post("/book/details", data=details_form(clinic, **{name: "http://spam.example"}))

    assert refused.status_code == 400
    assert pages.get("/book/review").headers["Location"].endswith("/")  # no draft was kept
    with database.unit_of_work() as s:
        assert s.scalars(select(Appointment)).first() is None
    assert pages.post("/book/details", data=details_form(clinic, **{name: ""})).status_code == 302


def test_the_waitlist_form_spam_trap_has_its_name_and_a_filled_trap_is_refused(pages, clinic, database):
    html = html_of(pages.get(f"/waitlist?service_id={clinic.initial_id}&location_id={clinic.location_id}"))
    name = trap_name(html)
    assert name == "website"
    data = {
        "service_id": clinic.initial_id,
        "location_id": clinic.location_id,
        "practitioner_id": "",
        "earliest_date": "2026-11-30",
        "latest_date": "2026-12-27",
        "first_name": "Jordan",
        "last_name": "Singh",
        "phone": "647 555 0178",
        "sms_consent": "yes",
        "language": "en",
    }

    assert pages.post("/waitlist", data={**data, name: "http://spam.example"}).status_code == 400
    with database.unit_of_work() as s:
        assert s.scalars(select(WaitlistEntry)).first() is None
    assert pages.post("/waitlist", data=data).status_code == 302


def test_field_attributes_render_once_escaped(pages, clinic):
    details = html_of(
        pages.get(f"/book/details?service_id={clinic.initial_id}&location_id={clinic.location_id}&start={FIRST_FREE}")
    )
    waitlist = html_of(pages.get(f"/waitlist?service_id={clinic.initial_id}&location_id={clinic.location_id}"))

    assert "&#34;" not in details and "&#34;" not in waitlist
    for field in ("first_name", "last_name", "email"):
        assert re.search(rf'<input [^>]*id="f-{field}"[^>]*\sspellcheck="false"', details), field
    assert re.search(r'<input [^>]*id="f-earliest_date"[^>]*\smin="2026-11-23" max="\d{4}-\d\d-\d\d"', waitlist)


# --- times, zones and durations ------------------------------------------------------------------------


@pytest.fixture
def booked(database, clinic):
    with database.unit_of_work() as s:
        result = book(
            s,
            BookingRequest(
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                practitioner_id=clinic.practitioner_ids[0],
                start=datetime(2026, 11, 24, 15, 0, tzinfo=UTC),
                patient=PatientDetails(first_name="Alex", last_name="Martin", email="alex@example.com"),
            ),
            secret_key=SECRET,
            now=NOW,
        )
        return result.manage_token


def test_a_reschedule_to_an_afternoon_ends_its_sentence_with_one_period(pages, booked):
    response = pages.post(f"/m/{booked}/reschedule", data={"start": "2026-11-25T19:00Z"})  # Wednesday 2 p.m.
    assert response.status_code == 302

    html = html_of(pages.get(f"/m/{booked}"))

    assert re.search(r"has been moved to Wednesday, November 25, 2026 at 2:00\Wp\.m\.<", html), html
    assert "p.m.." not in html


def test_the_zone_is_named_without_brackets_inside_brackets(pages, booked, clinic):
    manage = html_of(pages.get(f"/m/{booked}"))
    pages.post("/book/details", data=details_form(clinic))
    review = html_of(pages.get("/book/review"))

    for html in (manage, review):
        assert "Toronto time (EST)" in html
        assert "(Toronto time (EST))" not in html and "))" not in html


def test_a_service_named_with_its_length_is_not_told_it_twice(pages, clinic, database):
    with database.unit_of_work() as s:
        s.get(Service, clinic.follow_up_id).name = "Follow-up (30 min)"
    start = html_of(pages.get("/"))
    times = html_of(pages.get(f"/book/time?service_id={clinic.follow_up_id}&location_id={clinic.location_id}"))
    pages.post("/book/details", data=details_form(clinic, service_id=str(clinic.follow_up_id)))
    review = html_of(pages.get("/book/review"))

    assert "Follow-up (30 min)" in start and '<span class="choice-meta">30 min</span>' not in start
    assert '<span class="choice-meta">60 min</span>' in start  # the initial assessment's name says nothing
    assert "Follow-up (30 min)</strong> · Downtown" in times
    assert "Follow-up (30 min)</dd>" in review and "(30 min) (30 min)" not in review
    assert "Initial assessment (60 min)" in html_of(
        pages.get(f"/book/time?service_id={clinic.initial_id}&location_id={clinic.location_id}")
    )


# --- "Earlier week" --------------------------------------------------------------------------------------


def earlier_link(html: str) -> str | None:
    match = re.search(r'<a [^>]*rel="prev"[^>]*href="[^"]*from=([0-9-]+)', html)
    return match.group(1) if match else None


def test_earlier_week_is_not_offered_on_the_week_the_picker_opened_on(pages, clinic, frozen):
    frozen.move_to(datetime(2026, 11, 28, 15, 0, tzinfo=UTC))  # Saturday: nothing free until Monday
    base = f"/book/time?service_id={clinic.initial_id}&location_id={clinic.location_id}&practitioner_id="

    opened = html_of(pages.get(base))
    assert "Mon, Nov 30 to Sun, Dec 6" in opened
    assert earlier_link(opened) is None and "Earlier week" not in opened
    # The same week asked for by date: the weekend before it holds no time either.
    assert earlier_link(html_of(pages.get(base + "&from=2026-11-30"))) is None
    # A week later goes back a whole week.
    assert earlier_link(html_of(pages.get(base + "&from=2026-12-07"))) == "2026-11-30"


def test_earlier_week_is_offered_when_the_days_before_hold_free_times(pages, clinic):
    base = f"/book/time?service_id={clinic.initial_id}&location_id={clinic.location_id}&practitioner_id="

    html = html_of(pages.get(base + "&from=2026-11-25"))  # Wednesday; Monday and Tuesday have times

    assert "Wed, Nov 25 to Tue, Dec 1" in html
    assert earlier_link(html) == "2026-11-23"
