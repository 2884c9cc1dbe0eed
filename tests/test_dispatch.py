"""Dispatch: claim, send, record, retry, recover. Both engines; the real twilio SDK over HTTP to
FakeTwilio and smtplib to a local aiosmtpd; frozen "now" unless the provider's clock matters."""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from booking_service.config import Settings
from booking_service.db import utcnow
from booking_service.integrations.registry import Transports, build_transports
from booking_service.messaging import policy
from booking_service.outbox import record as recording
from booking_service.outbox import retry
from booking_service.outbox import send as sending
from booking_service.outbox.claim import DEFAULT_LEASE, claim_due
from booking_service.outbox.failures import fallback_dedupe_key
from booking_service.outbox.models import OutboxMessage
from booking_service.outbox.prepare import Prepared, prepare
from booking_service.outbox.reconcile import recover_expired
from booking_service.outbox.send import send_one, send_timeout_for
from booking_service.patients.models import ConsentEvent, Patient, SmsOptOut
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.usecases.booking import BookingRequest, book
from tests.conftest import NOW, SECRET, local
from tests.support.environ import settings_from
from tests.support.fake_twilio import FakeTwilio
from tests.support.smtp_server import SmtpServer

PHONE = "+14165550123"
EMAIL = "sam@example.com"
WORKER = "host:1:aaaa"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def settings(fake: FakeTwilio, smtp: SmtpServer) -> Settings:
    return settings_from(fake.environ(), smtp.environ(), SECRET_KEY=SECRET)


@pytest.fixture
def transports(settings) -> Transports:
    return build_transports(settings, send_timeout=send_timeout_for(DEFAULT_LEASE))


@pytest.fixture
def clinic(make_clinic):
    return make_clinic()


@pytest.fixture
def make_patient(database, clinic):
    def make(**overrides) -> int:
        values = {
            "first_name": "Sam",
            "last_name": "Lee",
            "phone": PHONE,
            "email": EMAIL,
            "sms_consent": True,
            "email_consent": True,
            "exercise_sms_consent": True,
        }
        values.update(overrides)
        with database.unit_of_work() as s:
            patient = Patient(**values)
            s.add(patient)
            s.flush()
            return patient.id

    return make


@pytest.fixture
def make_appointment(database, clinic):
    def make(patient_id: int, start: datetime, status: str = "booked") -> int:
        with database.unit_of_work() as s:
            appointment = Appointment(
                patient_id=patient_id,
                practitioner_id=clinic.practitioner_ids[0],
                location_id=clinic.location_id,
                service_id=clinic.follow_up_id,
                start_at=start,
                end_at=start + timedelta(minutes=30),
                busy_until=start + timedelta(minutes=45),
                status=status,
                manage_nonce=secrets.token_hex(16),
                manage_token_hash=secrets.token_hex(32),
            )
            s.add(appointment)
            s.flush()
            return appointment.id

    return make


@pytest.fixture
def make_message(database):
    """``make_message(patient_id, kind=..., body=...)``: a pending row, sent verbatim (no template)."""

    def make(
        patient_id: int | None,
        *,
        kind="confirmation",
        channel="sms",
        body=None,
        to=None,
        due_at=NOW,
        appointment_id=None,
        **extra,
    ) -> int:
        with database.unit_of_work() as s:
            row = OutboxMessage(
                patient_id=patient_id,
                appointment_id=appointment_id,
                channel=channel,
                kind=kind,
                to=to,
                body=body or f"Lakeshore Physio: message {secrets.token_hex(4)}",
                payload={},
                due_at=due_at,
                next_attempt_at=due_at,
                status="pending",
                attempts=0,
                dedupe_key=f"test:{secrets.token_hex(8)}",
                **extra,
            )
            s.add(row)
            s.flush()
            return row.id

    return make


def row(database, message_id: int) -> OutboxMessage:
    with database.unit_of_work() as s:
        return s.get(OutboxMessage, message_id)


def deliver(database, transports, settings, *, now=NOW, worker=WORKER, limit=100, lease=DEFAULT_LEASE):
    """One round of what a worker does: claim what is due at ``now``, send each row."""
    ids = claim_due(database, worker_id=worker, now=now, limit=limit, lease=lease)
    return [
        send_one(
            database, i, transports=transports, settings=settings, worker_id=worker, now_fn=lambda: now, lease=lease
        )
        for i in ids
    ]


