"""Exercise nudges: which days the sweep plans and when they are due (DST both ways), what
stops one at planning and at send time, and two sweeps at once. Both engines; the real worker
steps send to the local Twilio double."""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from booking_service.exercises.models import Program, ProgramLog
from booking_service.exercises.nudges import plan_nudges
from booking_service.exercises.programs import program_url
from booking_service.integrations.registry import build_transports
from booking_service.outbox.claim import DEFAULT_LEASE, claim_due
from booking_service.outbox.models import OutboxMessage
from booking_service.outbox.send import send_one, send_timeout_for
from booking_service.patients.models import Patient, SmsOptOut
from booking_service.scheduling.models import Appointment
from tests.conftest import SECRET, local
from tests.support.environ import settings_from
from tests.support.programs import add_patient, add_program

PHONE = "+14165550123"
WORKER = "host:1:nudge"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def clinic(make_clinic):
    return make_clinic()


@pytest.fixture
def make_program(database, clinic):
    """``make_program(patient=..., **program)``: a patient (overrides in ``patient``) and an
    active program every day at 09:00 Toronto time; returns the program id."""

    def make(patient: dict | None = None, **program) -> int:
        with database.unit_of_work() as s:
            person = add_patient(s, **(patient or {}))
            return add_program(s, clinic, person.id, **program).id

    return make


def sweep(database, now: datetime) -> int:
    with database.unit_of_work() as s:
        return plan_nudges(s, now=now)


def nudges(database) -> list[OutboxMessage]:
    with database.unit_of_work() as s:
        rows = list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "nudge").order_by(OutboxMessage.id)))
        s.expunge_all()
        return rows


def add_appointment(database, clinic, patient_id: int, start: datetime, status: str = "booked") -> None:
    with database.unit_of_work() as s:
        s.add(
            Appointment(
                patient_id=patient_id,
                practitioner_id=clinic.practitioner_ids[1],
                location_id=clinic.location_id,
                service_id=clinic.follow_up_id,
                start_at=start,
                end_at=start + timedelta(minutes=30),
                busy_until=start + timedelta(minutes=45),
                status=status,
                manage_nonce=secrets.token_hex(16),
                manage_token_hash=secrets.token_hex(32),
            )
        )


def patient_of(database, program_id: int) -> int:
    with database.unit_of_work() as s:
        return s.get(Program, program_id).patient_id


def log_done(database, program_id: int, day: date) -> None:
    with database.unit_of_work() as s:
        program = s.get(Program, program_id)
        s.add(ProgramLog(program_id=program.id, patient_id=program.patient_id, local_date=day, done=True, source="sms"))


# --------------------------------------------------------------------------- when a nudge is due


@pytest.mark.parametrize(
    ("day", "at", "due_utc"),
    [
        # Spring forward in Toronto: 2026-03-08 02:00 EST -> 03:00 EDT.
        ("2026-03-07", "09:00", "2026-03-07T14:00"),  # the day before: EST, UTC-5
        ("2026-03-08", "09:00", "2026-03-08T13:00"),  # the day itself: EDT, UTC-4
        ("2026-03-08", "02:30", "2026-03-08T07:30"),  # skipped hour: moves forward to 03:30 EDT
        ("2026-03-08", "01:30", "2026-03-08T06:30"),  # before the change: still EST
        # Fall back: 2026-11-01 02:00 EDT -> 01:00 EST.
        ("2026-10-31", "09:00", "2026-10-31T13:00"),  # EDT, UTC-4
        ("2026-11-01", "09:00", "2026-11-01T14:00"),  # EST, UTC-5
        ("2026-11-01", "01:30", "2026-11-01T05:30"),  # happens twice: the first (EDT) one
        ("2026-11-01", "00:30", "2026-11-01T04:30"),
    ],
)
def test_a_nudge_is_due_at_the_programs_local_time_converted_for_that_date(database, make_program, day, at, due_utc):
    make_program(at=time.fromisoformat(at))
    assert sweep(database, local(day, "00:05")) >= 1
    [nudge] = [n for n in nudges(database) if n.dedupe_key.endswith(day)]
    assert nudge.due_at == datetime.fromisoformat(due_utc).replace(tzinfo=UTC)
    assert nudge.payload == {"program_id": nudge.payload["program_id"], "day": day, "timezone": "America/Toronto"}


def test_a_program_in_another_zone_is_nudged_at_its_own_local_time(database, make_program):
    program = make_program(timezone="America/Vancouver")
    sweep(database, local("2026-11-24", "00:30", "America/Vancouver"))
    [nudge] = nudges(database)
    assert nudge.dedupe_key == f"nudge:{program}:2026-11-24"
    assert nudge.due_at == local("2026-11-24", "09:00", "America/Vancouver")


