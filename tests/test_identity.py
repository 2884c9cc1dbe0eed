"""No takeover by matching: what a stranger types never changes an existing patient's record.

Finding 1 of issue 8, end to end on SQLite and PostgreSQL. The victim, Alex Tremblay, booked
with her email and phone. An attacker who knows her email (or phone) and first name books
through the API or the pages, or joins the waitlist, giving their own phone (or email). Before
the fix her record took the attacker's contact, so a signed inbound ``R`` from the attacker's
phone answered with her manage link, and a staff reschedule of her visit emailed the attacker.
Now the attacker's submission becomes a separate patient marked as a possible duplicate.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from booking_service.clinic.models import ClinicSettings
from booking_service.messaging.rendering import render
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling import tokens
from booking_service.scheduling.models import Appointment
from booking_service.usecases.booking import BookingRequest, book
from tests.conftest import NOW, SECRET, local
from tests.test_webhooks import AUTH_TOKEN, make_app, text

VICTIM_EMAIL = "alex.tremblay@example.com"
VICTIM_PHONE = "+14165550188"
ATTACKER_EMAIL = "mallory@example.net"
ATTACKER_PHONE = "+14165550999"
NO_FLAGS = {f"rf_{key}": "no" for key in ("bladder_bowel", "saddle_numbness", "leg_weakness", "systemic")}
assert AUTH_TOKEN  # the app below signs with the same token as test_webhooks' helpers


@pytest.fixture
def site(db_url, database, clinic):
    """The app as an attacker meets it: Twilio webhooks signed, CSRF off for brevity."""
    app = make_app(db_url, WTF_CSRF_ENABLED=False)
    yield app
    app.extensions["database"].dispose()


@pytest.fixture
def victim(database, clinic) -> dict:
    """Alex Tremblay's own booking (Tuesday 09:00 with Maya), made on the pages earlier."""
    with database.unit_of_work() as s:
        booked = book(
            s,
            BookingRequest(
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                practitioner_id=clinic.practitioner_ids[0],
                start=local("2026-11-24", "09:00"),
                source="online",
                patient=PatientDetails(
                    first_name="Alex",
                    last_name="Tremblay",
                    email=VICTIM_EMAIL,
                    phone=VICTIM_PHONE,
                    sms_consent=True,
                    email_consent=True,
                ),
            ),
            secret_key=SECRET,
            now=NOW,
        )
        return {
            "patient_id": booked.appointment.patient_id,
            "appointment_id": booked.appointment.id,
            "manage_url": "http://testserver.local" + tokens.manage_path(booked.manage_token),
        }


def patient(database, patient_id: int) -> Patient:
    with database.unit_of_work() as s:
        row = s.get(Patient, patient_id)
        s.expunge(row)
        return row


def patients(database) -> list[Patient]:
    with database.unit_of_work() as s:
        rows = list(s.scalars(select(Patient).order_by(Patient.id)))
        s.expunge_all()
        return rows


def assert_victim_untouched(database, victim) -> None:
    record = patient(database, victim["patient_id"])
    assert (record.first_name, record.last_name, record.email, record.phone) == (
        "Alex",
        "Tremblay",
        VICTIM_EMAIL,
        VICTIM_PHONE,
    )
    with database.unit_of_work() as s:
        mine = s.scalars(select(Appointment.id).where(Appointment.patient_id == victim["patient_id"])).all()
    assert mine == [victim["appointment_id"]]


def the_duplicate(database, victim) -> Patient:
    (duplicate,) = [p for p in patients(database) if p.id != victim["patient_id"]]
    assert duplicate.possible_duplicate_of_id == victim["patient_id"]
    return duplicate


def replies_to(site, database, phone: str) -> list[str]:
    """The bodies of the replies planned to ``phone``, rendered as the worker would send them."""
    with database.unit_of_work() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "reply", OutboxMessage.to == phone)).all()
        clinic = s.get(ClinicSettings, 1)
        return [render(s, row, settings=site.extensions["settings"], clinic=clinic, now=NOW).body for row in rows]


def api_booking(site, clinic, *, start=None, **patient_fields):
    body = {
        "service_id": clinic.initial_id,
        "location_id": clinic.location_id,
        "start": (start or local("2026-11-25", "09:00")).isoformat(),
        "patient": {"first_name": "Alex", "last_name": "Tremblay", "sms_consent": True, **patient_fields},
    }
    return site.test_client().post("/api/v1/appointments", json=body)


def page_booking(client, clinic, **fields):
    form = {
        "service_id": str(clinic.initial_id),
        "location_id": str(clinic.location_id),
        "practitioner_id": "",
        "start": "2026-11-25T14:00Z",  # Wednesday 09:00 in Toronto
        "first_name": "Alex",
        "last_name": "Tremblay",
        "email": "",
        "phone": "",
        "language": "en",
        "reason": "Sore knee",
        **NO_FLAGS,
        **fields,
    }
    assert client.post("/book/details", data=form).status_code == 302
    review = client.get("/book/review").get_data(as_text=True)
    draft_id = review.split('name="draft_id" value="', 1)[1].split('"', 1)[0]
    return client.post("/book/confirm", data={"draft_id": draft_id})