# --------------------------------------------------------------------------- claiming


def test_claim_takes_due_rows_only_and_stamps_the_lease(database, make_patient, make_message):
    patient = make_patient()
    due = make_message(patient, due_at=NOW - timedelta(minutes=1))
    future = make_message(patient, due_at=NOW + timedelta(minutes=1))

    assert claim_due(database, worker_id=WORKER, now=NOW, limit=10) == [due]
    claimed = row(database, due)
    assert (claimed.status, claimed.claimed_by, claimed.attempts) == ("sending", WORKER, 1)
    assert claimed.claimed_at == NOW
    assert claimed.lease_expires_at == NOW + DEFAULT_LEASE
    assert row(database, future).status == "pending"
    assert claim_due(database, worker_id="other", now=NOW, limit=10) == []


def test_claim_respects_the_limit_oldest_due_first(database, make_patient, make_message):
    patient = make_patient()
    ids = [make_message(patient, due_at=NOW - timedelta(minutes=m)) for m in (1, 3, 2)]
    assert claim_due(database, worker_id=WORKER, now=NOW, limit=2) == sorted([ids[1], ids[2]])


# --------------------------------------------------------------------------- sending


def test_due_rows_are_sent_once_and_future_rows_wait(database, fake, transports, settings, make_patient, make_message):
    patient = make_patient()
    due = [make_message(patient, body=f"due {n}") for n in range(3)]
    later = make_message(patient, body="later", due_at=NOW + timedelta(hours=1))

    outcomes = deliver(database, transports, settings)
    assert sorted(o.message_id for o in outcomes) == due
    assert deliver(database, transports, settings) == []  # nothing sent twice

    assert sorted(m["body"] for m in fake.messages) == ["due 0", "due 1", "due 2"]
    for message_id in due:
        sent = row(database, message_id)
        provider = fake.get(sent.provider_id)
        assert (sent.status, sent.sent_at, sent.to, sent.body) == ("sent", NOW, PHONE, provider["body"])
        assert provider["status_callback"] == "http://testserver.local/webhooks/twilio/status"
    assert row(database, later).status == "pending"

    outcomes = deliver(database, transports, settings, now=NOW + timedelta(hours=1))
    assert [o.message_id for o in outcomes] == [later]
    assert len(fake.messages) == 4


def test_a_row_claimed_by_another_worker_is_not_touched(
    database, fake, transports, settings, make_patient, make_message
):
    message_id = make_message(make_patient())
    claim_due(database, worker_id="someone-else", now=NOW, limit=10)
    outcome = send_one(
        database, message_id, transports=transports, settings=settings, worker_id=WORKER, now_fn=lambda: NOW
    )
    assert outcome.status == "lost"
    assert fake.messages == []
    assert row(database, message_id).status == "sending"


def test_email_is_sent_by_smtp_with_a_message_id_stable_across_retries(
    database, smtp, transports, settings, make_patient, make_message
):
    message_id = make_message(make_patient(), channel="email", body="See you soon.")
    smtp.defer(EMAIL)
    [first] = deliver(database, transports, settings)
    assert first.status == "pending"
    assert row(database, message_id).error_code == "451"

    smtp.clear_failures()
    retry_at = row(database, message_id).next_attempt_at
    [second] = deliver(database, transports, settings, now=retry_at)
    assert second.status == "sent"
    [received] = smtp.messages
    sent = row(database, message_id)
    assert received.message["Message-ID"] == sent.provider_id
    assert received.message["Message-ID"] == f"<outbox-{message_id}@testserver.local>"
    assert received.message.get_body(("plain",)).get_content().strip() == "See you soon."


# --------------------------------------------------------------------------- rendered rows


