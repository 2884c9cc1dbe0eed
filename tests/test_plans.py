"""Treatment plans: a series of visits checked together and booked all or nothing.

Through the API (``POST /api/v1/plans``), the console ("Book a series" on the patient record)
and the use case itself, on both engines. Time is frozen at Monday 2026-11-23 08:00 in Toronto
(``tests.console_fixtures``); the clinic's two physiotherapists, Maya Chen and Daniel Okafor,
work 09:00-17:00 with lunch at noon. The plans here are follow-ups (30 minutes, 15 minutes of
buffer). Messages are sent by the worker's own steps (claim, send) through the console
transports, so the body a patient would get is what the outbox row keeps.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from booking_service.errors import PlanConflicts
from booking_service.integrations.registry import build_transports
from booking_service.outbox.claim import DEFAULT_LEASE, claim_due
from booking_service.outbox.models import OutboxMessage
from booking_service.outbox.send import send_one, send_timeout_for
from booking_service.patients.models import Patient
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling import plans as scheduling_plans
from booking_service.scheduling.models import Appointment, TreatmentPlan
from booking_service.staff.operations import create_api_token, create_user
from booking_service.usecases.booking import BookingRequest, book, set_status
from booking_service.usecases.plans import PlanRequest, book_plan
from tests.conftest import NOW, SECRET, local
from tests.console_fixtures import PASSWORD, login
from tests.console_fixtures import text as page_text
from tests.support.environ import settings_from
from tests.test_booking_concurrency import OVERLAPS

pytest_plugins = ["tests.console_fixtures"]

TORONTO = ZoneInfo("America/Toronto")
TUESDAYS = ["2026-11-24", "2026-12-01", "2026-12-08", "2026-12-15", "2026-12-22", "2026-12-29"]


# --- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture
def daniel_login(database, users, clinic):
    """A practitioner login for Daniel Okafor (practitioner 1); ``users`` has Maya's."""
    with database.unit_of_work() as s:
        create_user(
            s, "daniel@example.com", role="practitioner", password=PASSWORD, practitioner_id=clinic.practitioner_ids[1]
        )


@pytest.fixture
def tokens(database, users, daniel_login):
    with database.unit_of_work() as s:
        return {
            who: {"Authorization": f"Bearer {create_api_token(s, email, now=NOW)}"}
            for who, email in (
                ("desk", "desk@example.com"),
                ("maya", "maya@example.com"),
                ("daniel", "daniel@example.com"),
            )
        }


@pytest.fixture
def api(console_app):
    return console_app.test_client()


@pytest.fixture
def ana(database, clinic, booked):
    """Ana Silva, Maya's patient since this morning's initial assessment (11:00)."""
    appointment_id = booked(local("2026-11-23", "11:00"), practitioner=0)
    with database.unit_of_work() as s:
        return s.get(Appointment, appointment_id).patient_id


def make_patients(database, count: int) -> list[int]:
    with database.unit_of_work() as s:
        people = [
            Patient(first_name=f"Pat{n}", last_name="Series", email=f"series{n}@example.com", email_consent=True)
            for n in range(count)
        ]
        s.add_all(people)
        s.flush()
        return [p.id for p in people]


def body(clinic, patient_id: int, **overrides) -> dict:
    """Six weekly follow-ups with Maya, Tuesdays at 10:00 from 2026-11-24."""
    return {
        "patient_id": patient_id,
        "service_id": clinic.follow_up_id,
        "location_id": clinic.location_id,
        "practitioner_id": clinic.practitioner_ids[0],
        "first_start": local(TUESDAYS[0], "10:00").isoformat(),
        "count": 6,
        "every_days": 7,
        **overrides,
    }


def request_for(clinic, patient_id: int, **overrides) -> PlanRequest:
    values = {
        "patient_id": patient_id,
        "service_id": clinic.follow_up_id,
        "location_id": clinic.location_id,
        "practitioner_id": clinic.practitioner_ids[0],
        "first_start": local(TUESDAYS[0], "10:00"),
        "count": 6,
        "every_days": 7,
        **overrides,
    }
    return PlanRequest(**values)


