"""The statement budget of the hot paths: a test fails when a request sends more statements to
the database than it did when the budget was set (bench/roundtrips.py prints them all).

Counted like bench/roundtrips.py's ``Traffic``: every statement the application executes
(``before_cursor_execute``), after warm-up requests, so per-process caches are as in production.
SQLite's explicit ``BEGIN`` (db.py sends it through the cursor) is left out: it is the
transaction, as psycopg's implicit one is on PostgreSQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from booking_service.audit.models import AuditEvent
from booking_service.db import utcnow
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import ConsentEvent, Patient

# Availability: the catalogue's version (clinic.cache) and the calendar's busy time.
AVAILABILITY_STATEMENTS = 2
# A booking of a new patient: the catalogue's version, the calendar's busy time, the identity
# lock (PostgreSQL only), the lookup that also reads the opt-out, the patient with its consents
# and their audit events (one statement on PostgreSQL, three on SQLite), the appointment, the
# outbox rows, the booking's audit event, the waitlist openings it may take.
BOOKING_STATEMENTS = {"postgresql": 9, "sqlite": 10}


@contextlib.contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The statements the application sends through ``engine`` inside the block."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        if statement.strip().upper() not in ("BEGIN", "BEGIN IMMEDIATE"):
            sent.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


@contextlib.contextmanager
def flushes(database) -> Iterator[list[int]]:
    """The ORM flushes (units of work that wrote something) of ``database``'s sessions inside
    the block: the number of new, changed and deleted instances each wrote."""
    seen: list[int] = []

    def count(session, _context, _instances) -> None:
        seen.append(len(session.new) + len(session.dirty) + len(session.deleted))

    event.listen(database.session_factory, "before_flush", count)
    try:
        yield seen
    finally:
        event.remove(database.session_factory, "before_flush", count)


def test_an_availability_request_sends_the_version_and_the_busy_query_only(make_clinic, app):
    clinic = make_clinic()
    client = app.test_client()
    monday = date.today() + timedelta(days=14 - date.today().weekday())
    query = (
        f"/api/v1/availability?service_id={clinic.follow_up_id}&location_id={clinic.location_id}"
        f"&practitioner_id={clinic.practitioner_ids[0]}&start={monday}&end={monday + timedelta(days=6)}"
    )
    assert client.get(query).status_code == 200  # warm-up: the catalogue is loaded

    with statements(app.extensions["database"].engine) as sent:
        response = client.get(query)

    assert response.status_code == 200 and response.get_json()["slots"]
    assert len(sent) <= AVAILABILITY_STATEMENTS, "\n".join(sent)
    assert "catalogue_version" in sent[0] and "appointments" in sent[1]


def _free_slots(client, clinic, practitioner_index: int) -> list[dict]:
    today = utcnow().date()
    response = client.get(
        "/api/v1/availability",
        query_string={
            "service_id": clinic.follow_up_id,
            "location_id": clinic.location_id,
            "practitioner_id": clinic.practitioner_ids[practitioner_index],
            "start": (today + timedelta(days=3)).isoformat(),
            "end": (today + timedelta(days=9)).isoformat(),
        },
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["slots"]


def _book(client, clinic, slot: dict, n: int):
    return client.post(
        "/api/v1/appointments",
        json={
            "service_id": clinic.follow_up_id,
            "location_id": clinic.location_id,
            "practitioner_id": slot["practitioner_id"],
            "start": slot["start"],
            "patient": {
                "first_name": "Budget",
                "last_name": f"Patient{n}",
                "email": f"budget{n}@example.org",
                "phone": f"+1416555{n:04d}",
                "sms_consent": True,
                "email_consent": True,
                "exercise_sms_consent": False,
            },
        },
    )


def test_one_booking_of_a_new_patient_stays_within_its_statement_budget(app, client, make_clinic, database):
    clinic = make_clinic()
    assert _book(client, clinic, _free_slots(client, clinic, 1)[0], 1).status_code == 201  # warm-up
    slot = _free_slots(client, clinic, 0)[0]

    with statements(app.extensions["database"].engine) as sent, flushes(app.extensions["database"]) as flushed:
        response = _book(client, clinic, slot, 2)

    assert response.status_code == 201, response.get_json()
    assert len(sent) <= BOOKING_STATEMENTS[database.dialect], "\n".join(sent)
    # Each row is its own statement (db.insert_instance, planning.insert_new, audit.record):
    # no unit of work runs (issue 13: two flushes were a fifth of a booking's CPU).
    assert flushed == []
    # Nothing of the booking was lost on the way: the patient, both consents in the ledger and
    # the trail, the confirmation and reminders, the booking's audit event.
    with database.unit_of_work() as s:
        patient = s.scalars(select(Patient).where(Patient.email == "budget2@example.org")).one()
        assert (patient.sms_consent, patient.email_consent, patient.exercise_sms_consent) == (True, True, False)
        ledger = s.scalars(select(ConsentEvent.channel).where(ConsentEvent.patient_id == patient.id)).all()
        assert sorted(ledger) == ["email", "sms"]
        trail = s.execute(
            select(AuditEvent.action, AuditEvent.resource_id).where(AuditEvent.patient_id == patient.id)
        ).all()
        assert sorted(a for a, _ in trail) == ["appointment.book", "patient.consent", "patient.consent"]
        assert all(resource == patient.id for action, resource in trail if action == "patient.consent")
        kinds = s.execute(
            select(OutboxMessage.kind, func.count())
            .where(OutboxMessage.patient_id == patient.id)
            .group_by(OutboxMessage.kind)
        ).all()
        assert dict(kinds)["confirmation"] == 2  # e-mail and text


@pytest.mark.parametrize("taken_by", ["another patient", "the same patient"])
def test_a_refused_booking_in_a_fresh_transaction_writes_nothing_and_answers_409(
    app, client, make_clinic, database, taken_by
):
    """No savepoint in a booking request: the database's refusal rolls the whole transaction
    back, and the answer is still the friendly 409 with alternatives."""
    clinic = make_clinic()
    slots = _free_slots(client, clinic, 0)
    assert _book(client, clinic, slots[0], 1).status_code == 201
    with database.unit_of_work() as s:
        before = (s.scalar(select(func.count(Patient.id))), s.scalar(select(func.count(OutboxMessage.id))))

    if taken_by == "another patient":
        response = _book(client, clinic, slots[0], 2)
        code = "slot_taken"
    else:  # the same patient, another practitioner at the same time: the patient overlap guard
        other = next(s for s in _free_slots(client, clinic, 1) if s["start"] == slots[0]["start"])
        response = _book(client, clinic, other, 1)
        code = "patient_overlap"

    assert response.status_code == 409, response.get_json()
    assert response.get_json()["error"]["code"] == code
    with database.unit_of_work() as s:
        after = (s.scalar(select(func.count(Patient.id))), s.scalar(select(func.count(OutboxMessage.id))))
    assert after == before