def test_a_bookings_messages_are_rendered_sent_and_its_reminder_waits_for_its_time(
    database, fake, smtp, transports, settings, clinic
):
    with database.unit_of_work() as s:
        booked = book(
            s,
            BookingRequest(
                service_id=clinic.follow_up_id,
                location_id=clinic.location_id,
                practitioner_id=clinic.practitioner_ids[0],
                start=local("2026-11-26", "10:00"),
                patient=PatientDetails(
                    first_name="Sam", last_name="Lee", email=EMAIL, phone=PHONE, sms_consent=True, email_consent=True
                ),
            ),
            secret_key=SECRET,
            now=NOW,
        )
        assert booked.appointment.id
    with database.unit_of_work() as s:
        planned = {(r.kind, r.channel): r for r in s.scalars(select(OutboxMessage))}
    sms_reminder = planned[("reminder", "sms")]
    assert sms_reminder.due_at == local("2026-11-25", "10:00").astimezone(UTC)

    outcomes = deliver(database, transports, settings)
    assert sorted((o.kind, o.channel, o.status) for o in outcomes) == [
        ("confirmation", "email", "sent"),
        ("confirmation", "sms", "sent"),
    ]
    [text] = fake.messages
    assert text["body"].startswith("Lakeshore Physio") and "Thu Nov 26, 10:00 AM" in text["body"]
    assert text["status_callback"] == "http://testserver.local/webhooks/twilio/status"
    [mail] = smtp.messages
    assert mail.message["Message-ID"] == f"<outbox-{planned[('confirmation', 'email')].id}@testserver.local>"
    with database.unit_of_work() as s:
        confirmation = s.get(OutboxMessage, planned[("confirmation", "sms")].id)
        assert (confirmation.body, confirmation.provider_id) == (text["body"], text["sid"])  # what staff see

    # The e-mail reminder (two days before, 09:00) is due first; the text waits for its time.
    early = deliver(database, transports, settings, now=sms_reminder.due_at - timedelta(seconds=1))
    assert [(o.kind, o.channel, o.status) for o in early] == [("reminder", "email", "sent")]
    [reminder] = [o for o in deliver(database, transports, settings, now=sms_reminder.due_at) if o.channel == "sms"]
    assert (reminder.kind, reminder.status) == ("reminder", "sent")
    body = fake.messages[-1]["body"]
    assert body.startswith("Lakeshore Physio reminder:") and "Thu Nov 26, 10:00 AM" in body
    assert len(fake.messages) == 2


def test_a_row_that_cannot_be_rendered_fails_with_the_reason(
    database, fake, transports, settings, make_patient, make_message
):
    message_id = make_message(make_patient(), kind="reply", to=PHONE, template="no_such_template")
    [outcome] = deliver(database, transports, settings)
    failed = row(database, message_id)
    assert (outcome.status, failed.status) == ("failed", "failed")
    assert failed.error == "could not render: no message template sms/no_such_template.en.txt"
    assert fake.messages == []


def test_a_claimed_batch_is_prepared_and_recorded_in_one_transaction_each(
    database, fake, transports, settings, make_patient, make_appointment, make_message
):
    patient = make_patient()
    night = local("2026-11-24", "02:00")
    appointment = make_appointment(patient, local("2026-11-24", "15:00"))
    good = make_message(patient, kind="reply", body="good", due_at=night)
    bad = make_message(make_patient(phone="+14165550999"), kind="reply", body="bad", due_at=night)
    unwanted = make_message(make_patient(sms_consent=False, phone="+14165550888"), due_at=night)
    held = make_message(patient, kind="reminder", appointment_id=appointment, due_at=night)
    ids = claim_due(database, worker_id=WORKER, now=night, limit=10)
    assert ids == sorted([good, bad, unwanted, held])
    fake.fail_number("+14165550999", 20503, status=503)

    results = prepare(database, ids, settings=settings, worker_id=WORKER, now_fn=lambda: night)
    by_id = dict(zip(ids, results, strict=True))
    assert isinstance(by_id[good], Prepared) and isinstance(by_id[bad], Prepared)
    assert (by_id[unwanted].status, by_id[held].status) == ("skipped", "pending")
    assert row(database, good).body == "good" and row(database, good).to == PHONE

    deliveries = [sending.deliver(by_id[i], transports) for i in (good, bad)]
    outcomes = recording.record(database, deliveries, worker_id=WORKER, now=night)
    assert [(o.message_id, o.status) for o in outcomes] == [(good, "sent"), (bad, "pending")]
    assert row(database, good).provider_id == fake.messages[0]["sid"]
    assert row(database, bad).error_code == "20503"
    # Prepared twice, or recorded by another worker: nothing is written.
    assert prepare(database, [good], settings=settings, worker_id=WORKER)[0].status == "lost"
    assert recording.record(database, deliveries[:1], worker_id="other", now=night)[0].status == "lost"
    assert row(database, good).status == "sent"


# --------------------------------------------------------------------------- still wanted?


