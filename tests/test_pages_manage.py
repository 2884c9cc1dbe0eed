"""The manage page /m/<token>: what it shows, rescheduling, cancelling, the late-cancellation
policy, the calendar file, and booking the next visit. SQLite and PostgreSQL; time frozen."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from booking_service.clinic.models import ClinicSettings
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.usecases.booking import BookingRequest, book, set_status
from tests.conftest import NOW, SECRET

TUESDAY_10 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in Toronto


@pytest.fixture
def booked(database, clinic):
    """An initial assessment on Tuesday 10:00 with Maya, booked online; returns (id, token)."""

    def make(start=TUESDAY_10, language="en", **patient):
        details = {
            "first_name": "Alex",
            "last_name": "Martin",
            "email": "alex.martin@example.com",
            "phone": "416 555 0142",
            "language": language,
            "sms_consent": True,
            "email_consent": True,
            **patient,
        }
        with database.unit_of_work() as s:
            result = book(
                s,
                BookingRequest(
                    service_id=clinic.initial_id,
                    location_id=clinic.location_id,
                    practitioner_id=clinic.practitioner_ids[0],
                    start=start,
                    patient=PatientDetails(**details),
                    intake_reason="Sharp pain in the left buttock",
                    red_flags={
                        "bladder_bowel": False,
                        "saddle_numbness": False,
                        "leg_weakness": False,
                        "systemic": False,
                    },
                ),
                secret_key=SECRET,
                now=NOW,
            )
            return result.appointment.id, result.manage_token

    return make


def appointment(database, appointment_id: int) -> Appointment:
    with database.unit_of_work() as s:
        row = s.get(Appointment, appointment_id)
        s.expunge(row)
        return row


def set_policy(database, **policy) -> None:
    with database.unit_of_work() as s:
        clinic = s.get(ClinicSettings, 1)
        for key, value in policy.items():
            setattr(clinic, key, value)


def test_the_manage_page_shows_only_what_the_holder_needs(pages, booked):
    _id, token = booked()
    response = pages.get(f"/m/{token}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Tuesday, November 24, 2026 at 10:00" in html and "Toronto time (EST)" in html
    assert "Maya Chen" in html and "120 King St W" in html
    assert "a•••@example.com" in html and "••• 0142" in html
    assert "alex.martin@example.com" not in html and "4165550142" not in html
    assert "buttock" not in html  # the intake is for staff only
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert "noindex" in response.headers["X-Robots-Tag"]


def test_an_unknown_or_malformed_token_is_not_found(pages, clinic):
    for token in ("x" * 24, "short", "y" * 80):
        response = pages.get(f"/m/{token}")
        assert response.status_code == 404
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "This link is not valid" in response.get_data(as_text=True)


def test_get_never_changes_anything(pages, booked, database):
    appointment_id, token = booked()
    before = appointment(database, appointment_id)
    for path in (
        "",
        "/reschedule",
        "/cancel",
        "/calendar.ics",
        "/reschedule?start=2026-11-25T15:00Z",
        "/cancel?reason=better",
    ):
        assert pages.get(f"/m/{token}{path}").status_code == 200, path
    assert pages.get(f"/m/{token}/book-again").status_code == 405
    after = appointment(database, appointment_id)
    assert (after.status, after.start_at, after.updated_at) == (before.status, before.start_at, before.updated_at)


def test_the_calendar_file_describes_the_appointment(pages, booked):
    appointment_id, token = booked()
    response = pages.get(f"/m/{token}/calendar.ics")
    body = response.get_data(as_text=True)
    assert response.mimetype == "text/calendar"
    assert "attachment" in response.headers["Content-Disposition"]
    assert "DTSTART:20261124T150000Z" in body and "DTEND:20261124T160000Z" in body
    assert f"UID:appointment-{appointment_id}@testserver.local" in body
    assert "buttock" not in body and token not in body


def test_rescheduling_moves_the_appointment(pages, booked, database):
    appointment_id, token = booked()
    page = pages.get(f"/m/{token}/reschedule").get_data(as_text=True)
    assert "Your appointment stays with Maya Chen" in page
    values = re.findall(r'name="start" id="[^"]+" value="([^"]+)"', page)
    assert values and "2026-11-24T15:00Z" not in values  # not offered its own time again
    assert "2026-11-24T15:30Z" in values  # but half an hour later overlaps only itself: free
    response = pages.post(f"/m/{token}/reschedule", data={"start": "2026-11-25T19:00Z"})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/m/{token}")
    assert "has been moved to Wednesday, November 25, 2026 at 2:00" in pages.get(f"/m/{token}").get_data(as_text=True)
    moved = appointment(database, appointment_id)
    assert moved.start_at == datetime(2026, 11, 25, 19, 0, tzinfo=UTC)
    assert moved.ics_sequence == 1


def test_rescheduling_to_a_taken_time_offers_the_nearest_free_ones(pages, booked, database):
    _id, token = booked()
    booked(
        start=datetime(2026, 11, 25, 15, 0, tzinfo=UTC), first_name="Sam", email="sam@example.com", phone="416 555 0143"
    )
    response = pages.post(f"/m/{token}/reschedule", data={"start": "2026-11-25T15:00Z"})
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "that time was just taken" in html and "The nearest free times" in html
    assert re.search(r'id="alt-1" name="start" value="2026-11-25T1[3-6]:\d\dZ"', html)


def test_cancelling_asks_for_a_reason_then_cancels(pages, booked, database):
    appointment_id, token = booked()
    refused = pages.post(f"/m/{token}/cancel", data={})
    assert refused.status_code == 422 and 'href="#f-reason"' in refused.get_data(as_text=True)
    response = pages.post(f"/m/{token}/cancel", data={"reason": "better", "detail": "Much better now"})
    assert response.status_code == 302
    page = pages.get(f"/m/{token}").get_data(as_text=True)
    assert "Your appointment is cancelled." in page and "Book a new appointment" in page
    cancelled = appointment(database, appointment_id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_by == "patient"
    assert cancelled.cancel_reason == "Feeling better: Much better now"
    assert cancelled.late_cancellation is False
    again = pages.post(f"/m/{token}/cancel", data={"reason": "better"})
    assert again.status_code == 409 and "can no longer be cancelled online" in again.get_data(as_text=True)


def test_inside_the_window_the_block_policy_explains_and_gives_the_phone(pages, booked, database, frozen):
    appointment_id, token = booked()
    set_policy(database, late_cancellation_policy="block", cancellation_window_hours=24)
    frozen.move_to(TUESDAY_10 - timedelta(hours=5))
    manage = pages.get(f"/m/{token}").get_data(as_text=True)
    assert "less than 24 hours away, so changes are made by phone" in manage
    assert 'href="tel:+14165550100"' in manage and f"/m/{token}/cancel" not in manage
    cancel_page = pages.get(f"/m/{token}/cancel").get_data(as_text=True)
    assert "Please call us to cancel" in cancel_page and 'name="reason"' not in cancel_page
    refused = pages.post(f"/m/{token}/cancel", data={"reason": "time"})
    assert refused.status_code == 409 and "(416) 555-0100" in refused.get_data(as_text=True)
    assert pages.post(f"/m/{token}/reschedule", data={"start": "2026-11-25T15:00Z"}).status_code == 409
    assert appointment(database, appointment_id).status == "booked"


def test_inside_the_window_the_record_policy_cancels_and_marks_it_late(pages, booked, database, frozen):
    appointment_id, token = booked()
    set_policy(database, late_cancellation_policy="record", cancellation_window_hours=24)
    frozen.move_to(TUESDAY_10 - timedelta(hours=5))
    page = pages.get(f"/m/{token}/cancel").get_data(as_text=True)
    assert "this will be recorded as a late cancellation" in page
    assert pages.post(f"/m/{token}/cancel", data={"reason": "time"}).status_code == 302
    assert "recorded as a late cancellation" in pages.get(f"/m/{token}").get_data(as_text=True)
    assert appointment(database, appointment_id).late_cancellation is True


def test_after_a_completed_visit_the_page_offers_the_next_booking(pages, booked, database, frozen, clinic):
    appointment_id, token = booked()
    frozen.move_to(TUESDAY_10 + timedelta(minutes=70))
    with database.unit_of_work() as s:
        set_status(s, appointment_id, "completed", now=TUESDAY_10 + timedelta(minutes=70))
    page = pages.get(f"/m/{token}").get_data(as_text=True)
    assert "Book your next visit" in page and "Change the time" not in page
    response = pages.post(f"/m/{token}/book-again")
    location = response.headers["Location"]
    assert (
        f"service_id={clinic.follow_up_id}" in location and f"practitioner_id={clinic.practitioner_ids[0]}" in location
    )
    times = pages.get(location).get_data(as_text=True)
    start = re.findall(r'name="start" id="[^"]+" value="([^"]+)"', times)[0]
    details = pages.get(
        f"/book/details?service_id={clinic.follow_up_id}&location_id={clinic.location_id}"
        f"&practitioner_id={clinic.practitioner_ids[0]}&start={start}"
    ).get_data(as_text=True)
    # Only masked contacts (a forwarded link must not reveal them; see test_identity.py).
    assert "a•••@example.com" in details and "••• 0142" in details
    assert "alex.martin@example.com" not in details and "555 0142" not in details


def test_the_manage_page_speaks_the_patients_language(pages, booked):
    _id, token = booked(language="fr")
    html = pages.get(f"/m/{token}").get_data(as_text=True)
    assert '<html lang="fr-CA">' in html and "mardi 24 novembre 2026 à 10 h 00" in html
    html = pages.get(f"/m/{token}?lang=en").get_data(as_text=True)  # their explicit choice wins
    assert '<html lang="en-CA">' in html


def test_the_manage_link_expires_30_days_after_the_visit(pages, booked, frozen):
    _id, token = booked()
    frozen.move_to(TUESDAY_10 + timedelta(days=31))
    assert pages.get(f"/m/{token}").status_code == 404


def test_the_manage_actions_need_the_csrf_token(app, booked, database):
    appointment_id, token = booked()
    client = app.test_client()
    assert client.post(f"/m/{token}/cancel", data={"reason": "better"}).status_code == 400
    assert appointment(database, appointment_id).status == "booked"
    with database.unit_of_work() as s:
        assert s.scalars(select(Appointment.status)).one() == "booked"
