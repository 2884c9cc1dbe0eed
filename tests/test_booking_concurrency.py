"""Races for one slot, on both engines: exactly one booking wins and the others get a clear answer.

Each client is a thread with its own session (its own connection), released together by a
barrier, calling the same ``book()`` as the API and the pages. The database is then checked with a
self-join that looks for any two active appointments that overlap (practitioner time including
the buffer, patient time without it), so a bug that let a second row in cannot hide behind a
friendly error count.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy import func, select, text

from booking_service.db import Database
from booking_service.errors import PatientBusy, SlotTaken
from booking_service.patients.models import Patient
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.usecases.booking import Booked, BookingRequest, book
from tests.conftest import NOW, SECRET, local

CLIENTS = 20  # the default pool holds 20 PostgreSQL connections: every client gets one at once
DAY = "2026-11-24"  # the Tuesday after NOW

OVERLAPS = text(
    """
    SELECT count(*) FROM appointments AS a JOIN appointments AS b ON a.id < b.id
    WHERE a.status <> 'cancelled' AND b.status <> 'cancelled' AND (
        (a.practitioner_id = b.practitioner_id AND a.start_at < b.busy_until AND b.start_at < a.busy_until)
        OR (a.patient_id = b.patient_id AND a.start_at < b.end_at AND b.start_at < a.end_at))
    """
)


@dataclass(frozen=True)
class Outcome:
    request: BookingRequest
    booked: Booked | None = None
    error: BaseException | None = None

    @property
    def kind(self) -> str:
        return "booked" if self.booked is not None else type(self.error).__name__


def patient(n: int, *, first_name: str = "Pat") -> PatientDetails:
    return PatientDetails(
        first_name=first_name, last_name=f"Client{n}", email=f"client{n}@example.com", email_consent=True
    )


def race(database: Database, requests: list[BookingRequest]) -> list[Outcome]:
    """Run every request at once, each in its own thread and session; commit the winners.

    On PostgreSQL every thread holds its connection (in an open transaction, harmless under READ
    COMMITTED) before the barrier, so the race is in the database and not in connection set-up.
    Any exception is recorded, never swallowed.
    """
    barrier = threading.Barrier(len(requests), timeout=60)
    outcomes: list[Outcome | None] = [None] * len(requests)

    def client(index: int, request: BookingRequest) -> None:
        session = database.session()
        try:
            session.connection()
            if database.dialect == "sqlite":
                session.rollback()  # book() begins its own BEGIN IMMEDIATE, as a request's would
            barrier.wait()
            try:
                booked = book(session, request, secret_key=SECRET, now=NOW)
                session.commit()
                outcomes[index] = Outcome(request, booked=booked)
            except BaseException as exc:
                session.rollback()
                outcomes[index] = Outcome(request, error=exc)
        finally:
            session.close()

    threads = [threading.Thread(target=client, args=(i, r), name=f"client-{i}") for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a client is stuck"
    assert all(outcome is not None for outcome in outcomes), "a client died before recording its outcome"
    return outcomes  # type: ignore[return-value]


def kinds(outcomes: list[Outcome]) -> Counter:
    return Counter(outcome.kind for outcome in outcomes)


def unexpected(outcomes: list[Outcome], *allowed: type[BaseException]) -> list[BaseException]:
    return [o.error for o in outcomes if o.error is not None and not isinstance(o.error, allowed)]


def assert_no_overlap(database: Database) -> None:
    with database.session() as s:
        assert s.execute(OVERLAPS).scalar_one() == 0


def active_appointments(database: Database) -> list[Appointment]:
    with database.session() as s:
        return list(s.scalars(select(Appointment).where(Appointment.status != "cancelled").order_by(Appointment.id)))


def count_patients(database: Database) -> int:
    with database.session() as s:
        return s.scalar(select(func.count()).select_from(Patient))


def test_twenty_clients_booking_one_slot_exactly_one_wins(database, make_clinic):
    clinic = make_clinic()
    start = local(DAY, "09:00")
    requests = [
        BookingRequest(
            service_id=clinic.initial_id,
            location_id=clinic.location_id,
            practitioner_id=clinic.practitioner_ids[0],
            start=start,
            patient=patient(i),
        )
        for i in range(CLIENTS)
    ]

    outcomes = race(database, requests)

    assert unexpected(outcomes, SlotTaken) == []
    assert kinds(outcomes) == {"booked": 1, "SlotTaken": CLIENTS - 1}
    winner = next(o for o in outcomes if o.booked is not None)
    [appointment] = active_appointments(database)
    assert appointment.id == winner.booked.appointment.id
    assert appointment.start_at == start
    assert appointment.practitioner_id == clinic.practitioner_ids[0]
    assert_no_overlap(database)
    # A loser writes nothing, not even the patient record it created on the way.
    assert count_patients(database) == 1
    # Losers are told it was taken (409), with other times to choose from.
    for outcome in outcomes:
        if outcome.error is not None:
            assert outcome.error.status == 409 and outcome.error.code == "slot_taken"
            assert outcome.error.extra["alternatives"], "a loser is offered alternatives"
            assert all(alt.start != start for alt in outcome.error.extra["alternatives"])


def test_overlapping_starts_for_one_practitioner_let_exactly_one_win(database, make_clinic):
    # 60-minute visits at 09:00, 09:15, 09:30 and 09:45 all overlap one another.
    clinic = make_clinic()
    starts = [local(DAY, hhmm) for hhmm in ("09:00", "09:15", "09:30", "09:45")]
    requests = [
        BookingRequest(
            service_id=clinic.initial_id,
            location_id=clinic.location_id,
            practitioner_id=clinic.practitioner_ids[0],
            start=starts[i % len(starts)],
            patient=patient(i),
        )
        for i in range(CLIENTS)
    ]

    outcomes = race(database, requests)

    assert unexpected(outcomes, SlotTaken) == []
    assert kinds(outcomes) == {"booked": 1, "SlotTaken": CLIENTS - 1}
    assert len(active_appointments(database)) == 1
    assert_no_overlap(database)
    assert count_patients(database) == 1


def test_buffer_of_a_racing_booking_keeps_the_next_start_out(database, make_clinic):
    # Follow-up: 30 minutes plus a 15-minute buffer. 09:00 keeps the practitioner busy until 09:45,
    # so 09:30 conflicts with it through the buffer alone (the visits themselves only touch).
    clinic = make_clinic()
    starts = [local(DAY, "09:00"), local(DAY, "09:30")]
    requests = [
        BookingRequest(
            service_id=clinic.follow_up_id,
            location_id=clinic.location_id,
            practitioner_id=clinic.practitioner_ids[0],
            start=starts[i % 2],
            patient=patient(i),
        )
        for i in range(CLIENTS)
    ]

    outcomes = race(database, requests)

    assert unexpected(outcomes, SlotTaken) == []
    assert kinds(outcomes) == {"booked": 1, "SlotTaken": CLIENTS - 1}
    [appointment] = active_appointments(database)
    assert appointment.busy_until - appointment.end_at == local(DAY, "09:45") - local(DAY, "09:30")
    assert_no_overlap(database)


def test_anyone_bookings_racing_for_one_time_never_double_book_a_practitioner(database, make_clinic):
    # "Anyone": two practitioners are free at 09:00, so at most two clients can win, never two
    # with the same practitioner; everybody else is told the time was taken.
    clinic = make_clinic()
    start = local(DAY, "09:00")
    requests = [
        BookingRequest(service_id=clinic.initial_id, location_id=clinic.location_id, start=start, patient=patient(i))
        for i in range(CLIENTS)
    ]

    outcomes = race(database, requests)

    assert unexpected(outcomes, SlotTaken) == []
    won = kinds(outcomes)["booked"]
    assert 1 <= won <= 2
    assert kinds(outcomes)["SlotTaken"] == CLIENTS - won
    appointments = active_appointments(database)
    assert len(appointments) == won
    assert len({a.practitioner_id for a in appointments}) == won
    assert_no_overlap(database)


def test_returning_patient_racing_for_two_practitioners_at_once_gets_one_visit(database, make_clinic):
    # One patient, many tabs: half ask practitioner A, half practitioner B, for overlapping times.
    # One visit is booked. The other practitioner is still free then, so those requests are refused
    # as the patient's own overlap (PatientBusy). Requests for the winner's practitioner collide on
    # both counts: the Python re-check says SlotTaken, the database (PostgreSQL checks the patient's
    # exclusion constraint first) may say PatientBusy; either is true and gives a 409.
    # Two rounds, because on PostgreSQL two inserts that each wait on the other's exclusion check
    # deadlock, and one round does not always hit that.
    clinic = make_clinic()
    first, second = clinic.practitioner_ids
    with database.unit_of_work() as s:  # a returning patient: known from an earlier visit
        book(
            s,
            BookingRequest(
                service_id=clinic.follow_up_id,
                location_id=clinic.location_id,
                practitioner_id=first,
                start=local("2026-11-27", "14:00"),
                patient=patient(0, first_name="Robin"),
            ),
            secret_key=SECRET,
            now=NOW,
        )
    for day in ("2026-11-24", "2026-11-25"):
        starts = {first: local(day, "10:00"), second: local(day, "10:30")}  # a 60-minute visit each
        requests = [
            BookingRequest(
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                practitioner_id=who,
                start=starts[who],
                patient=patient(0, first_name="Robin"),
            )
            for i in range(CLIENTS)
            for who in [(first, second)[i % 2]]
        ]

        outcomes = race(database, requests)

        assert unexpected(outcomes, SlotTaken, PatientBusy) == []
        assert kinds(outcomes)["booked"] == 1
        winner = next(o for o in outcomes if o.booked is not None).request.practitioner_id
        for outcome in outcomes:
            if outcome.error is not None and outcome.request.practitioner_id != winner:
                assert isinstance(outcome.error, PatientBusy), outcome.error
                assert outcome.error.status == 409 and outcome.error.code == "patient_overlap"
    assert count_patients(database) == 1
    assert len(active_appointments(database)) == 3  # the earlier visit and one per round
    assert_no_overlap(database)


# --- one rival holding its transaction open: the database settles it, not the Python re-check ---


def _in_background(database: Database, request: BookingRequest) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        with database.session() as s:
            try:
                result["booked"] = book(s, request, secret_key=SECRET, now=NOW)
                s.commit()
            except BaseException as exc:
                s.rollback()
                result["error"] = exc

    thread = threading.Thread(target=run, name="rival")
    thread.start()
    return thread, result


def _wait_until_blocked(database: Database, thread: threading.Thread) -> None:
    """Return once ``thread`` waits on the database: on PostgreSQL a backend waiting for a lock
    (the insert waiting on the rival's uncommitted row), on SQLite a thread still busy after
    half a second (``BEGIN IMMEDIATE`` waiting for the write lock)."""
    import time

    if database.dialect == "sqlite":
        time.sleep(0.5)
        assert thread.is_alive(), "the second booking should wait for the write lock"
        return
    deadline = time.monotonic() + 30
    with database.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            conn.rollback()
            if waiting:
                return
            assert thread.is_alive(), "the second booking finished without waiting for the first"
            time.sleep(0.02)
    raise AssertionError("the second booking never waited on the first one's row")


def _request(clinic, n: int, hhmm: str = "09:00", practitioner: int = 0) -> BookingRequest:
    return BookingRequest(
        service_id=clinic.initial_id,
        location_id=clinic.location_id,
        practitioner_id=clinic.practitioner_ids[practitioner],
        start=local(DAY, hhmm),
        patient=patient(n),
    )


def test_booking_whose_recheck_passed_is_refused_by_the_database_when_the_rival_commits(database, make_clinic):
    # PostgreSQL: the second booking's re-check cannot see the first's uncommitted row, so it
    # inserts and waits on the exclusion constraint; when the first commits it is refused, and the
    # refusal is reported as SlotTaken. SQLite: it waits at BEGIN IMMEDIATE and its re-check sees it.
    clinic = make_clinic()
    with database.session() as first:
        book(first, _request(clinic, 1), secret_key=SECRET, now=NOW)
        thread, result = _in_background(database, _request(clinic, 2, "09:30"))
        _wait_until_blocked(database, thread)
        first.commit()
    thread.join(timeout=60)

    assert isinstance(result.get("error"), SlotTaken), result
    assert len(active_appointments(database)) == 1
    assert count_patients(database) == 1
    assert_no_overlap(database)


def test_booking_waiting_on_a_rival_wins_when_the_rival_rolls_back(database, make_clinic):
    clinic = make_clinic()
    with database.session() as first:
        book(first, _request(clinic, 1), secret_key=SECRET, now=NOW)
        thread, result = _in_background(database, _request(clinic, 2, "09:30"))
        _wait_until_blocked(database, thread)
        first.rollback()
    thread.join(timeout=60)

    assert "error" not in result, result
    [appointment] = active_appointments(database)
    assert appointment.start_at == local(DAY, "09:30")
    assert_no_overlap(database)


def test_new_patient_booking_twice_at_once_gets_one_record_and_one_visit(database, make_clinic):
    # A first-time patient submits the form in two tabs, for two practitioners at overlapping
    # times. No thread is needed to show it: two open transactions are enough.
    clinic = make_clinic()
    with database.session() as first:
        book(first, _request(clinic, 7, "10:00", practitioner=0), secret_key=SECRET, now=NOW)
        thread, result = _in_background(database, _request(clinic, 7, "10:30", practitioner=1))
        _wait_until_blocked(database, thread)  # PostgreSQL: on the patient's advisory lock
        first.commit()
    thread.join(timeout=60)

    assert isinstance(result.get("error"), PatientBusy), result
    assert count_patients(database) == 1
    assert len(active_appointments(database)) == 1
    assert_no_overlap(database)


# --- through real HTTP -------------------------------------------------------------------------


@pytest.fixture
def live_server(app):
    """The app behind a real threaded HTTP server on a free loopback port; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_twenty_http_clients_posting_one_slot_get_one_201_and_nineteen_409(database, make_clinic, live_server):
    import json
    import urllib.error
    import urllib.request

    import time_machine

    clinic = make_clinic()
    start = local(DAY, "09:00")
    barrier = threading.Barrier(CLIENTS, timeout=60)
    answers: list[tuple[int, dict] | BaseException | None] = [None] * CLIENTS

    def post(index: int) -> None:
        body = {
            "service_id": clinic.initial_id,
            "location_id": clinic.location_id,
            "practitioner_id": clinic.practitioner_ids[0],
            "start": start.isoformat(),
            "patient": {"first_name": "Pat", "last_name": f"Client{index}", "email": f"client{index}@example.com"},
        }
        request = urllib.request.Request(
            f"{live_server}/api/v1/appointments",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answers[index] = (response.status, json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            answers[index] = (exc.code, json.loads(exc.read() or b"{}"))
        except BaseException as exc:
            answers[index] = exc

    with time_machine.travel(NOW, tick=False):  # the API books at "now": the whole process sees NOW
        threads = [threading.Thread(target=post, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    failures = [a for a in answers if not isinstance(a, tuple)]
    assert failures == []
    statuses = Counter(status for status, _ in answers)
    assert statuses == {201: 1, 409: CLIENTS - 1}, [a for a in answers if a[0] not in (201, 409)]
    for status, body in answers:
        if status == 409:
            assert body["error"]["code"] == "slot_taken"
            assert body["error"]["alternatives"], "a loser is offered other times"
        else:
            assert datetime.fromisoformat(body["start"]) == start
    assert len(active_appointments(database)) == 1
    assert_no_overlap(database)
    assert count_patients(database) == 1