def book_other(database, clinic, start, *, practitioner=0, email="bea@example.com") -> int:
    """Someone else books ``start`` online with the practitioner (a follow-up)."""
    with database.unit_of_work() as s:
        return book(
            s,
            BookingRequest(
                service_id=clinic.follow_up_id,
                location_id=clinic.location_id,
                practitioner_id=clinic.practitioner_ids[practitioner],
                start=start,
                patient=PatientDetails(first_name="Bea", last_name="Other", email=email),
            ),
            secret_key=SECRET,
            now=datetime.now(UTC),
        ).appointment.id


def count(database, model, *where) -> int:
    with database.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def plan_rows(database, template: str) -> list[OutboxMessage]:
    with database.session() as s:
        return list(
            s.scalars(select(OutboxMessage).where(OutboxMessage.template == template).order_by(OutboxMessage.id))
        )


def deliver_due(database, *, now) -> None:
    """What a worker does in one round: claim every due row and send it (console transports)."""
    settings = settings_from(SECRET_KEY=SECRET)
    transports = build_transports(settings, send_timeout=send_timeout_for(DEFAULT_LEASE))
    for message_id in claim_due(database, worker_id="test:1:plans", now=now, limit=100, lease=DEFAULT_LEASE):
        send_one(
            database,
            message_id,
            transports=transports,
            settings=settings,
            worker_id="test:1:plans",
            now_fn=lambda: now,
            lease=DEFAULT_LEASE,
        )


def local_times(appointments: list[dict]) -> list[str]:
    return [a["start"] for a in appointments]


# --- booking a series --------------------------------------------------------------------------------


def test_six_weekly_follow_ups_are_booked_together_at_the_same_local_time(api, clinic, tokens, ana, database):
    response = api.post("/api/v1/plans", json=body(clinic, ana), headers=tokens["desk"])

    assert response.status_code == 201, response.get_json()
    plan = response.get_json()
    assert local_times(plan["appointments"]) == [f"{day}T10:00:00-05:00" for day in TUESDAYS]
    assert {a["practitioner_id"] for a in plan["appointments"]} == {clinic.practitioner_ids[0]}
    assert {a["status"] for a in plan["appointments"]} == {"booked"}
    assert (plan["count"], plan["every_days"], plan["status"], plan["visits_done"], plan["visits_left"]) == (
        6,
        7,
        "active",
        0,
        6,
    )
    again = api.get(f"/api/v1/plans/{plan['id']}", headers=tokens["desk"]).get_json()
    assert [a["id"] for a in again["appointments"]] == [a["id"] for a in plan["appointments"]]
    one = api.get(f"/api/v1/appointments/{plan['appointments'][3]['id']}", headers=tokens["desk"]).get_json()
    assert one["plan_id"] == plan["id"]
    assert count(database, Appointment, Appointment.plan_id == plan["id"]) == 6


def test_one_confirmation_lists_every_date_and_each_visit_keeps_its_reminders(api, clinic, tokens, ana, database):
    plan = api.post("/api/v1/plans", json=body(clinic, ana), headers=tokens["desk"]).get_json()
    ids = [a["id"] for a in plan["appointments"]]

    confirmations = plan_rows(database, "plan_confirmation")
    assert sorted(m.channel for m in confirmations) == ["email", "sms"]  # one per channel, not six
    assert {m.appointment_id for m in confirmations} == {ids[0]}
    with database.session() as s:
        per_visit = s.scalars(
            select(OutboxMessage.kind).where(
                OutboxMessage.appointment_id.in_(ids), OutboxMessage.kind == "confirmation"
            )
        ).all()
        reminded = set(
            s.scalars(
                select(OutboxMessage.appointment_id).where(
                    OutboxMessage.appointment_id.in_(ids), OutboxMessage.kind == "reminder"
                )
            )
        )
    assert len(per_visit) == 2
    # The first visit is tomorrow: its e-mail reminder (two days before) is past, its text (a day
    # before) would come two hours after the confirmation; the five others are reminded as usual.
    assert reminded == set(ids[1:])

    deliver_due(database, now=NOW)

    sms, email = (
        next(m for m in plan_rows(database, "plan_confirmation") if m.channel == channel)
        for channel in ("sms", "email")
    )
    assert {sms.status, email.status} <= {"sent", "delivered"}
    assert "6 visits booked: Nov 24, Dec 1, 8, 15, 22, 29 at 10:00 AM" in sms.body
    assert sms.body.endswith("Reply STOP to opt out")
    for day in ("November 24", "December 1", "December 8", "December 15", "December 22", "December 29"):
        assert f"Tuesday, {day}, 2026 at 10:00 AM" in email.body
    assert len(re.findall(r"Change or cancel: http://testserver\.local/m/\S+", email.body)) == 6
    assert "Back pain" not in email.body and "Silva" not in sms.body