def test_a_cancelled_appointments_reminder_is_skipped(
    database, fake, transports, settings, make_patient, make_appointment, make_message
):
    patient = make_patient()
    appointment = make_appointment(patient, NOW + timedelta(days=1), status="cancelled")
    reminder = make_message(patient, kind="reminder", appointment_id=appointment)
    notice = make_message(patient, kind="cancellation", appointment_id=appointment)

    outcomes = {o.message_id: o for o in deliver(database, transports, settings)}
    assert outcomes[reminder].status == "skipped"
    skipped = row(database, reminder)
    assert (skipped.status, skipped.error, skipped.provider_id) == ("skipped", "the appointment is cancelled", None)
    assert outcomes[notice].status == "sent"  # the cancellation notice itself still goes out
    assert len(fake.messages) == 1


def test_a_follow_up_prompt_is_skipped_once_the_patient_has_booked_again(
    database, fake, transports, settings, make_patient, make_appointment, make_message
):
    patient = make_patient()
    visit = make_appointment(patient, NOW - timedelta(days=1), status="completed")
    prompt = make_message(patient, kind="follow_up", appointment_id=visit)
    make_appointment(patient, NOW + timedelta(days=6))

    deliver(database, transports, settings)
    skipped = row(database, prompt)
    assert (skipped.status, skipped.error) == ("skipped", "the patient has booked their next visit")
    assert fake.messages == []


def test_a_reminder_is_never_sent_after_the_appointment_started(
    database, fake, transports, settings, make_patient, make_appointment, make_message
):
    patient = make_patient()
    appointment = make_appointment(patient, NOW - timedelta(minutes=5))
    reminder = make_message(patient, kind="reminder", appointment_id=appointment, due_at=NOW - timedelta(hours=3))
    [outcome] = deliver(database, transports, settings)
    assert outcome.status == "skipped"
    assert row(database, reminder).error == "the appointment has already started"
    assert fake.messages == []


@pytest.mark.parametrize(
    ("overrides", "kind", "reason"),
    [
        ({"sms_consent": False}, "reminder", "no consent to texts"),
        ({"sms_consent": False}, "confirmation", "no consent to texts"),
        ({"exercise_sms_consent": False}, "nudge", "no consent to exercise texts"),
        ({"phone": None}, "confirmation", "no mobile number"),
    ],
)
def test_texts_need_consent_and_a_number(
    database, fake, transports, settings, make_patient, make_message, overrides, kind, reason
):
    message_id = make_message(make_patient(**overrides), kind=kind)
    [outcome] = deliver(database, transports, settings)
    assert (outcome.status, row(database, message_id).error) == ("skipped", reason)
    assert fake.messages == []


def test_an_opted_out_or_invalid_number_is_not_texted(database, fake, transports, settings, make_patient, make_message):
    opted_out = make_patient(phone="+14165550111")
    invalid = make_patient(phone="+14165550122", phone_invalid_at=NOW - timedelta(days=1))
    with database.unit_of_work() as s:
        s.add(SmsOptOut(phone="+14165550111", source="sms_reply"))
    a, b = make_message(opted_out), make_message(invalid)
    deliver(database, transports, settings)
    assert row(database, a).error == "the number replied STOP (opted out of texts)"
    assert row(database, b).error == "the mobile number was reported invalid by the SMS provider"
    assert fake.messages == []


def test_quiet_hours_defer_a_reminder_to_8am_local_but_not_a_confirmation(
    database, fake, transports, settings, make_patient, make_appointment, make_message
):
    night = local("2026-11-24", "02:00")  # Tuesday 02:00 in Toronto
    patient = make_patient()
    appointment = make_appointment(patient, local("2026-11-24", "15:00"))
    reminder = make_message(patient, kind="reminder", appointment_id=appointment, due_at=night)
    confirmation = make_message(patient, kind="confirmation", appointment_id=appointment, due_at=night)

    outcomes = {o.message_id: o for o in deliver(database, transports, settings, now=night)}
    assert outcomes[confirmation].status == "sent"
    held = row(database, reminder)
    assert held.status == "pending"
    assert held.next_attempt_at == local("2026-11-24", "08:00").astimezone(UTC)
    assert held.attempts == 0  # a deferral is not an attempt
    assert held.claimed_by is None and "quiet hours" in held.error

    assert deliver(database, transports, settings, now=local("2026-11-24", "07:59")) == []
    [outcome] = deliver(database, transports, settings, now=local("2026-11-24", "08:00"))
    assert outcome.status == "sent"
    assert row(database, reminder).attempts == 1
    assert len(fake.messages) == 2


