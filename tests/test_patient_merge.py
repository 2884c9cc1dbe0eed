"""Staff see possible duplicates side by side and merge them. SQLite and PostgreSQL.

A stranger's conflicting details make a new record marked as a possible duplicate
(``test_identity.py``); here the desk compares and merges: everything keyed by the merged record
moves to the kept one, the kept contacts stay unless ticked, the merged record is removed, and
two records with overlapping visits are refused rather than merged silently.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from booking_service.outbox.models import OutboxMessage
from booking_service.patients.merge import MergeRefused, merge_patients
from booking_service.patients.models import ConsentEvent, Patient
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.usecases.booking import BookingRequest, book
from booking_service.waitlist.models import WaitlistEntry
from booking_service.waitlist.operations import WaitlistRequest, join_waitlist
from tests.conftest import NOW, SECRET, local
from tests.console_fixtures import login

pytest_plugins = ["tests.console_fixtures"]

EMAIL = "alex.tremblay@example.com"
HER_PHONE = "+14165550188"
OTHER_PHONE = "+14165550999"


def booking(database, clinic, start, practitioner: int = 0, **patient) -> int:
    details = {"first_name": "Alex", "last_name": "Tremblay", "email": EMAIL, "phone": HER_PHONE, **patient}
    with database.unit_of_work() as s:
        booked = book(
            s,
            BookingRequest(
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                practitioner_id=clinic.practitioner_ids[practitioner],
                start=start,
                source="online",
                patient=PatientDetails(sms_consent=True, email_consent=True, **details),
            ),
            secret_key=SECRET,
            now=NOW,
        )
        return booked.appointment.patient_id


@pytest.fixture
def pair(database, clinic) -> tuple[int, int]:
    """Her record (a Tuesday visit), and a possible duplicate made on the pages with her email and
    another phone (a Wednesday visit, and a waitlist entry)."""
    original = booking(database, clinic, local("2026-11-24", "09:00"))
    duplicate = booking(database, clinic, local("2026-11-25", "09:00"), phone=OTHER_PHONE)
    with database.unit_of_work() as s:
        join_waitlist(
            s,
            WaitlistRequest(
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                earliest_date=local("2026-11-30", "00:00").date(),
                latest_date=local("2026-12-10", "00:00").date(),
                patient=PatientDetails(first_name="Alex", last_name="Tremblay", email=EMAIL, phone=OTHER_PHONE),
            ),
            now=NOW,
        )
        assert s.get(Patient, duplicate).possible_duplicate_of_id == original
    return original, duplicate


def owners(database, model) -> set[int | None]:
    with database.unit_of_work() as s:
        return set(s.scalars(select(model.patient_id)))


def test_merging_moves_everything_keyed_by_the_patient_and_removes_the_duplicate(database, clinic, pair):
    original, duplicate = pair
    with database.unit_of_work() as s:
        merged = merge_patients(s, keep_id=original, merge_id=duplicate, now=NOW)
        assert merged.moved["appointments"] == 1 and merged.moved["waitlist_entries"] == 1
    with database.unit_of_work() as s:
        assert s.get(Patient, duplicate) is None
        kept = s.get(Patient, original)
        assert (kept.email, kept.phone, kept.possible_duplicate_of_id) == (EMAIL, HER_PHONE, None)
        assert s.scalar(select(func.count()).select_from(Appointment)) == 2
        # Pending messages of the moved visit now go to the kept phone.
        pending_sms = s.scalars(
            select(OutboxMessage.to).where(OutboxMessage.channel == "sms", OutboxMessage.status == "pending")
        ).all()
        assert pending_sms and set(pending_sms) == {HER_PHONE}
    for model in (Appointment, OutboxMessage, ConsentEvent, WaitlistEntry):
        assert owners(database, model) == {original}, model


def test_staff_may_take_the_duplicates_phone_with_its_consent(database, clinic, pair):
    original, duplicate = pair
    with database.unit_of_work() as s:
        merge_patients(s, keep_id=original, merge_id=duplicate, take=frozenset({"phone"}), now=NOW)
    with database.unit_of_work() as s:
        kept = s.get(Patient, original)
        assert (kept.email, kept.phone) == (EMAIL, OTHER_PHONE)


def test_two_records_with_overlapping_visits_are_refused_with_a_409_and_nothing_changes(database, clinic):
    original = booking(database, clinic, local("2026-11-24", "09:00"), practitioner=0)
    duplicate = booking(database, clinic, local("2026-11-24", "09:30"), practitioner=1, phone=OTHER_PHONE)
    with database.unit_of_work() as s:
        with pytest.raises(MergeRefused) as refused:
            merge_patients(s, keep_id=original, merge_id=duplicate, now=NOW)
        s.rollback()
    assert refused.value.status == 409 and "same time" in refused.value.message
    with database.unit_of_work() as s:
        assert s.get(Patient, duplicate) is not None
        assert s.scalars(select(Appointment.patient_id).order_by(Appointment.id)).all() == [original, duplicate]


def test_the_database_itself_refuses_moving_a_visit_onto_an_overlapping_patient(database, clinic):
    """The patient-overlap guard (exclusion constraint or trigger) is the last word."""
    original = booking(database, clinic, local("2026-11-24", "09:00"), practitioner=0)
    duplicate = booking(database, clinic, local("2026-11-24", "09:30"), practitioner=1, phone=OTHER_PHONE)
    with database.unit_of_work() as s:
        from sqlalchemy import update
        from sqlalchemy.exc import DBAPIError

        with pytest.raises(DBAPIError, match="patient_overlap"), s.begin_nested():
            s.execute(update(Appointment).where(Appointment.patient_id == duplicate).values(patient_id=original))
        s.rollback()


# --- the console ---------------------------------------------------------------------------------


def test_the_desk_sees_the_duplicate_side_by_side_and_merges_it(console_app, users, database, clinic, pair):
    original, duplicate = pair
    client = console_app.test_client()
    login(client)
    page = client.get(f"/staff/patients/{duplicate}").get_data(as_text=True)
    assert "Possible duplicate of" in page and "Alex Tremblay" in page
    assert "(416) 555-0188" in page or "416-555-0188" in page or "+14165550188" in page
    assert 'name="take" value="phone"' in page and 'name="take" value="email"' not in page  # same email
    assert f"/staff/patients/{duplicate}" in client.get(f"/staff/patients/{original}").get_data(as_text=True)

    done = client.post(f"/staff/patients/{original}/merge", data={"merge_id": duplicate})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/staff/patients/{original}")
    assert f"Merged patient #{duplicate}" in client.get(done.headers["Location"]).get_data(as_text=True)
    assert client.get(f"/staff/patients/{duplicate}").status_code == 404
    assert owners(database, Appointment) == {original}


def test_a_practitioner_cannot_merge(console_app, users, database, clinic, pair):
    original, duplicate = pair
    client = console_app.test_client()
    login(client, "maya@example.com")
    assert client.post(f"/staff/patients/{original}/merge", data={"merge_id": duplicate}).status_code == 403
    with database.unit_of_work() as s:
        assert s.get(Patient, duplicate) is not None