def test_any_practitioner_keeps_one_practitioner_where_they_are_free(api, clinic, tokens, ana, database):
    book_other(database, clinic, local(TUESDAYS[3], "10:00"), practitioner=0)

    response = api.post("/api/v1/plans", json=body(clinic, ana, practitioner_id=None), headers=tokens["desk"])

    assert response.status_code == 201, response.get_json()
    who = [a["practitioner_id"] for a in response.get_json()["appointments"]]
    daniel = clinic.practitioner_ids[1]
    # Daniel is free for all six, Maya for five: Daniel takes the whole series.
    assert who == [daniel] * 6
    assert response.get_json()["practitioner_id"] is None


def test_a_conflict_answers_409_with_alternatives_and_stores_nothing(api, clinic, tokens, ana, database):
    book_other(database, clinic, local(TUESDAYS[2], "10:00"))
    before = (count(database, Appointment), count(database, OutboxMessage))

    response = api.post("/api/v1/plans", json=body(clinic, ana), headers=tokens["desk"])

    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "plan_conflicts"
    [conflict] = error["conflicts"]
    assert (conflict["index"], conflict["start"], conflict["reason"]) == (
        2,
        f"{TUESDAYS[2]}T10:00:00-05:00",
        "slot_taken",
    )
    alternatives = conflict["alternatives"]
    assert 1 <= len(alternatives) <= 5
    assert {alt["practitioner_id"] for alt in alternatives} == {clinic.practitioner_ids[0]}
    assert alternatives[0]["start"].startswith(TUESDAYS[2])  # the same day first, nearest time
    assert all(alt["start"] != conflict["start"] for alt in alternatives)
    # Nothing was stored: no plan, no visit, no message.
    assert count(database, TreatmentPlan) == 0
    assert (count(database, Appointment), count(database, OutboxMessage)) == before


def test_the_conflict_resolved_by_explicit_starts_books_the_plan(api, clinic, tokens, ana, database):
    book_other(database, clinic, local(TUESDAYS[2], "10:00"))
    refused = api.post("/api/v1/plans", json=body(clinic, ana), headers=tokens["desk"]).get_json()["error"]
    [conflict] = refused["conflicts"]
    picked = conflict["alternatives"][0]["start"]
    starts = [local(day, "10:00").isoformat() for day in TUESDAYS]
    starts[conflict["index"]] = picked

    response = api.post("/api/v1/plans", json=body(clinic, ana, starts=starts), headers=tokens["desk"])

    assert response.status_code == 201, response.get_json()
    booked = response.get_json()
    assert local_times(booked["appointments"])[2] == datetime.fromisoformat(picked).isoformat()
    assert booked["every_days"] == 7  # the pattern asked for, one visit moved off it
    assert count(database, TreatmentPlan) == 1