@pytest.mark.parametrize(
    ("day", "wall", "zone", "opens"),
    [
        ("2026-11-24", "08:00", "America/Toronto", None),  # inside: opening instant
        ("2026-11-24", "19:59", "America/Toronto", None),
        ("2026-11-24", "07:59", "America/Toronto", ("2026-11-24", "08:00")),
        ("2026-11-24", "20:00", "America/Toronto", ("2026-11-25", "08:00")),
        ("2026-11-24", "23:30", "America/Toronto", ("2026-11-25", "08:00")),
        ("2026-03-08", "01:30", "America/Toronto", ("2026-03-08", "08:00")),  # spring forward day
        ("2026-03-07", "22:00", "America/Toronto", ("2026-03-08", "08:00")),  # across the change
        ("2026-10-31", "21:00", "America/Toronto", ("2026-11-01", "08:00")),  # fall back night
        ("2026-11-24", "06:00", "America/Vancouver", ("2026-11-24", "08:00")),
    ],
)
def test_sending_window_opens_at_local_8am_on_any_day(day, wall, zone, opens):
    now = local(day, wall, zone).astimezone(UTC)
    expected = local(*opens, zone).astimezone(UTC) if opens else None
    assert policy.window_opens(now, zone=ZoneInfo(zone), start=time(8), end=time(20)) == expected


def test_a_daily_sms_cap_skips_a_second_reminder_the_same_local_day(
    database, fake, transports, settings, make_clinic, make_patient, make_appointment, make_message
):
    patient = make_patient()
    first = make_appointment(patient, NOW + timedelta(days=1))
    second = make_appointment(patient, NOW + timedelta(days=1, hours=2))
    a = make_message(patient, kind="reminder", appointment_id=first)
    deliver(database, transports, settings)
    b = make_message(patient, kind="reminder", appointment_id=second, due_at=NOW + timedelta(hours=1))
    [outcome] = deliver(database, transports, settings, now=NOW + timedelta(hours=1))
    assert row(database, a).status == "sent"
    assert (outcome.status, row(database, b).error) == ("skipped", "daily SMS cap reached (1 reminder or nudge texts)")
    # A confirmation is not capped.
    c = make_message(patient, kind="confirmation", due_at=NOW + timedelta(hours=1))
    deliver(database, transports, settings, now=NOW + timedelta(hours=1))
    assert row(database, c).status == "sent"
    # Next local day the cap has reset.
    d = make_message(patient, kind="nudge", due_at=NOW + timedelta(days=1))
    deliver(database, transports, settings, now=NOW + timedelta(days=1))
    assert row(database, d).status == "sent"


def test_a_weekly_sms_cap_counts_seven_days(database, fake, transports, settings, make_patient, make_message):
    patient = make_patient()
    sent = [make_message(patient, kind="nudge", due_at=NOW + timedelta(days=d)) for d in range(3)]
    for d in range(3):
        deliver(database, transports, settings, now=NOW + timedelta(days=d))
    assert [row(database, i).status for i in sent] == ["sent"] * 3
    fourth = make_message(patient, kind="nudge", due_at=NOW + timedelta(days=3))
    deliver(database, transports, settings, now=NOW + timedelta(days=3))
    assert row(database, fourth).error == "weekly SMS cap reached (3 reminder or nudge texts)"
    fifth = make_message(patient, kind="nudge", due_at=NOW + timedelta(days=7, hours=1))
    deliver(database, transports, settings, now=NOW + timedelta(days=7, hours=1))
    assert row(database, fifth).status == "sent"  # the first nudge left the 7-day window


# --------------------------------------------------------------------------- provider errors


