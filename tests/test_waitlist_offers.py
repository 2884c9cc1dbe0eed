"""Waitlist offers: a cancelled visit's time goes to the longest-waiting matching patient, by the
messaging engine; staff can send an offer from the console."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from booking_service import errors
from booking_service.clinic.models import ClinicSettings
from booking_service.config import Settings
from booking_service.errors import InvalidTransition
from booking_service.messaging.rendering import render
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.operations import PatientDetails
from booking_service.usecases.booking import BookingRequest, book, cancel
from booking_service.waitlist import offers
from booking_service.waitlist.models import WaitlistEntry, WaitlistOffer
from booking_service.waitlist.operations import WaitlistRequest, join_waitlist
from tests.conftest import NOW, SECRET, local

TUESDAY = date(2026, 11, 24)


def person(first: str, phone: str, **extra) -> PatientDetails:
    return PatientDetails(
        first_name=first,
        last_name="Waiting",
        email=f"{first.lower()}@example.com",
        phone=phone,
        sms_consent=True,
        email_consent=True,
        **extra,
    )


@pytest.fixture
def clinic(make_clinic):
    return make_clinic()


@pytest.fixture
def booked(database, clinic):
    with database.unit_of_work() as s:
        return book(
            s,
            BookingRequest(
                service_id=clinic.follow_up_id,
                location_id=clinic.location_id,
                practitioner_id=clinic.practitioner_ids[0],
                start=local("2026-11-24", "10:00"),
                patient=person("Alex", "416 555 0142"),
            ),
            secret_key=SECRET,
            now=NOW,
        ).appointment.id


def wait(database, clinic, first: str, phone: str, *, service=None, earliest=TUESDAY, latest=TUESDAY, **extra) -> int:
    with database.unit_of_work() as s:
        return join_waitlist(
            s,
            WaitlistRequest(
                service_id=service or clinic.follow_up_id,
                location_id=clinic.location_id,
                earliest_date=earliest,
                latest_date=latest,
                patient=person(first, phone, **extra),
            ),
            now=NOW,
        ).id


def test_a_cancelled_visit_is_offered_to_the_longest_waiting_matching_patient(database, clinic, booked):
    first_in_line = wait(database, clinic, "Sam", "416 555 0150")
    second = wait(database, clinic, "Kim", "416 555 0151")
    with database.unit_of_work() as s:
        cancel(s, booked, now=NOW, by_patient=True)
    with database.session() as s:
        assert s.get(WaitlistEntry, first_in_line).status == "offered"
        assert s.get(WaitlistEntry, second).status == "waiting"
        rows = list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "waitlist_offer")))
    assert sorted(r.channel for r in rows) == ["email", "sms"]
    assert {r.to for r in rows} == {"sam@example.com", "+14165550150"}
    assert all(r.appointment_id is None and r.status == "pending" for r in rows)


@pytest.mark.parametrize(
    "entry",
    [
        {"service": "initial"},  # another service
        {"earliest": date(2026, 11, 25), "latest": date(2026, 11, 30)},  # other dates
    ],
)
def test_a_cancellation_offers_nothing_to_entries_that_do_not_match(database, clinic, booked, entry):
    entry = dict(entry)  # parametrize shares the dict between engines
    service = clinic.initial_id if entry.pop("service", None) else None
    entry_id = wait(database, clinic, "Sam", "416 555 0150", service=service, **entry)
    with database.unit_of_work() as s:
        cancel(s, booked, now=NOW, by_patient=True)
    with database.session() as s:
        assert s.get(WaitlistEntry, entry_id).status == "waiting"
        assert not list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "waitlist_offer")))


def test_the_offer_text_names_the_freed_time_and_links_to_a_booking_of_that_time(database, clinic, booked):
    wait(database, clinic, "Sam", "416 555 0150")
    with database.unit_of_work() as s:
        cancel(s, booked, now=NOW, by_patient=True)
    settings = Settings(PUBLIC_BASE_URL="https://book.lakeshorephysio.ca", SECRET_KEY=SECRET)
    with database.session() as s:
        row = s.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "waitlist_offer", OutboxMessage.channel == "sms")
        ).one()
        sms = render(s, row, settings=settings, clinic=s.get(ClinicSettings, 1), now=NOW)
    assert "Tue Nov 24, 10:00 AM" in sms.body and "Lakeshore Physio" in sms.body
    # The link opens a booking already set to that time (the token is rebuilt from the secret).
    with database.session() as s:
        offer = s.scalars(select(WaitlistOffer)).one()
        link = f"https://book.lakeshorephysio.ca/w/{offer.id}/{offers.offer_token(SECRET, offer)}"
    assert link in sms.body
    assert len(sms.body) <= 160


def test_staff_can_send_an_offer_and_sending_it_twice_plans_nothing_more(database, clinic):
    entry_id = wait(database, clinic, "Sam", "416 555 0150")
    with database.unit_of_work() as s:
        entry, planned = offers.offer(s, entry_id, now=NOW)
        assert planned == 2 and entry.status == "offered"
    with database.unit_of_work() as s:
        assert offers.offer(s, entry_id, now=NOW)[1] == 0
    with database.unit_of_work() as s:
        offers.remove_entry(s, entry_id)
    with database.unit_of_work() as s, pytest.raises(InvalidTransition) as refused:
        offers.offer(s, entry_id, now=NOW + timedelta(minutes=5))
    assert (refused.value.reason, refused.value.params) == (errors.WAITLIST_ENTRY_CLOSED, {"status": "removed"})