def test_a_visit_taken_after_the_check_refuses_the_whole_plan(database, clinic, ana):
    request = request_for(clinic, ana)
    with database.unit_of_work() as s:
        assert scheduling_plans.check(s, request, now=NOW).conflicts == []
    book_other(database, clinic, local(TUESDAYS[4], "10:15"))  # overlaps the fifth visit

    with database.unit_of_work() as s, pytest.raises(PlanConflicts) as refused:
        book_plan(s, request, secret_key=SECRET, now=NOW)

    [conflict] = refused.value.extra["conflicts"]
    assert (conflict.index, conflict.conflict) == (4, "slot_taken")
    assert count(database, TreatmentPlan) == 0
    assert count(database, Appointment, Appointment.patient_id == ana) == 1  # the initial assessment only


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_booking_that_wins_mid_way_rolls_the_whole_plan_back(database, clinic, ana):
    """PostgreSQL: another desk's booking, not yet committed when the plan is checked, wins the
    fifth visit's time while the plan's inserts wait on it: the plan rolls back whole, then
    answers with that visit's conflict. (SQLite serialises writers from the check on, so
    nothing can win mid-way there.)"""
    other = database.session()
    book(
        other,
        BookingRequest(
            service_id=clinic.follow_up_id,
            location_id=clinic.location_id,
            practitioner_id=clinic.practitioner_ids[0],
            start=local(TUESDAYS[4], "10:00"),
            patient=PatientDetails(first_name="Bea", last_name="Other", email="bea@example.com"),
        ),
        secret_key=SECRET,
        now=NOW,
    )  # flushed, not committed: invisible to the plan's check
    outcome: dict = {}

    def desk() -> None:
        session = database.session()
        try:
            book_plan(session, request_for(clinic, ana), secret_key=SECRET, now=NOW)
            session.commit()
            outcome["booked"] = True
        except BaseException as exc:
            session.rollback()
            outcome["error"] = exc
        finally:
            session.close()

    thread = threading.Thread(target=desk)
    thread.start()
    try:
        _wait_for_a_lock_wait(database)
    finally:
        other.commit()
        other.close()
    thread.join(timeout=60)

    assert isinstance(outcome.get("error"), PlanConflicts), outcome
    [conflict] = outcome["error"].extra["conflicts"]
    assert (conflict.index, conflict.conflict) == (4, "slot_taken")
    assert count(database, TreatmentPlan) == 0
    assert count(database, Appointment, Appointment.patient_id == ana) == 1
    with database.session() as s:
        assert s.execute(OVERLAPS).scalar_one() == 0