def test_an_invalid_number_fails_permanently_and_falls_back_to_email(
    database, fake, smtp, transports, settings, make_patient, make_appointment, make_message
):
    patient = make_patient()
    appointment = make_appointment(patient, NOW + timedelta(days=1))
    text = make_message(patient, kind="reminder", appointment_id=appointment, body="Reminder: tomorrow 08:00.")
    fake.fail_number(PHONE, 21211)

    [outcome] = deliver(database, transports, settings)
    failed = row(database, text)
    assert (outcome.status, failed.status, failed.error_code) == ("failed", "failed", "21211")
    assert "not a valid phone number" in failed.error
    with database.unit_of_work() as s:
        assert s.get(Patient, patient).phone_invalid_at == NOW
        fallback = s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "email")).one()
    assert (fallback.kind, fallback.status, fallback.to) == ("reminder", "pending", EMAIL)
    assert fallback.dedupe_key == fallback_dedupe_key(failed.dedupe_key)
    assert fallback.appointment_id == appointment

    [outcome] = deliver(database, transports, settings)
    assert (outcome.message_id, outcome.status) == (fallback.id, "sent")
    [received] = smtp.messages
    assert received.rcpt_tos == [EMAIL]
    # A later text to that number is skipped rather than tried again.
    again = make_message(patient, kind="confirmation")
    deliver(database, transports, settings)
    assert row(database, again).status == "skipped"


def test_an_invalid_number_without_email_consent_has_no_fallback_for_a_reminder(
    database, fake, transports, settings, make_patient, make_message
):
    make_message(make_patient(email_consent=False), kind="reminder")
    fake.fail_number(PHONE, 21614)
    deliver(database, transports, settings)
    with database.unit_of_work() as s:
        assert s.scalars(select(OutboxMessage.channel)).all() == ["sms"]


def test_an_invalid_number_still_gets_its_confirmation_by_email_without_email_consent(
    database, fake, smtp, transports, settings, make_patient, make_appointment, make_message
):
    # A confirmation answers the patient's own booking (planning's transactional rule), so the
    # e-mail fallback needs an address, not marketing consent.
    patient = make_patient(email_consent=False)
    appointment = make_appointment(patient, NOW + timedelta(days=1))
    text = make_message(patient, kind="confirmation", appointment_id=appointment, body="Booked: tomorrow 08:00.")
    fake.fail_number(PHONE, 21614)

    deliver(database, transports, settings)
    with database.unit_of_work() as s:
        fallback = s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "email")).one()
        assert (fallback.kind, fallback.to, fallback.payload["fallback_from"]) == ("confirmation", EMAIL, text)
    [outcome] = deliver(database, transports, settings)
    assert (outcome.message_id, outcome.status) == (fallback.id, "sent")
    [received] = smtp.messages
    assert received.rcpt_tos == [EMAIL]


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500)])
def test_rate_limits_and_server_errors_are_retried_with_backoff_then_sent(
    database, fake, transports, settings, make_patient, make_message, status, code
):
    message_id = make_message(make_patient())
    fake.fail_next(status, code, count=2)

    [first] = deliver(database, transports, settings)
    retry = row(database, message_id)
    assert (first.status, retry.status, retry.attempts, retry.error_code) == ("pending", "pending", 1, str(code))
    # Fast at first (retry.RETRY_CEILINGS): within 1-2 s, then 4-8 s.
    assert NOW + timedelta(seconds=1) <= retry.next_attempt_at <= NOW + timedelta(seconds=2)
    assert deliver(database, transports, settings, now=retry.next_attempt_at - timedelta(seconds=1)) == []

    t2 = retry.next_attempt_at
    deliver(database, transports, settings, now=t2)
    retry = row(database, message_id)
    assert t2 + timedelta(seconds=4) <= retry.next_attempt_at <= t2 + timedelta(seconds=8)

    [last] = deliver(database, transports, settings, now=retry.next_attempt_at)
    done = row(database, message_id)
    assert (last.status, done.status, done.attempts, done.error, done.error_code) == ("sent", "sent", 3, None, None)
    assert len(fake.messages) == 1


def test_backoff_retries_within_seconds_then_backs_off_to_an_hour_with_jitter():
    import random

    rng = random.Random(1)
    table = [(1, 2), (2, 8), (3, 30), (4, 120), (5, 600), (6, 1800), (7, 3600), (8, 3600), (20, 3600)]
    for attempts, ceiling in table:
        for _ in range(20):
            wait = retry.backoff(attempts, rng=rng).total_seconds()
            assert ceiling / 2 <= wait <= ceiling


