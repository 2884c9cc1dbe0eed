"""Outbox planning in the booking's transaction, on SQLite and PostgreSQL.

Bookings go through ``usecases.booking`` (which calls the planner), as in production.
NOW is Monday 2026-11-23 08:00 in Toronto (EST); the clinic's defaults are an e-mail reminder
2 days before at 09:00 and an SMS 24 hours before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from booking_service.clinic.queries import get_clinic
from booking_service.messaging import planning
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient, SmsOptOut
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.usecases import booking as usecases
from tests.conftest import NOW, SECRET, local

PHONE = "+14165550123"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def clinic(make_clinic):
    return make_clinic()


def book(
    session, clinic, start, *, source="online", now=NOW, service="initial", confirm=True, **patient
) -> Appointment:
    details = {
        "first_name": "Alex",
        "last_name": "Tremblay",
        "email": "alex@example.com",
        "phone": PHONE,
        "sms_consent": True,
        "email_consent": True,
        **patient,
    }
    request = usecases.BookingRequest(
        service_id=clinic.initial_id if service == "initial" else clinic.follow_up_id,
        location_id=clinic.location_id,
        start=start,
        patient=PatientDetails(**details),
        source=source,
    )
    appointment = usecases.book(session, request, secret_key=SECRET, now=now, confirm=confirm).appointment
    session.commit()
    return appointment


def rows(session, appointment_id: int | None = None) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if appointment_id is not None:
        query = query.where(OutboxMessage.appointment_id == appointment_id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def plan(session, appointment_id: int | None = None, status: str | None = "pending") -> set[tuple[str, str, str]]:
    """{(kind, channel, due as ISO UTC)} of the rows (of one status)."""
    return {
        (r.kind, r.channel, r.due_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ"))
        for r in rows(session, appointment_id)
        if status is None or r.status == status
    }


def test_booking_by_the_patient_plans_confirmations_and_reminders_at_the_right_instants(session, clinic):
    appointment = book(session, clinic, local("2026-11-26", "10:00"))  # Thursday, 15:00Z

    assert plan(session, appointment.id) == {
        ("confirmation", "email", "2026-11-23T13:00Z"),
        ("confirmation", "sms", "2026-11-23T13:00Z"),
        ("reminder", "email", "2026-11-24T14:00Z"),  # Tuesday 09:00 EST
        ("reminder", "sms", "2026-11-25T15:00Z"),  # 24 hours before
    }
    for row in rows(session, appointment.id):
        assert row.to == (PHONE if row.channel == "sms" else "alex@example.com")
        assert row.patient_id == appointment.patient_id
        assert row.next_attempt_at == row.due_at
        assert row.status == "pending" and row.attempts == 0
        assert row.payload["start_at"] == "2026-11-26T15:00:00+00:00"
        assert f"appt:{appointment.id}:{row.kind}:{row.channel}:" in row.dedupe_key


def test_a_staff_booking_is_confirmed_like_the_patients_own(session, clinic):
    online = book(session, clinic, local("2026-11-26", "10:00"))
    staff = book(session, clinic, local("2026-11-27", "10:00"), source="staff")

    assert plan(session, staff.id) == {
        ("confirmation", "email", "2026-11-23T13:00Z"),
        ("confirmation", "sms", "2026-11-23T13:00Z"),
        ("reminder", "email", "2026-11-25T14:00Z"),
        ("reminder", "sms", "2026-11-26T15:00Z"),
    }
    kinds = {(r.kind, r.channel, r.template, r.to) for r in rows(session, staff.id)}
    assert kinds == {(r.kind, r.channel, r.template, r.to) for r in rows(session, online.id)}


def test_a_staff_booking_for_a_patient_at_the_desk_plans_reminders_but_no_confirmation(session, clinic):
    appointment = book(session, clinic, local("2026-11-26", "10:00"), source="staff", confirm=False)

    assert plan(session, appointment.id) == {
        ("reminder", "email", "2026-11-24T14:00Z"),
        ("reminder", "sms", "2026-11-25T15:00Z"),
    }


def test_an_email_confirmation_needs_no_email_consent_but_email_reminders_do(session, clinic):
    appointment = book(session, clinic, local("2026-11-26", "10:00"), email_consent=False, phone=None)

    assert plan(session, appointment.id) == {("confirmation", "email", "2026-11-23T13:00Z")}


def test_without_sms_consent_no_text_is_planned(session, clinic):
    appointment = book(session, clinic, local("2026-11-26", "10:00"), sms_consent=False)

    assert {channel for _, channel, _ in plan(session, appointment.id)} == {"email"}


def test_an_opted_out_phone_gets_no_sms_rows_even_with_consent(session, clinic):
    session.add(SmsOptOut(phone=PHONE, opted_out_at=NOW - timedelta(days=3), source="sms_reply"))
    session.commit()

    appointment = book(session, clinic, local("2026-11-26", "10:00"), sms_consent=True)

    assert plan(session, appointment.id) == {
        ("confirmation", "email", "2026-11-23T13:00Z"),
        ("reminder", "email", "2026-11-24T14:00Z"),
    }


def test_a_phone_the_provider_called_invalid_gets_no_sms_rows(session, clinic):
    first = book(session, clinic, local("2026-11-26", "10:00"))
    patient = session.get(Patient, first.patient_id)
    patient.phone_invalid_at = NOW
    session.commit()

    second = book(session, clinic, local("2026-11-27", "10:00"))

    assert second.patient_id == first.patient_id
    assert {channel for _, channel, _ in plan(session, second.id)} == {"email"}


def test_reminders_already_due_or_right_after_the_confirmation_are_not_planned(session, clinic):
    # Tuesday 09:00: the e-mail rule (Sunday 09:00) is past, the SMS (Monday 09:00, an hour
    # from now) would come right after the confirmation text.
    appointment = book(session, clinic, local("2026-11-24", "09:00"))

    assert plan(session, appointment.id) == {
        ("confirmation", "email", "2026-11-23T13:00Z"),
        ("confirmation", "sms", "2026-11-23T13:00Z"),
    }


def test_a_booking_without_confirmation_keeps_a_reminder_that_a_confirmed_one_would_drop(session, clinic):
    # No confirmation text goes out (the patient is at the desk), so the 24-hour reminder is the only one.
    appointment = book(session, clinic, local("2026-11-24", "09:00"), source="staff", confirm=False)

    assert plan(session, appointment.id) == {("reminder", "sms", "2026-11-23T14:00Z")}


def test_a_reminder_due_less_than_an_hour_before_the_start_is_not_planned(make_clinic, session):
    clinic = make_clinic(reminder_rules=[{"channel": "sms", "days_before": 0, "at": "09:00"}])

    early = book(session, clinic, local("2026-11-26", "09:30"), source="staff", confirm=False)
    later = book(session, clinic, local("2026-11-26", "10:00"), source="staff", confirm=False, first_name="Sam")

    assert plan(session, early.id) == set()
    assert plan(session, later.id) == {("reminder", "sms", "2026-11-26T14:00Z")}


def test_clinic_reminder_rules_are_followed_on_dst_days(make_clinic, session):
    clinic = make_clinic(
        reminder_rules=[
            {"channel": "email", "days_before": 1, "at": "09:00"},
            {"channel": "sms", "hours_before": 24},
            {"channel": "sms", "hours_before": 2},
        ]
    )
    now = utc("2026-02-20T15:00Z")
    appointment = book(session, clinic, local("2026-03-09", "10:00"), confirm=False, now=now)  # Monday, EDT

    assert plan(session, appointment.id) == {
        ("reminder", "email", "2026-03-08T13:00Z"),  # Sunday 09:00 EDT, the day DST starts
        ("reminder", "sms", "2026-03-08T14:00Z"),  # 24 elapsed hours: 10:00 EDT
        ("reminder", "sms", "2026-03-09T12:00Z"),
    }


def test_a_malformed_reminder_rule_is_ignored_and_the_others_planned(make_clinic, session):
    clinic = make_clinic(
        reminder_rules=[{"channel": "sms", "hours_before": "soon"}, {"channel": "sms", "hours_before": 24}]
    )

    appointment = book(session, clinic, local("2026-11-26", "10:00"), confirm=False)

    assert plan(session, appointment.id) == {("reminder", "sms", "2026-11-25T15:00Z")}


def test_planning_twice_is_a_no_op(session, clinic):
    appointment = book(session, clinic, local("2026-11-26", "10:00"))
    before = [(r.id, r.dedupe_key) for r in rows(session)]

    planning.booked(session, appointment, clinic=get_clinic(session), now=NOW, confirm=True)
    session.commit()

    assert [(r.id, r.dedupe_key) for r in rows(session)] == before


def test_reschedule_supersedes_pending_rows_and_plans_the_new_time(session, clinic):
    appointment = book(session, clinic, local("2026-11-26", "10:00"))
    confirmation_email = next(r for r in rows(session) if r.kind == "confirmation" and r.channel == "email")
    confirmation_email.status = "sent"  # the worker has already sent this one
    session.commit()
    later = NOW + timedelta(hours=1)

    usecases.reschedule(session, appointment.id, local("2026-11-27", "14:00"), now=later, by_patient=True)
    session.commit()

    everything = rows(session, appointment.id)
    superseded = [r for r in everything if r.status == "cancelled"]
    assert {(r.kind, r.channel) for r in superseded} == {
        ("confirmation", "sms"),
        ("reminder", "email"),
        ("reminder", "sms"),
    }
    assert all(r.error == "superseded by reschedule" for r in superseded)
    assert session.get(OutboxMessage, confirmation_email.id).status == "sent"
    assert plan(session, appointment.id) == {
        ("reschedule", "email", "2026-11-23T14:00Z"),
        ("reschedule", "sms", "2026-11-23T14:00Z"),
        ("reminder", "email", "2026-11-25T14:00Z"),  # Wednesday 09:00
        ("reminder", "sms", "2026-11-26T19:00Z"),  # Thursday 14:00 EST
    }
    notice = next(r for r in everything if r.kind == "reschedule" and r.channel == "email")
    assert notice.payload["old_start"] == "2026-11-26T15:00:00+00:00"


def test_reschedule_back_to_the_first_time_plans_fresh_rows(session, clinic):
    appointment = book(session, clinic, local("2026-11-26", "10:00"))
    usecases.reschedule(session, appointment.id, local("2026-11-27", "14:00"), now=NOW, by_patient=True)
    session.commit()
    usecases.reschedule(session, appointment.id, local("2026-11-26", "10:00"), now=NOW, by_patient=False)
    session.commit()

    assert {(k, c) for k, c, _ in plan(session, appointment.id)} == {
        ("reschedule", "email"),
        ("reschedule", "sms"),
        ("reminder", "email"),
        ("reminder", "sms"),
    }
    assert len({r.dedupe_key for r in rows(session)}) == len(rows(session))


def test_cancel_stops_every_pending_row_and_plans_a_cancellation_notice(session, clinic):
    appointment = book(session, clinic, local("2026-11-26", "10:00"))
    later = NOW + timedelta(hours=2)

    usecases.cancel(session, appointment.id, now=later, by_patient=True)
    session.commit()

    assert plan(session, appointment.id) == {
        ("cancellation", "email", "2026-11-23T15:00Z"),
        ("cancellation", "sms", "2026-11-23T15:00Z"),
    }
    stopped = [r for r in rows(session, appointment.id) if r.status == "cancelled"]
    assert len(stopped) == 4
    assert all(r.error == "appointment cancelled by patient" for r in stopped)


def test_a_cancellation_is_texted_only_with_sms_consent(session, clinic):
    appointment = book(session, clinic, local("2026-11-26", "10:00"), sms_consent=False, source="staff")

    usecases.cancel(session, appointment.id, now=NOW, by_patient=False)
    session.commit()

    assert plan(session, appointment.id) == {("cancellation", "email", "2026-11-23T13:00Z")}


def test_check_in_and_no_show_stop_pending_reminders(session, clinic):
    at = local("2026-11-26", "10:00")
    shown = book(session, clinic, at)
    missed = book(session, clinic, at, first_name="Sam", email="sam@example.com", phone="+14165550124")
    visit = at + timedelta(minutes=5)

    usecases.set_status(session, shown.id, "checked_in", now=at - timedelta(hours=1))
    usecases.set_status(session, missed.id, "no_show", now=visit)
    session.commit()

    for appointment in (shown, missed):
        assert not [r for r in rows(session, appointment.id) if r.kind == "reminder" and r.status == "pending"]
    assert {r.error for r in rows(session, missed.id) if r.status == "cancelled"} == {"appointment no show"}


def test_a_completed_visit_without_a_later_booking_gets_a_follow_up_the_next_day_at_ten(session, clinic):
    appointment = book(session, clinic, local("2026-11-26", "10:00"))

    usecases.set_status(session, appointment.id, "completed", now=local("2026-11-26", "11:05"))
    session.commit()

    assert plan(session, appointment.id) == {("follow_up", "sms", "2026-11-27T15:00Z")}


def test_a_completed_visit_with_a_later_booking_gets_no_follow_up(session, clinic):
    appointment = book(session, clinic, local("2026-11-26", "10:00"))
    book(session, clinic, local("2026-12-03", "10:00"), service="follow_up")

    usecases.set_status(session, appointment.id, "completed", now=local("2026-11-26", "11:05"))
    session.commit()

    assert plan(session, appointment.id) == set()


def test_follow_ups_go_by_email_without_sms_consent_and_not_at_all_when_the_clinic_turns_them_off(make_clinic, session):
    clinic = make_clinic(follow_up_prompt=False)
    appointment = book(session, clinic, local("2026-11-26", "10:00"), sms_consent=False)
    usecases.set_status(session, appointment.id, "completed", now=local("2026-11-26", "11:05"))
    session.commit()
    assert plan(session, appointment.id) == set()

    get_clinic(session).follow_up_prompt = True
    session.commit()
    other = book(session, clinic, local("2026-11-27", "10:00"), sms_consent=False, first_name="Sam")
    usecases.set_status(session, other.id, "completed", now=local("2026-11-27", "11:05"))
    session.commit()
    assert plan(session, other.id) == {("follow_up", "email", "2026-11-28T15:00Z")}