def _wait_for_a_lock_wait(database, timeout: float = 20.0) -> None:
    """Until some connection waits on a lock (the plan's insert, waiting on the other booking)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with database.engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("the plan never waited on the other booking")


# --- two desks at once ------------------------------------------------------------------------------


def _race(database, requests: list[PlanRequest]) -> list[object]:
    """Every request at once, each in its own thread and session, as two desks would."""
    barrier = threading.Barrier(len(requests), timeout=60)
    outcomes: list[object] = [None] * len(requests)

    def desk(index: int, request: PlanRequest) -> None:
        session = database.session()
        try:
            session.connection()
            if database.dialect == "sqlite":
                session.rollback()  # book_plan begins its own BEGIN IMMEDIATE, as a request's would
            barrier.wait()
            try:
                outcomes[index] = book_plan(session, request, secret_key=SECRET, now=NOW)
                session.commit()
            except BaseException as exc:
                session.rollback()
                outcomes[index] = exc
        finally:
            session.close()

    threads = [threading.Thread(target=desk, args=(i, r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a desk is stuck"
    return outcomes


def test_two_overlapping_series_booked_at_once_never_overlap(database, clinic):
    first, second = make_patients(database, 2)
    # The second series starts two weeks later: its first four visits fall on the first's last four.
    requests = [
        request_for(clinic, first),
        request_for(clinic, second, first_start=local(TUESDAYS[2], "10:00")),
    ]

    outcomes = _race(database, requests)

    won = [o for o in outcomes if isinstance(o, scheduling_plans.BookedPlan)]
    lost = [o for o in outcomes if isinstance(o, PlanConflicts)]
    assert (len(won), len(lost)) == (1, 1), outcomes
    expected = [0, 1, 2, 3] if won[0].plan.patient_id == first else [2, 3, 4, 5]
    assert sorted(c.index for c in lost[0].extra["conflicts"]) == expected
    assert count(database, TreatmentPlan) == 1
    assert count(database, Appointment) == 6
    with database.session() as s:
        assert s.execute(OVERLAPS).scalar_one() == 0


def test_many_desks_booking_the_same_series_with_anyone_fill_each_practitioner_once(database, clinic):
    patients = make_patients(database, 4)
    requests = [request_for(clinic, p, practitioner_id=None) for p in patients]

    outcomes = _race(database, requests)

    won = [o for o in outcomes if isinstance(o, scheduling_plans.BookedPlan)]
    unexpected = [o for o in outcomes if not isinstance(o, scheduling_plans.BookedPlan | PlanConflicts)]
    assert unexpected == []
    assert len(won) == 2  # two practitioners free every Tuesday at 10:00: two whole series
    practitioners = [{a.practitioner_id for a in plan.appointments} for plan in won]
    assert sorted(len(p) for p in practitioners) == [1, 1]  # each series with one practitioner
    assert practitioners[0] != practitioners[1]
    assert count(database, TreatmentPlan) == 2
    assert count(database, Appointment) == 12
    with database.session() as s:
        assert s.execute(OVERLAPS).scalar_one() == 0


# --- cancelling the rest ------------------------------------------------------------------------------


def test_cancelling_the_rest_cancels_every_visit_to_come_with_one_notice(api, clinic, tokens, ana, database, frozen):
    plan = api.post("/api/v1/plans", json=body(clinic, ana), headers=tokens["desk"]).get_json()
    ids = [a["id"] for a in plan["appointments"]]
    deliver_due(database, now=NOW)  # the confirmation goes out
    for appointment_id, day in zip(ids[:2], TUESDAYS[:2], strict=True):  # two visits done
        frozen.move_to(local(day, "10:35"))
        with database.unit_of_work() as s:
            set_status(s, appointment_id, "completed", now=datetime.now(UTC))
    frozen.move_to(local("2026-12-02", "09:00"))

    response = api.post(f"/api/v1/plans/{plan['id']}/cancel", json={}, headers=tokens["desk"])

    assert response.status_code == 200, response.get_json()
    ended = response.get_json()
    assert [a["status"] for a in ended["appointments"]] == ["completed"] * 2 + ["cancelled"] * 4
    assert (ended["status"], ended["visits_done"], ended["visits_left"]) == ("cancelled", 2, 0)
    notices = plan_rows(database, "plan_cancellation")
    assert sorted(m.channel for m in notices) == ["email", "sms"]
    with database.session() as s:
        per_visit = s.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "cancellation", OutboxMessage.template.is_(None))
        ).all()
        pending_reminders = s.scalars(
            select(OutboxMessage).where(
                OutboxMessage.appointment_id.in_(ids[2:]),
                OutboxMessage.kind == "reminder",
                OutboxMessage.status == "pending",
            )
        ).all()
    assert per_visit == [] and pending_reminders == []

    deliver_due(database, now=datetime.now(UTC))
    sms = next(m for m in plan_rows(database, "plan_cancellation") if m.channel == "sms")
    assert "4 visits cancelled: Dec 8, 15, 22, 29 at 10:00 AM" in sms.body

    again = api.post(f"/api/v1/plans/{plan['id']}/cancel", headers=tokens["desk"])
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "invalid_transition"


# --- time: a series across the November DST change -------------------------------------------------------


def test_a_series_across_the_dst_change_keeps_ten_oclock_local(api, clinic, tokens, database, frozen):
    frozen.move_to(datetime(2026, 10, 19, 13, 0, tzinfo=UTC))  # Monday 2026-10-19, 09:00 EDT
    [patient] = make_patients(database, 1)
    response = api.post(
        "/api/v1/plans",
        json=body(clinic, patient, first_start="2026-10-27T10:00:00-04:00", count=3),
        headers=tokens["desk"],
    )

    assert response.status_code == 201, response.get_json()
    starts = local_times(response.get_json()["appointments"])
    assert starts == ["2026-10-27T10:00:00-04:00", "2026-11-03T10:00:00-05:00", "2026-11-10T10:00:00-05:00"]
    with database.session() as s:
        utc = s.scalars(
            select(Appointment.start_at).where(Appointment.patient_id == patient).order_by(Appointment.start_at)
        )
        assert [u.astimezone(UTC).hour for u in utc] == [14, 15, 15]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"every_days": 7}, ["10-27 10:00", "11-03 10:00", "11-10 10:00"]),
        ({"weekdays": (1, 3)}, ["10-27 10:00", "10-29 10:00", "11-03 10:00"]),  # Tuesdays and Thursdays
        ({"every_days": 3}, ["10-27 10:00", "10-30 10:00", "11-02 10:00"]),
    ],
)
def test_occurrences_keep_the_wall_time_across_dst(options, expected):
    starts = scheduling_plans.occurrences(datetime(2026, 10, 27, 10, tzinfo=TORONTO), count=3, tz=TORONTO, **options)
    assert [s.astimezone(TORONTO).strftime("%m-%d %H:%M") for s in starts] == expected
    assert all(s.tzinfo is UTC for s in starts)


# --- what the API refuses ------------------------------------------------------------------------------


BAD_PLANS = [
    ({"count": 0}, "count"),
    ({"count": 53}, "count"),
    ({"every_days": 0}, "every_days"),
    ({"every_days": 91}, "every_days"),
    ({"first_start": None}, "first_start"),
    ({"count": None}, "count"),
    ({"starts": []}, "starts"),
    ({"starts": ["2026-11-24T10:00:00-05:00"] * 53, "count": None}, "starts"),
    ({"starts": ["2026-11-24T10:00:00-05:00", "2026-12-01T10:00:00-05:00"]}, "count"),  # count 6 given
    ({"starts": ["2026-11-24T10:00:00-05:00", "2026-11-24T10:15:00-05:00"], "count": None}, "starts.1"),
    ({"first_start": "2026-11-24T10:00:00"}, "first_start"),
    ({"frequency": "weekly"}, "frequency"),
]


def test_bad_plans_are_a_422_naming_the_field_and_store_nothing(api, clinic, tokens, ana, database):
    for overrides, field in BAD_PLANS:
        response = api.post("/api/v1/plans", json=body(clinic, ana, **overrides), headers=tokens["desk"])

        assert response.status_code == 422, (overrides, response.get_json())
        assert field in response.get_json()["error"]["fields"], (overrides, response.get_json())
    assert count(database, TreatmentPlan) == 0


def test_an_unknown_patient_is_a_404(api, clinic, tokens, database):
    response = api.post("/api/v1/plans", json=body(clinic, 999_999), headers=tokens["desk"])
    assert response.status_code == 404


def test_visits_beyond_the_plan_horizon_are_conflicts_without_alternatives(api, clinic, tokens, ana):
    # Staff may book a plan 400 days ahead (beyond the 90 days of online booking): here until
    # 2027-12-28 08:00, so the visits from 2027-12-28 10:00 on are not bookable times.
    far = {"first_start": local("2027-12-21", "10:00").isoformat(), "count": 4}
    response = api.post("/api/v1/plans", json=body(clinic, ana, **far), headers=tokens["desk"])

    assert response.status_code == 409
    conflicts = response.get_json()["error"]["conflicts"]
    assert [(c["index"], c["reason"], c["alternatives"]) for c in conflicts] == [
        (1, "slot_unavailable", []),
        (2, "slot_unavailable", []),
        (3, "slot_unavailable", []),
    ]


# --- who may do what ---------------------------------------------------------------------------------------


def test_a_practitioner_books_plans_only_with_themselves_and_sees_only_their_own(api, clinic, tokens, ana, database):
    for_daniel = api.post(
        "/api/v1/plans", json=body(clinic, ana, practitioner_id=clinic.practitioner_ids[1]), headers=tokens["maya"]
    )
    assert for_daniel.status_code == 422
    assert for_daniel.get_json()["error"]["fields"]["practitioner_id"] == "Use your own practitioner id."
    assert api.post("/api/v1/plans", json=body(clinic, ana), headers=tokens["daniel"]).status_code == 404

    mine = api.post("/api/v1/plans", json=body(clinic, ana), headers=tokens["maya"])
    assert mine.status_code == 201
    plan_id = mine.get_json()["id"]
    assert api.get(f"/api/v1/plans/{plan_id}", headers=tokens["maya"]).status_code == 200
    hidden = api.get(f"/api/v1/plans/{plan_id}", headers=tokens["daniel"])
    unknown = api.get("/api/v1/plans/999999", headers=tokens["daniel"])
    assert hidden.status_code == unknown.status_code == 404
    assert api.post(f"/api/v1/plans/{plan_id}/cancel", headers=tokens["daniel"]).status_code == 404
    assert count(database, Appointment, Appointment.plan_id == plan_id, Appointment.status == "booked") == 6


# --- the console: "Book a series" on the patient record ----------------------------------------------------


def series_form(clinic, **overrides) -> dict:
    """The series form as the desk fills it: six weekly follow-ups with Maya, Tuesdays at 10:00."""
    return {
        "service": str(clinic.follow_up_id),
        "location": str(clinic.location_id),
        "practitioner": str(clinic.practitioner_ids[0]),
        "first_day": TUESDAYS[0],
        "time": "10:00",
        "repeat": "weekly",
        "weekday": ["1"],
        "count": "6",
        "every_days": "7",
        **overrides,
    }


def previewed_fields(html: str) -> dict:
    """The hidden fields a preview page carries to "Book all": the series' signature and starts."""
    fields = dict(re.findall(r'<input type="hidden" name="((?:start_\d+)|previewed)" value="([^"]*)"', html))
    return {
        name: value.replace("&amp;", "&").replace("&#39;", "'").replace("&#34;", '"') for name, value in fields.items()
    }