def test_a_message_fails_for_good_after_the_attempt_cap(
    database, fake, transports, settings, make_patient, make_message
):
    message_id = make_message(make_patient())
    fake.fail_next(503, 20503, count=100)
    now = NOW
    for _ in range(retry.MAX_ATTEMPTS):
        deliver(database, transports, settings, now=now)
        now = row(database, message_id).next_attempt_at or now
    final = row(database, message_id)
    assert (final.status, final.attempts) == ("failed", retry.MAX_ATTEMPTS)
    assert final.error.startswith(f"gave up after {retry.MAX_ATTEMPTS} attempts: Twilio error 20503")


def test_twilio_21610_records_the_opt_out_and_fails_the_message(
    database, fake, transports, settings, make_patient, make_message
):
    patient = make_patient()
    message_id = make_message(patient, kind="confirmation")
    later = make_message(patient, kind="reminder", to=PHONE, due_at=NOW + timedelta(days=1))
    fake.fail_number(PHONE, 21610)
    [outcome] = deliver(database, transports, settings)
    failed = row(database, message_id)
    assert (outcome.status, failed.status, failed.error_code) == ("failed", "failed", "21610")
    with database.unit_of_work() as s:
        assert s.get(SmsOptOut, PHONE).source == "twilio_21610"
        events = s.scalars(select(ConsentEvent).where(ConsentEvent.phone == PHONE)).all()
        assert [(e.patient_id, e.channel, e.granted, e.source) for e in events] == [
            (patient, "sms", False, "twilio_21610")
        ]
    assert row(database, later).status == "cancelled"  # the number's pending texts stop too
    # A text planned later to that number is not even attempted.
    nxt = make_message(patient, kind="reply")
    deliver(database, transports, settings)
    assert row(database, nxt).status == "skipped"
    assert len(fake.rejected) == 1


# --------------------------------------------------------------------------- concurrency


def test_concurrent_workers_never_send_one_row_twice(database, fake, transports, settings, make_patient, make_message):
    patient = make_patient()
    ids = [make_message(patient, kind="reply", body=f"row {n}") for n in range(120)]
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            while True:
                claimed = claim_due(database, worker_id=name, now=NOW, limit=5)
                if not claimed:
                    return
                for message_id in claimed:
                    send_one(
                        database,
                        message_id,
                        transports=transports,
                        settings=settings,
                        worker_id=name,
                        now_fn=lambda: NOW,
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    bodies = sorted(m["body"] for m in fake.messages)
    assert bodies == sorted(f"row {n}" for n in range(120))
    with database.unit_of_work() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids))).all()
        assert {r.status for r in rows} == {"sent"}
        assert len({r.provider_id for r in rows}) == 120
        assert {r.attempts for r in rows} == {1}


# --------------------------------------------------------------------------- recovery


def _prepare_then_die(database, transports, settings, message_id, *, now, send: bool, lease):
    """A worker that claims and prepares a row, maybe hands it to Twilio, then dies unrecorded."""
    [claimed] = claim_due(database, worker_id="dead-worker", now=now, limit=1, lease=lease)
    assert claimed == message_id
    [prepared] = prepare(
        database, [message_id], settings=settings, worker_id="dead-worker", now_fn=lambda: now, lease=lease
    )
    assert isinstance(prepared, Prepared)
    if send:
        return sending.deliver(prepared, transports).sent
    return None


def test_an_expired_lease_already_at_twilio_is_marked_sent_not_resent(
    database, fake, transports, settings, make_patient, make_message
):
    now = utcnow()  # Twilio's clock is real, so is ours here
    lease = timedelta(seconds=30)
    message_id = make_message(make_patient(), body="Your visit is confirmed.", due_at=now)
    # The same text sent earlier (an older message) must not be mistaken for this one.
    fake.seed_message(PHONE, "Your visit is confirmed.", date_created=now - timedelta(days=2))
    sent = _prepare_then_die(database, transports, settings, message_id, now=now, send=True, lease=lease)

    assert recover_expired(database, now=now + timedelta(seconds=29), transports=transports) == []
    [outcome] = recover_expired(database, now=now + lease + timedelta(seconds=1), transports=transports)
    assert (outcome.status, outcome.provider_id) == ("sent", sent.provider_id)
    recovered = row(database, message_id)
    assert (recovered.status, recovered.provider_id, recovered.attempts) == ("sent", sent.provider_id, 1)

    assert deliver(database, transports, settings, now=now + timedelta(minutes=1)) == []
    assert len(fake.sent_to(PHONE)) == 2  # the seeded old one and ours, once