# --- the phone variant: a signed R from the attacker's phone ---------------------------------------


def test_an_api_booking_with_her_email_and_another_phone_cannot_take_her_manage_link(site, database, clinic, victim):
    response = api_booking(site, clinic, email=VICTIM_EMAIL, phone=ATTACKER_PHONE)
    assert response.status_code == 201, response.get_json()

    assert_victim_untouched(database, victim)
    duplicate = the_duplicate(database, victim)
    assert (duplicate.email, duplicate.phone) == (VICTIM_EMAIL, ATTACKER_PHONE)

    client = site.test_client()
    assert text(client, "R", from_=ATTACKER_PHONE).status_code == 200
    (reply,) = replies_to(site, database, ATTACKER_PHONE)
    assert victim["manage_url"] not in reply
    assert response.get_json()["manage_url"] in reply  # the attacker's own booking, nothing more


def test_a_page_booking_with_her_email_and_another_phone_cannot_take_her_manage_link(site, database, clinic, victim):
    client = site.test_client()
    assert page_booking(client, clinic, email=VICTIM_EMAIL, phone="416 555 0999", sms_consent="yes").status_code == 302

    assert_victim_untouched(database, victim)
    assert the_duplicate(database, victim).phone == ATTACKER_PHONE
    text(site.test_client(), "R", from_=ATTACKER_PHONE)
    (reply,) = replies_to(site, database, ATTACKER_PHONE)
    assert victim["manage_url"] not in reply