def alternatives_offered(html: str, index: int) -> list[str]:
    return re.findall(rf'name="choice_{index}" value="([^"]+)"', html)


def test_a_conflict_with_nobody_chosen_says_nobody_is_free():
    from booking_service.console.plans import conflict_text

    assert conflict_text("slot_taken", None) == "Taken: nobody is free then"
    assert conflict_text("slot_taken", "Maya Chen") == "Taken: Maya Chen is not free then"
    assert conflict_text("patient_overlap", "Maya Chen") == "The patient has another visit then"


def test_the_desk_books_a_series_from_the_patient_record_resolving_a_conflict(desk, clinic, ana, database):
    book_other(database, clinic, local(TUESDAYS[2], "10:00"))
    record = desk.get(f"/staff/patients/{ana}")
    assert f'href="/staff/patients/{ana}/plans/new"' in page_text(record)
    assert "Book a series" in page_text(desk.get(f"/staff/patients/{ana}/plans/new"))

    preview = desk.post(f"/staff/patients/{ana}/plans/new", data={**series_form(clinic), "step": "preview"})

    html = page_text(preview)
    assert preview.status_code == 200
    assert html.count(">OK</span>") == 5 and html.count(">Conflict</span>") == 1
    assert "Taken: Maya Chen is not free then" in html  # the series is hers: named, not "nobody"
    offered = alternatives_offered(html, 2)
    assert 1 <= len(offered) <= 5
    assert count(database, TreatmentPlan) == 0  # a preview books nothing

    booked = desk.post(
        f"/staff/patients/{ana}/plans/new",
        data={**series_form(clinic), **previewed_fields(html), "choice_2": offered[0], "step": "book"},
    )

    assert booked.status_code == 302
    plan_page = desk.get(booked.headers["Location"])
    assert "0 done</strong>, <strong>6 left" in page_text(plan_page)
    assert "Weekly on Tue" in page_text(plan_page)
    with database.session() as s:
        plan = s.scalars(select(TreatmentPlan)).one()
        starts = [a.start_at for a in plan.appointments]
        assert (plan.weekdays, plan.every_days, plan.source) == ([1], None, "staff")
    picked = datetime.fromisoformat(offered[0].replace("Z", "+00:00"))
    assert starts == sorted([local(d, "10:00") for i, d in enumerate(TUESDAYS) if i != 2] + [picked])
    assert sorted(m.channel for m in plan_rows(database, "plan_confirmation")) == ["email", "sms"]
    record = page_text(desk.get(f"/staff/patients/{ana}"))
    assert "0 done, 6 left" in record and "Cancel the rest of this plan" in record


