"""The booking draft lives server side: the session cookie carries no patient data (finding 5).

Flask's session cookie is signed, not encrypted; anyone who sees it can read it. These tests
decode it after every step of the journey the way Flask does (itsdangerous, through the app's
own serializer) and look for what the patient typed and for the manage token.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select

from booking_service.patients.models import BookingDraft
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.tokens import manage_token
from tests.conftest import SECRET
from tests.test_pages import book_through_pages, details_form

# What the journey below types (details_form of test_pages.py), in forms the cookie could hold.
SECRETS_TYPED = ("Alex", "Martin", "alex.martin", "5550142", "555 0142", "Pain down my left leg")


def cookie_contents(app, client) -> str:
    """The session cookie as Flask reads it (verified and decoded), as JSON text; "" if none."""
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    if cookie is None:
        return ""
    data = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    return json.dumps(data)


def assert_nothing_personal(app, client, *also: str) -> str:
    text = cookie_contents(app, client)
    for secret in (*SECRETS_TYPED, *also):
        assert secret not in text, (secret, text)
    for word in ("red_flags", "leg_weakness", "reason", "email", "phone", "first_name", "consent"):
        assert word not in text, (word, text)
    return text


def drafts(database) -> int:
    with database.unit_of_work() as s:
        return s.scalar(select(func.count()).select_from(BookingDraft))


def test_no_step_of_the_booking_puts_patient_data_or_the_manage_token_in_the_cookie(app, pages, clinic, database):
    steps = [
        lambda: pages.get("/"),
        lambda: pages.get(f"/book/time?service_id={clinic.initial_id}&location_id={clinic.location_id}"),
        lambda: pages.post("/book/details", data=details_form(clinic, rf_leg_weakness="yes", first_name="")),  # 422
        lambda: pages.post("/book/details", data=details_form(clinic, rf_leg_weakness="yes")),
        lambda: pages.get("/book/urgent"),
        lambda: pages.post("/book/urgent", data={"acknowledge": "yes"}),
        lambda: pages.get("/book/review"),
        lambda: pages.get("/book/details"),
    ]
    for step in steps:
        assert step().status_code < 500
        assert_nothing_personal(app, pages)
    # What was typed is kept server side, under the cookie's key, and shown again.
    assert "Pain down my left leg" in pages.get("/book/details").get_data(as_text=True)
    assert drafts(database) == 1

    review = pages.get("/book/review").get_data(as_text=True)
    draft_id = review.split('name="draft_id" value="', 1)[1].split('"', 1)[0]
    assert pages.post("/book/confirm", data={"draft_id": draft_id}).status_code == 302
    confirmed = pages.get("/book/confirmed")
    with database.unit_of_work() as s:
        appointment = s.scalars(select(Appointment)).one()
        token = manage_token(SECRET, appointment.manage_nonce)
        (row,) = s.scalars(select(BookingDraft)).all()
        assert row.data == {"appointment_id": appointment.id}  # the draft itself is gone
    assert token in confirmed.get_data(as_text=True)  # the page still shows the link
    assert_nothing_personal(app, pages, token)


def test_a_book_again_draft_keeps_the_patient_out_of_the_cookie(app, pages, clinic, database):
    assert book_through_pages(pages, clinic).status_code == 302
    with database.unit_of_work() as s:
        token = manage_token(SECRET, s.scalars(select(Appointment)).one().manage_nonce)
    other = app.test_client()
    assert other.post(f"/m/{token}/book-again").status_code == 302
    assert_nothing_personal(app, other, token)


def test_a_draft_expires_after_two_hours_and_expired_drafts_are_swept(app, pages, clinic, database, frozen):
    assert pages.post("/book/details", data=details_form(clinic)).status_code == 302
    assert pages.get("/book/review").status_code == 200
    frozen.shift(timedelta(hours=2, minutes=1))
    assert pages.get("/book/review").headers["Location"].endswith("/")  # ignored: start again
    stranger = app.test_client()
    stranger.application.config["WTF_CSRF_ENABLED"] = False
    assert stranger.post("/book/details", data=details_form(clinic, start="2026-11-23T16:00Z")).status_code == 302
    assert drafts(database) == 1  # the expired one was removed when the new one was made


def test_a_forged_or_unknown_draft_key_is_just_no_draft(app, pages, clinic):
    with pages.session_transaction() as cookie:
        cookie["booking_draft"] = "made-up-key"
        cookie["booked"] = "made-up-key"
    assert pages.get("/book/review").headers["Location"].endswith("/")
    assert pages.get("/book/confirmed").headers["Location"].endswith("/")
