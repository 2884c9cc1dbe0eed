"""The hot paths' statement budgets: a booking and an availability request send a fixed, small
number of statements, whatever the clinic's size. A change that adds one fails here; raise the
budget only with a reason (and the figures in docs/benchmarks.md, ``python -m bench.roundtrips``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from booking_service.audit.models import AuditEvent
from booking_service.db import utcnow
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import ConsentEvent, Patient

# Application statements of one booking of a new patient (SQLite's explicit BEGIN not counted):
# catalogue version, calendar, identity lock (PostgreSQL only), lookup with the opt-out, the
# patient with its consents (one statement on PostgreSQL, three on SQLite), the appointment,
# audit events, outbox rows, the waitlist openings it may take.
BOOKING_BUDGET = {"postgresql": 9, "sqlite": 10}


class Statements:
    """Statements sent through the app's engine while active."""

    def __init__(self, app) -> None:
        self.engine = app.extensions["database"].engine
        self.seen: list[str] = []

    def _record(self, _conn, _cursor, statement, *_args) -> None:
        if statement != "BEGIN":  # SQLite's explicit BEGIN (db.py), not a query
            self.seen.append(statement)

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


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

    with Statements(app) as sent:
        response = _book(client, clinic, slot, 2)

    assert response.status_code == 201, response.get_json()
    assert len(sent.seen) <= BOOKING_BUDGET[database.dialect], "\n".join(sent.seen)
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