def test_book_all_after_a_visit_was_taken_meanwhile_books_nothing_and_shows_the_conflict(desk, clinic, ana, database):
    html = page_text(desk.post(f"/staff/patients/{ana}/plans/new", data={**series_form(clinic), "step": "preview"}))
    assert ">Conflict</span>" not in html
    book_other(database, clinic, local(TUESDAYS[3], "10:00"))  # another desk, between preview and "Book all"

    response = desk.post(
        f"/staff/patients/{ana}/plans/new", data={**series_form(clinic), **previewed_fields(html), "step": "book"}
    )

    assert response.status_code == 409
    again = page_text(response)
    assert "nothing was booked" in again and again.count(">Conflict</span>") == 1
    assert alternatives_offered(again, 3)
    assert count(database, TreatmentPlan) == 0
    assert count(database, Appointment, Appointment.patient_id == ana) == 1


def test_a_series_changed_after_its_preview_is_previewed_again_not_booked(desk, clinic, ana, database):
    html = page_text(desk.post(f"/staff/patients/{ana}/plans/new", data={**series_form(clinic), "step": "preview"}))

    response = desk.post(
        f"/staff/patients/{ana}/plans/new",
        data={**series_form(clinic, count="8"), **previewed_fields(html), "step": "book"},
    )

    assert response.status_code == 200
    assert "The series changed since the preview" in page_text(response)
    assert page_text(response).count(">OK</span>") == 8
    assert count(database, TreatmentPlan) == 0