def test_joining_the_waitlist_with_her_email_and_another_phone_changes_nothing_of_hers(site, database, clinic, victim):
    client = site.test_client()
    response = client.post(
        "/waitlist",
        data={
            "service_id": clinic.initial_id,
            "location_id": clinic.location_id,
            "practitioner_id": "",
            "earliest_date": "2026-11-30",
            "latest_date": "2026-12-20",
            "first_name": "Alex",
            "last_name": "Tremblay",
            "email": VICTIM_EMAIL,
            "phone": ATTACKER_PHONE,
            "sms_consent": "yes",
            "language": "en",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)

    assert_victim_untouched(database, victim)
    assert the_duplicate(database, victim).phone == ATTACKER_PHONE
    text(site.test_client(), "R", from_=ATTACKER_PHONE)
    for reply in replies_to(site, database, ATTACKER_PHONE):
        assert victim["manage_url"] not in reply and "/m/" not in reply


# --- the email variant: a staff reschedule of her visit ------------------------------------------


def test_a_staff_reschedule_of_her_visit_is_emailed_to_her_not_to_the_attacker(site, database, clinic, victim):
    from booking_service.staff.operations import create_user

    client = site.test_client()
    assert (
        page_booking(client, clinic, email=ATTACKER_EMAIL, phone=VICTIM_PHONE, email_consent="yes").status_code == 302
    )
    assert_victim_untouched(database, victim)
    duplicate = the_duplicate(database, victim)
    assert (duplicate.email, duplicate.phone) == (ATTACKER_EMAIL, VICTIM_PHONE)

    with database.unit_of_work() as s:
        create_user(s, "desk@example.com", role="frontdesk", password="correct-horse-battery", name="Dana Desk")
    staff = site.test_client()
    staff.post("/staff/login", data={"email": "desk@example.com", "password": "correct-horse-battery"})
    moved = staff.post(
        f"/staff/appointments/{victim['appointment_id']}/reschedule", data={"start": "2026-11-24T16:00Z"}
    )
    assert moved.status_code == 302, moved.get_data(as_text=True)

    with database.unit_of_work() as s:
        about_her = s.scalars(
            select(OutboxMessage).where(OutboxMessage.appointment_id == victim["appointment_id"])
        ).all()
        to_attacker = s.scalars(select(OutboxMessage).where(OutboxMessage.to == ATTACKER_EMAIL)).all()
        rescheduled = [(m.channel, m.to) for m in about_her if m.kind == "reschedule"]
        assert ("email", VICTIM_EMAIL) in rescheduled
        assert all(m.appointment_id != victim["appointment_id"] for m in to_attacker)
        assert {m.to for m in about_her} <= {VICTIM_EMAIL, VICTIM_PHONE}


# --- what still works ------------------------------------------------------------------------------


def test_a_returning_patient_whose_details_all_agree_is_recognised(site, database, clinic, victim):
    response = api_booking(site, clinic, email=VICTIM_EMAIL.upper(), last_name="tremblay")
    assert response.status_code == 201
    assert [p.id for p in patients(database)] == [victim["patient_id"]]
    record = patient(database, victim["patient_id"])
    assert (record.email, record.phone, record.possible_duplicate_of_id) == (VICTIM_EMAIL, VICTIM_PHONE, None)


@pytest.mark.parametrize(
    "changes",
    [{"last_name": "Smith"}, {"phone": ATTACKER_PHONE}, {"email": ATTACKER_EMAIL}],
    ids=["another last name", "another phone", "another email"],
)
def test_any_conflicting_detail_makes_a_new_patient_marked_as_a_possible_duplicate(
    site, database, clinic, victim, changes
):
    fields = {"email": VICTIM_EMAIL, "phone": VICTIM_PHONE, **changes}
    assert api_booking(site, clinic, **fields).status_code == 201
    assert_victim_untouched(database, victim)
    duplicate = the_duplicate(database, victim)
    assert (duplicate.last_name, duplicate.email, duplicate.phone) == (
        fields.get("last_name", "Tremblay"),
        fields["email"],
        fields["phone"],
    )
    # The same visitor again is recognised as that new record, not made a third time.
    assert api_booking(site, clinic, start=local("2026-11-26", "09:00"), **fields).status_code == 201
    assert len(patients(database)) == 2


def test_a_contact_her_record_lacks_is_not_added_by_a_stranger(site, database, clinic):
    with database.unit_of_work() as s:
        s.add(Patient(first_name="Alex", last_name="Tremblay", email=VICTIM_EMAIL, created_at=NOW))
    assert api_booking(site, clinic, email=VICTIM_EMAIL, phone=ATTACKER_PHONE).status_code == 201
    original, duplicate = patients(database)
    assert original.phone is None
    assert (duplicate.phone, duplicate.possible_duplicate_of_id) == (ATTACKER_PHONE, original.id)


def test_staff_booking_for_a_caller_still_updates_the_contact_details(site, database, clinic, victim):
    with database.unit_of_work() as s:
        book(
            s,
            BookingRequest(
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                start=local("2026-11-26", "09:00"),
                source="staff",
                patient=PatientDetails(
                    first_name="Alex", last_name="Tremblay", email=VICTIM_EMAIL, phone="+14165550177"
                ),
            ),
            secret_key=SECRET,
            now=NOW,
        )
    (record,) = patients(database)
    assert (record.id, record.phone) == (victim["patient_id"], "+14165550177")


# --- book again from a (possibly forwarded) manage link: masked contacts only ----------------------


def book_again_details(site, client, victim, clinic) -> tuple[str, str]:
    """Follow "book your next visit" from her manage link to the details step: (start, page)."""
    token = victim["manage_url"].rsplit("/m/", 1)[1]
    location = client.post(f"/m/{token}/book-again").headers["Location"]
    times = client.get(location).get_data(as_text=True)
    start = re.findall(r'name="start" id="[^"]+" value="([^"]+)"', times)[0]
    html = client.get(
        f"/book/details?service_id={clinic.initial_id}&location_id={clinic.location_id}"
        f"&practitioner_id={clinic.practitioner_ids[0]}&start={start}"
    ).get_data(as_text=True)
    return start, html


def test_book_again_shows_her_contacts_masked_and_books_with_them(site, database, clinic, victim):
    client = site.test_client()
    start, html = book_again_details(site, client, victim, clinic)
    assert "a•••@example.com" in html and "••• 0188" in html
    assert VICTIM_EMAIL not in html and "555 0188" not in html and "5550188" not in html
    assert "Tremblay" not in html  # nor her name: the holder of a forwarded link types their own

    response = page_booking(client, clinic, start=start, practitioner_id=str(clinic.practitioner_ids[0]))
    assert response.status_code == 302, response.get_data(as_text=True)
    review_and_confirmed = client.get("/book/confirmed").get_data(as_text=True)
    assert VICTIM_EMAIL not in review_and_confirmed and "555 0188" not in review_and_confirmed
    (record,) = patients(database)  # her own record, with her own contacts
    with database.unit_of_work() as s:
        visits = s.scalars(select(Appointment).where(Appointment.patient_id == record.id)).all()
        assert len(visits) == 2
        planned = {m.to for m in s.scalars(select(OutboxMessage).where(OutboxMessage.appointment_id == visits[1].id))}
    assert planned <= {VICTIM_EMAIL, VICTIM_PHONE}


def test_book_again_with_a_new_phone_typed_books_for_that_phone_alone(site, database, clinic, victim):
    client = site.test_client()
    start, _html = book_again_details(site, client, victim, clinic)
    response = page_booking(
        client, clinic, start=start, practitioner_id=str(clinic.practitioner_ids[0]), phone=ATTACKER_PHONE
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    assert_victim_untouched(database, victim)
    (_her, new) = patients(database)
    assert (new.email, new.phone) == (None, ATTACKER_PHONE)  # typed contacts are used alone