@pytest.mark.parametrize(
    ("at", "now", "planned_days"),
    [
        ("09:00", ("2026-11-24", "00:05"), ["2026-11-24"]),  # early in the day: today's
        ("09:00", ("2026-11-24", "10:30"), ["2026-11-24"]),  # a sweep late by 90 minutes still plans it
        ("09:00", ("2026-11-24", "11:30"), []),  # more than two hours late: tomorrow is next
        ("00:30", ("2026-11-24", "22:45"), ["2026-11-25"]),  # tomorrow's, within two hours
        ("09:00", ("2026-11-24", "22:45"), []),  # tomorrow's, too far ahead yet
        ("08:00", ("2026-11-24", "07:00"), ["2026-11-24"]),
    ],
)
def test_a_sweep_plans_today_and_tomorrow_only_within_their_windows(database, make_program, at, now, planned_days):
    program = make_program(at=time.fromisoformat(at))
    sweep(database, local(*now))
    assert [n.dedupe_key for n in nudges(database)] == [f"nudge:{program}:{d}" for d in planned_days]


def test_a_second_sweep_plans_nothing_and_each_day_gets_one_nudge(database, make_program):
    make_program()
    make_program(patient={"phone": "+14165550124"})
    assert sweep(database, local("2026-11-24", "00:05")) == 2
    assert sweep(database, local("2026-11-24", "00:10")) == 0
    assert sweep(database, local("2026-11-24", "08:55")) == 0
    assert len(nudges(database)) == 2
    assert sweep(database, local("2026-11-25", "00:05")) == 2
    assert len(nudges(database)) == 4


# --------------------------------------------------------------------------- what stops a nudge at planning


def _paused(s, program):
    program.status, program.pause_reason, program.paused_at = "paused", "staff", local("2026-11-20", "10:00")


def _ended(s, program):
    program.status, program.end_reason, program.ended_at = "ended", "discharged", local("2026-11-20", "10:00")


def _opted_out(s, program):
    s.add(SmsOptOut(phone=PHONE, source="sms_reply", opted_out_at=local("2026-11-20", "10:00")))


@pytest.mark.parametrize(
    ("case", "patient", "program", "change"),
    [
        ("not a program day (Tuesday off)", {}, {"days": [0, 2, 4]}, None),
        ("before the start date", {}, {"start": date(2026, 11, 25)}, None),
        ("after the end date", {}, {"start": date(2026, 11, 1), "end": date(2026, 11, 23)}, None),
        ("paused", {}, {}, _paused),
        ("ended", {}, {}, _ended),
        ("no exercise text consent (reminder consent is not enough)", {"exercise_sms_consent": False}, {}, None),
        ("no phone", {"phone": None}, {}, None),
        ("phone reported invalid", {"phone_invalid_at": local("2026-11-20", "10:00")}, {}, None),
        ("the number replied STOP", {}, {}, _opted_out),
    ],
)
def test_no_nudge_is_planned_when(database, make_program, case, patient, program, change):
    program_id = make_program(patient=patient, **program)
    if change is not None:
        with database.unit_of_work() as s:
            change(s, s.get(Program, program_id))
    assert sweep(database, local("2026-11-24", "00:05")) == 0, case
    assert nudges(database) == []


def test_no_nudge_on_a_day_with_an_appointment_but_one_when_it_was_cancelled(database, clinic, make_program):
    busy = make_program()
    free = make_program(patient={"phone": "+14165550124"})
    add_appointment(database, clinic, patient_of(database, busy), local("2026-11-24", "16:30"))
    add_appointment(database, clinic, patient_of(database, free), local("2026-11-24", "16:30"), status="cancelled")
    # An appointment the evening before, 23:30 local, is on another local day (04:30 UTC today).
    add_appointment(database, clinic, patient_of(database, free), local("2026-11-23", "23:30"))
    sweep(database, local("2026-11-24", "00:05"))
    assert [n.dedupe_key for n in nudges(database)] == [f"nudge:{free}:2026-11-24"]


def test_no_nudge_once_the_day_is_logged_done(database, make_program):
    logged = make_program()
    make_program(patient={"phone": "+14165550124"})
    log_done(database, logged, date(2026, 11, 24))
    assert sweep(database, local("2026-11-24", "00:05")) == 1
    assert all(not n.dedupe_key.startswith(f"nudge:{logged}:") for n in nudges(database))


# --------------------------------------------------------------------------- two sweeps at once


def test_two_sweepers_at_once_plan_each_nudge_once(database, make_program):
    for i in range(30):
        make_program(patient={"phone": f"+1416555{1000 + i}"})
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            session = database.session()
            try:
                barrier.wait()
                results.append(plan_nudges(session, now=local("2026-11-24", "00:05")))
                session.commit()
            finally:
                session.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sum(results) == 30
    rows = nudges(database)
    assert len(rows) == 30 and len({r.dedupe_key for r in rows}) == 30


# --------------------------------------------------------------------------- at send time


@pytest.fixture
def settings(fake, smtp):
    return settings_from(fake.environ(), smtp.environ(), SECRET_KEY=SECRET, PUBLIC_BASE_URL="https://book.example.ca")