def test_an_expired_lease_not_at_twilio_goes_back_to_pending_and_is_sent_once(
    database, fake, transports, settings, make_patient, make_message
):
    now = utcnow()
    lease = timedelta(seconds=30)
    message_id = make_message(make_patient(), body="Your visit is confirmed.", due_at=now)
    _prepare_then_die(database, transports, settings, message_id, now=now, send=False, lease=lease)

    later = now + lease + timedelta(seconds=1)
    [outcome] = recover_expired(database, now=later, transports=transports)
    assert outcome.status == "pending"
    assert row(database, message_id).next_attempt_at == later

    [sent] = deliver(database, transports, settings, now=later)
    assert sent.status == "sent"
    assert row(database, message_id).attempts == 2
    assert len(fake.messages) == 1


def test_two_identical_texts_are_reconciled_to_distinct_provider_messages(
    database, fake, transports, settings, make_patient, make_message
):
    now = utcnow()
    lease = timedelta(seconds=30)
    patient = make_patient()
    a = make_message(patient, kind="reply", body="Thanks, see you then.", due_at=now)
    sent_a = _prepare_then_die(database, transports, settings, a, now=now, send=True, lease=lease)
    b = make_message(patient, kind="reply", body="Thanks, see you then.", due_at=now)
    _prepare_then_die(database, transports, settings, b, now=now, send=False, lease=lease)

    outcomes = {
        o.message_id: o for o in recover_expired(database, now=now + timedelta(minutes=1), transports=transports)
    }
    assert outcomes[a].provider_id == sent_a.provider_id
    assert outcomes[b].status == "pending"  # a's message is a's: b was never sent


def test_a_timed_out_send_is_reconciled_instead_of_retried(database, fake, settings, make_patient, make_message):
    now = utcnow()
    lease = timedelta(seconds=3)  # the transport's timeout becomes 1 s
    transports = build_transports(settings, send_timeout=send_timeout_for(lease))
    message_id = make_message(make_patient(), due_at=now)
    fake.latency = 1.5  # Twilio accepts it, but answers too late

    [outcome] = deliver(database, transports, settings, now=now, lease=lease)
    assert outcome.status == "sending"
    waiting = row(database, message_id)
    assert waiting.status == "sending" and "timeout" in waiting.error
    assert waiting.lease_expires_at == now + recording.UNCERTAIN_SETTLE

    fake.latency = 0
    [recovered] = recover_expired(
        database, now=now + recording.UNCERTAIN_SETTLE + timedelta(seconds=1), transports=transports
    )
    assert recovered.status == "sent"
    assert row(database, message_id).provider_id == fake.messages[0]["sid"]
    assert len(fake.messages) == 1


def test_a_late_record_wins_over_the_reaper_if_nobody_reclaimed_the_row(
    database, fake, transports, settings, make_patient, make_message
):
    now = utcnow()
    lease = timedelta(seconds=30)
    message_id = make_message(make_patient(), due_at=now)
    [claimed] = claim_due(database, worker_id=WORKER, now=now, limit=1, lease=lease)
    [prepared] = prepare(database, [claimed], settings=settings, worker_id=WORKER, now_fn=lambda: now, lease=lease)
    # The reaper runs before Twilio has the message: back to pending.
    [reaped] = recover_expired(database, now=now + timedelta(minutes=1), transports=transports)
    assert reaped.status == "pending"
    delivery = sending.deliver(prepared, transports)
    [outcome] = recording.record(database, [delivery], worker_id=WORKER, now=now + timedelta(minutes=1))
    assert outcome.status == "sent"
    assert row(database, message_id).provider_id == delivery.sent.provider_id
    assert claim_due(database, worker_id="w2", now=now + timedelta(minutes=2), limit=5) == []


def test_the_reaper_gives_up_after_the_attempt_cap(database, transports, make_patient, make_message):
    message_id = make_message(make_patient(), channel="email")
    with database.unit_of_work() as s:
        r = s.get(OutboxMessage, message_id)
        r.status, r.claimed_by, r.claimed_at = "sending", "gone", NOW
        r.attempts, r.lease_expires_at = retry.MAX_ATTEMPTS, NOW
    [outcome] = recover_expired(database, now=NOW + timedelta(seconds=1), transports=transports)
    assert outcome.status == "failed"
    assert row(database, message_id).error.startswith("gave up after 8 attempts")