BAD_SERIES = [
    ({"count": "0"}, "Give a number of visits from 1 to 52."),
    ({"weekday": []}, "Tick at least one day of the week."),
    ({"repeat": "every", "every_days": "120"}, "Give a number of days between visits from 1 to 90."),
    ({"time": "25:00"}, "Give a time as HH:MM."),
]


def test_a_bad_series_is_shown_again_with_the_field_to_fix(desk, clinic, ana, database):
    for overrides, words in BAD_SERIES:
        response = desk.post(
            f"/staff/patients/{ana}/plans/new", data={**series_form(clinic, **overrides), "step": "preview"}
        )
        assert response.status_code == 422, overrides
        assert words in page_text(response), overrides
    assert count(database, TreatmentPlan) == 0


def test_every_n_days_in_the_console(desk, clinic, ana):
    form = series_form(clinic, repeat="every", every_days="3", count="4", first_day="2026-11-24")
    html = page_text(desk.post(f"/staff/patients/{ana}/plans/new", data={**form, "step": "preview"}))
    for day in ("Tue 24 Nov 2026, 10:00", "Fri 27 Nov 2026, 10:00", "Mon 30 Nov 2026, 10:00", "Thu 3 Dec 2026, 10:00"):
        assert day in html


def test_cancelling_the_rest_from_the_patient_record(desk, clinic, ana, database):
    with database.unit_of_work() as s:
        plan_id = book_plan(s, request_for(clinic, ana), secret_key=SECRET, now=NOW).plan.id

    response = desk.post(f"/staff/plans/{plan_id}/cancel", data={"back": "patient"})

    assert response.status_code == 302 and response.headers["Location"].endswith(f"/staff/patients/{ana}")
    record = page_text(desk.get(response.headers["Location"]))
    assert "Cancelled the rest of the plan: 6 visits." in record
    assert "0 done, 0 left" in record and "(rest cancelled)" in record
    assert count(database, Appointment, Appointment.plan_id == plan_id, Appointment.status == "cancelled") == 6
    assert sorted(m.channel for m in plan_rows(database, "plan_cancellation")) == ["email", "sms"]


def test_a_practitioner_books_series_only_with_themselves_and_sees_only_their_plans(
    physio, console_app, clinic, ana, daniel_login, database
):
    form = page_text(physio.get(f"/staff/patients/{ana}/plans/new"))
    assert "Anyone free" not in form and "Daniel Okafor" not in form
    with database.unit_of_work() as s:
        plan_id = book_plan(s, request_for(clinic, ana), secret_key=SECRET, now=NOW).plan.id
    assert physio.get(f"/staff/plans/{plan_id}").status_code == 200

    daniel = console_app.test_client()
    assert login(daniel, "daniel@example.com").status_code == 302
    assert daniel.get(f"/staff/plans/{plan_id}").status_code == 404
    assert daniel.get(f"/staff/patients/{ana}/plans/new").status_code == 404
    assert daniel.post(f"/staff/plans/{plan_id}/cancel").status_code == 404
    assert count(database, Appointment, Appointment.plan_id == plan_id, Appointment.status == "booked") == 6


# --- a patient's data -----------------------------------------------------------------------------------------


def test_a_patients_plans_are_in_their_data_export_and_move_when_records_merge(database, clinic, ana):
    from booking_service.patients.merge import merge_patients
    from booking_service.usecases.export import export_patient

    [duplicate] = make_patients(database, 1)
    with database.unit_of_work() as s:
        plan = book_plan(s, request_for(clinic, duplicate), secret_key=SECRET, now=NOW).plan
        plan_id, visits = plan.id, [a.id for a in plan.appointments]
    with database.unit_of_work() as s:
        merge_patients(s, keep_id=ana, merge_id=duplicate, now=NOW)
    with database.unit_of_work() as s:
        exported = export_patient(s, ana, now=NOW)["treatment_plans"]
    assert [(p["id"], p["count"], p["every_days"], p["appointment_ids"]) for p in exported] == [(plan_id, 6, 7, visits)]