@pytest.fixture
def send(database, fake, settings):
    transports = build_transports(settings, send_timeout=send_timeout_for(DEFAULT_LEASE))

    def run(now: datetime) -> list[OutboxMessage]:
        for message_id in claim_due(database, worker_id=WORKER, now=now, limit=50):
            send_one(
                database, message_id, transports=transports, settings=settings, worker_id=WORKER, now_fn=lambda: now
            )
        return nudges(database)

    return run


def test_a_nudge_goes_out_at_its_time_with_the_program_link_in_the_patients_language(
    database, make_program, send, fake
):
    program_id = make_program(patient={"language": "fr", "first_name": "Françoise"})
    sweep(database, local("2026-11-24", "00:05"))
    assert send(local("2026-11-24", "08:59"))[0].status == "pending"
    [nudge] = send(local("2026-11-24", "09:00"))
    assert nudge.status == "sent"
    with database.unit_of_work() as s:
        link = program_url(s.get(Program, program_id), secret_key=SECRET, base_url="https://book.example.ca")
    [text] = fake.sent_to(PHONE)
    assert f"{link} " in text["body"]
    assert "Francoise" in text["body"] and "Répondez FAIT, ou douleur 0-10." in text["body"]


def _pause(s, program_id):
    _paused(s, s.get(Program, program_id))


def _end(s, program_id):
    _ended(s, s.get(Program, program_id))


def _log(s, program_id):
    program = s.get(Program, program_id)
    s.add(
        ProgramLog(
            program_id=program_id,
            patient_id=program.patient_id,
            local_date=date(2026, 11, 24),
            done=True,
            pain=3,
            source="page",
        )
    )


def _withdraw(s, program_id):
    s.get(Patient, s.get(Program, program_id).patient_id).exercise_sms_consent = False


def _stop(s, program_id):
    _opted_out(s, None)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_pause, "the exercise program is paused"),
        (_end, "the exercise program has ended"),
        (_log, "the exercises of that day are already logged"),
        (_withdraw, "no consent to exercise texts"),
        (_stop, "the number replied STOP (opted out of texts)"),
    ],
)
def test_a_planned_nudge_is_skipped_with_the_reason_when_since_planning(
    database, make_program, send, fake, change, reason
):
    program_id = make_program()
    sweep(database, local("2026-11-24", "00:05"))
    with database.unit_of_work() as s:
        change(s, program_id)
    [nudge] = send(local("2026-11-24", "09:00"))
    assert (nudge.status, nudge.error) in (("skipped", reason), ("cancelled", reason))
    assert fake.messages == []


def test_a_nudge_is_skipped_when_an_appointment_was_booked_that_day_since(database, clinic, make_program, send, fake):
    program_id = make_program()
    sweep(database, local("2026-11-24", "00:05"))
    add_appointment(database, clinic, patient_of(database, program_id), local("2026-11-24", "15:00"))
    [nudge] = send(local("2026-11-24", "09:00"))
    assert (nudge.status, nudge.error) == ("skipped", "the patient has an appointment that day")
    assert fake.messages == []


def test_quiet_hours_hold_a_nudge_until_8am_in_the_programs_zone(database, make_program, send, fake):
    make_program(at=time(6, 30), timezone="America/Vancouver")
    sweep(database, local("2026-11-24", "00:05", "America/Vancouver"))
    [held] = send(local("2026-11-24", "06:30", "America/Vancouver"))
    assert held.status == "pending" and "quiet hours" in held.error
    assert held.next_attempt_at == local("2026-11-24", "08:00", "America/Vancouver")
    assert send(local("2026-11-24", "07:59", "America/Vancouver"))[0].status == "pending"
    assert send(local("2026-11-24", "08:00", "America/Vancouver"))[0].status == "sent"
    assert len(fake.messages) == 1


def test_a_nudge_held_past_its_day_is_skipped_not_sent_the_next_morning(database, make_program, send, fake):
    make_program(at=time(21, 30))
    sweep(database, local("2026-11-24", "00:05"))
    [held] = send(local("2026-11-24", "21:30"))
    assert held.status == "pending"  # quiet hours: would open at 08:00 tomorrow
    [nudge] = send(local("2026-11-25", "08:00"))
    assert (nudge.status, nudge.error) == ("skipped", "the day of this nudge is over")
    assert fake.messages == []


def test_the_daily_cap_counts_reminders_and_nudges_together(database, clinic, make_program, send, fake):
    program_id = make_program()
    patient_id = patient_of(database, program_id)
    with database.unit_of_work() as s:
        s.add(
            OutboxMessage(
                patient_id=patient_id,
                channel="sms",
                kind="reminder",
                to=PHONE,
                body="Reminder sent this morning",
                payload={},
                due_at=local("2026-11-24", "08:00"),
                next_attempt_at=local("2026-11-24", "08:00"),
                status="sent",
                sent_at=local("2026-11-24", "08:01"),
                attempts=1,
                dedupe_key="test:reminder",
            )
        )
    sweep(database, local("2026-11-24", "00:05"))
    [nudge] = send(local("2026-11-24", "09:00"))
    assert (nudge.status, nudge.error) == ("skipped", "daily SMS cap reached (1 reminder or nudge texts)")
    assert fake.messages == []
