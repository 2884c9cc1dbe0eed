"""Booking operations, on both engines: book, reschedule, cancel, status changes, tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from booking_service.errors import (
    InvalidTransition,
    LateCancellationBlocked,
    NotFound,
    PatientBusy,
    SlotTaken,
    SlotUnavailable,
    ValidationFailed,
)
from booking_service.patients.models import ConsentEvent, Patient
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.operations import find_by_token, manage_token_for
from booking_service.usecases.booking import BookingRequest, book, cancel, reschedule, set_status
from tests.conftest import NOW, SECRET, local

TUESDAY = "2026-11-24"


def alex(**overrides) -> PatientDetails:
    values = dict(
        first_name="Alex",
        last_name="Martin",
        email="Alex.Martin@Example.com",
        phone="416 555 0142",
        sms_consent=True,
        email_consent=True,
    )
    values.update(overrides)
    return PatientDetails(**values)


@pytest.fixture
def clinic(make_clinic):
    return make_clinic()


@pytest.fixture
def booked(database, clinic):
    """Book ``start`` (local Toronto wall time on TUESDAY unless a datetime) and commit."""

    def make(
        hhmm: str = "10:00",
        *,
        patient: PatientDetails | None = None,
        practitioner_index: int | None = 0,
        service: str = "initial",
        day: str = TUESDAY,
        now=NOW,
        source: str = "online",
    ):
        with database.unit_of_work() as s:
            result = book(
                s,
                BookingRequest(
                    service_id=clinic.initial_id if service == "initial" else clinic.follow_up_id,
                    location_id=clinic.location_id,
                    practitioner_id=None if practitioner_index is None else clinic.practitioner_ids[practitioner_index],
                    start=local(day, hhmm),
                    patient=patient or alex(),
                    source=source,
                ),
                secret_key=SECRET,
                now=now,
            )
            return result.appointment.id, result.manage_token

    return make


def test_booking_stores_utc_times_and_normalised_contact_details(database, booked):
    appointment_id, _ = booked("10:00")
    with database.session() as s:
        appointment = s.get(Appointment, appointment_id)
        assert appointment.start_at == local(TUESDAY, "10:00")
        assert appointment.start_at.utcoffset() == timedelta(0)
        assert appointment.end_at - appointment.start_at == timedelta(minutes=60)
        assert appointment.status == "booked"
        assert appointment.patient.email == "alex.martin@example.com"
        assert appointment.patient.phone == "+14165550142"


def test_the_same_slot_cannot_be_booked_twice(booked):
    booked("10:00")
    with pytest.raises(SlotTaken) as taken:
        booked("10:00", patient=alex(first_name="Sam", email="sam@example.com", phone=None))
    alternatives = taken.value.extra["alternatives"]
    assert alternatives and all(slot.start != local(TUESDAY, "10:00") for slot in alternatives)


def test_first_available_picks_another_practitioner_when_one_is_taken(database, booked, clinic):
    booked("10:00", practitioner_index=0)
    second_id, _ = booked("10:00", patient=alex(first_name="Sam", email="sam@example.com"), practitioner_index=None)
    with database.session() as s:
        assert s.get(Appointment, second_id).practitioner_id == clinic.practitioner_ids[1]


@pytest.mark.parametrize(
    "hhmm, day, reason",
    [
        ("10:07", TUESDAY, "off the slot grid"),
        ("07:00", TUESDAY, "before opening"),
        ("12:30", TUESDAY, "during lunch"),
        ("16:30", TUESDAY, "a 60-minute visit would run past closing"),
        ("10:00", "2026-11-28", "a Saturday"),
        ("10:00", "2027-03-02", "beyond the 90-day horizon"),
        ("10:00", "2026-11-20", "in the past"),
    ],
)
def test_a_start_that_is_not_a_slot_is_refused_as_unavailable(booked, hhmm, day, reason):
    with pytest.raises(SlotUnavailable):
        booked(hhmm, day=day)


def test_minimum_notice_is_enforced(booked):
    # NOW is 08:00 Monday in Toronto; two hours' notice by default.
    with pytest.raises(SlotUnavailable):
        booked("09:00", day="2026-11-23")
    booked("10:00", day="2026-11-23")


def test_the_buffer_after_a_follow_up_blocks_the_next_start(booked):
    booked("10:00", service="follow_up")  # 30 min + 15 min buffer: busy until 10:45
    with pytest.raises(SlotTaken):
        booked("10:30", service="follow_up", patient=alex(first_name="Sam", email="sam@example.com"))
    booked("10:45", service="follow_up", patient=alex(first_name="Sam", email="sam@example.com"))


def test_a_patient_cannot_hold_two_overlapping_visits(booked):
    booked("10:00", practitioner_index=0)
    with pytest.raises(PatientBusy):
        booked("10:30", practitioner_index=1)


def test_bad_contact_details_name_every_field_and_write_nothing(database, booked):
    with pytest.raises(ValidationFailed) as invalid:
        booked("10:00", patient=alex(first_name=" ", email="not-an-email", phone="12"))
    assert set(invalid.value.fields) == {"first_name", "email", "phone"}
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Appointment)) == 0
        assert s.scalar(select(func.count()).select_from(Patient)) == 0


def test_a_returning_patient_is_matched_by_email_and_consents_are_ledgered(database, booked):
    booked("10:00")
    booked("14:00", patient=alex(phone="+1 (416) 555-0142", sms_consent=False))
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == 1
        patient = s.scalars(select(Patient)).one()
        assert patient.sms_consent, "an unticked box later does not withdraw consent"
        channels = sorted(e.channel for e in s.scalars(select(ConsentEvent)))
        assert channels == ["email", "sms"]


def test_red_flags_mark_the_booking_for_urgent_triage(database, clinic):
    with database.unit_of_work() as s:
        result = book(
            s,
            BookingRequest(
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                start=local(TUESDAY, "10:00"),
                patient=alex(),
                red_flags={"saddle_numbness": True},
                intake_reason="Leg pain",
            ),
            secret_key=SECRET,
            now=NOW,
        )
        appointment_id = result.appointment.id
    with database.session() as s:
        appointment = s.get(Appointment, appointment_id)
        assert appointment.triage == "urgent"
        assert appointment.red_flags["saddle_numbness"] is True
        assert appointment.red_flags["bladder_bowel"] is False


def test_manage_token_finds_the_booking_and_is_stored_only_hashed(database, booked):
    appointment_id, token = booked("10:00")
    assert len(token) >= 22
    with database.session() as s:
        appointment = find_by_token(s, token, now=NOW)
        assert appointment.id == appointment_id
        assert token not in (appointment.manage_token_hash, appointment.manage_nonce)
        assert manage_token_for(appointment, SECRET) == token
        with pytest.raises(NotFound):
            find_by_token(s, token[:-1] + ("A" if token[-1] != "A" else "B"), now=NOW)
        with pytest.raises(NotFound):
            find_by_token(s, token, now=appointment.end_at + timedelta(days=31))


def test_reschedule_moves_the_visit_and_keeps_the_link(database, booked):
    appointment_id, token = booked("10:00")
    with database.unit_of_work() as s:
        reschedule(s, appointment_id, local(TUESDAY, "10:30"), now=NOW, by_patient=True)
    with database.session() as s:
        appointment = find_by_token(s, token, now=NOW)
        assert appointment.start_at == local(TUESDAY, "10:30")
        assert appointment.ics_sequence == 1


def test_reschedule_onto_a_taken_time_is_refused_and_changes_nothing(database, booked):
    first_id, _ = booked("10:00")
    booked("14:00", patient=alex(first_name="Sam", email="sam@example.com", phone=None))
    with database.unit_of_work() as s, pytest.raises(SlotTaken):
        reschedule(s, first_id, local(TUESDAY, "14:00"), now=NOW, by_patient=True)
    with database.session() as s:
        assert s.get(Appointment, first_id).start_at == local(TUESDAY, "10:00")


def test_cancel_frees_the_time_and_cannot_be_repeated(database, booked):
    appointment_id, _ = booked("10:00")
    with database.unit_of_work() as s:
        cancel(s, appointment_id, now=NOW, by_patient=True, reason="Feeling better")
    booked("10:00", patient=alex(first_name="Sam", email="sam@example.com"))
    with database.unit_of_work() as s, pytest.raises(InvalidTransition):
        cancel(s, appointment_id, now=NOW, by_patient=True)
    with database.unit_of_work() as s, pytest.raises(InvalidTransition):
        reschedule(s, appointment_id, local(TUESDAY, "11:00"), now=NOW, by_patient=True)


def test_late_cancellation_is_recorded_under_the_record_policy(database, booked):
    appointment_id, _ = booked("10:00", day="2026-11-23")
    with database.unit_of_work() as s:
        appointment = cancel(s, appointment_id, now=NOW, by_patient=True)
        assert appointment.late_cancellation is True


def test_late_cancellation_is_refused_with_the_clinic_phone_under_the_block_policy(database, make_clinic):
    clinic = make_clinic(late_cancellation_policy="block")
    with database.unit_of_work() as s:
        appointment_id = book(
            s,
            BookingRequest(
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                start=local("2026-11-23", "10:00"),
                patient=alex(),
            ),
            secret_key=SECRET,
            now=NOW,
        ).appointment.id
    with database.unit_of_work() as s, pytest.raises(LateCancellationBlocked) as blocked:
        cancel(s, appointment_id, now=NOW, by_patient=True)
    assert blocked.value.extra["phone"] == "+14165550100"  # a value the surfaces word
    with database.unit_of_work() as s:
        assert cancel(s, appointment_id, now=NOW, by_patient=False).status == "cancelled"


@pytest.mark.parametrize(
    "steps, at_offset, allowed",
    [
        (["confirmed"], -timedelta(days=1), True),
        (["checked_in"], -timedelta(hours=3), False),  # too early to check in
        (["checked_in"], -timedelta(hours=1), True),
        (["checked_in", "completed"], timedelta(minutes=30), True),
        (["no_show"], -timedelta(minutes=10), False),  # not started yet
        (["no_show"], timedelta(minutes=20), True),
        (["no_show", "checked_in"], timedelta(minutes=20), True),  # arrived late after all
        (["completed", "booked"], timedelta(hours=2), False),
        (["cancelled", "confirmed"], -timedelta(days=1), False),
    ],
)
def test_status_changes_follow_the_allowed_transitions(database, booked, steps, at_offset, allowed):
    appointment_id, _ = booked("10:00")
    when = local(TUESDAY, "10:00") + at_offset

    def run():
        for status in steps:
            with database.unit_of_work() as s:
                set_status(s, appointment_id, status, now=when)

    if allowed:
        run()
        with database.session() as s:
            assert s.get(Appointment, appointment_id).status == steps[-1]
    else:
        with pytest.raises((InvalidTransition, ValidationFailed)):
            run()


def test_booking_on_a_spring_forward_day_lands_on_local_wall_time(database, booked):
    # 2026-03-09 is the Monday after the change; book relative to a "now" in early March.
    now = local("2026-03-06", "08:00")
    appointment_id, _ = booked("09:00", day="2026-03-09", now=now)
    with database.session() as s:
        start = s.get(Appointment, appointment_id).start_at
    assert start.hour == 13  # 09:00 EDT is 13:00 UTC (it was 14:00 UTC the week before)


@pytest.mark.parametrize(
    "details, field",
    [
        (alex(first_name="A" * 81), "first_name"),
        (alex(last_name="Martin\x00"), "last_name"),
        (alex(email="a" * 250 + "@example.com"), "email"),
    ],
)
def test_overlong_or_control_character_details_are_refused_with_the_field(booked, details, field):
    with pytest.raises(ValidationFailed) as invalid:
        booked("10:00", patient=details)
    assert field in invalid.value.fields


@pytest.mark.parametrize("year", [1, 1999, 2999, 9999])
def test_a_start_in_a_far_year_is_simply_not_a_slot(database, clinic, year):
    with database.unit_of_work() as s, pytest.raises(SlotUnavailable):
        book(
            s,
            BookingRequest(
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                start=local(f"{year:04d}-06-01", "10:00"),
                patient=alex(),
            ),
            secret_key=SECRET,
            now=NOW,
        )
