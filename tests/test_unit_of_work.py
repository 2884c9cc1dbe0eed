"""One unit of work per request, committed at the edge; savepoints where domain code recovers.

A request's writes are kept only when its answer is a success or a redirect: an exception or an
error answer leaves nothing written. A booking refused by the database (a rival's row appearing
between the re-check and the insert) rolls back to its own savepoint, so what the caller wrote
earlier in the same transaction stays.
"""

from __future__ import annotations

import pytest
from flask import redirect
from sqlalchemy import event, func, select

from booking_service.context import db_session, discard_changes
from booking_service.errors import SlotTaken, ValidationFailed
from booking_service.patients.models import Patient
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.usecases.booking import BookingRequest, book, cancel
from tests.conftest import NOW, SECRET, local

TUESDAY = "2026-11-24"


def _patients(database, first_name: str) -> int:
    with database.session() as s:
        return s.scalar(select(func.count()).select_from(Patient).where(Patient.first_name == first_name))


@pytest.fixture
def writing_app(app):
    """The app with one extra route that writes a patient, then answers as ``outcome`` says."""

    @app.get("/_test/write/<outcome>")  # GET: no CSRF token needed in a test
    def write_then(outcome: str):
        session = db_session()
        session.add(Patient(first_name=f"Written-{outcome}", last_name="Test", created_at=NOW))
        session.flush()
        if outcome == "raise":
            raise RuntimeError("the view failed after writing")
        if outcome == "domain-error":
            raise ValidationFailed("Some details need fixing.", fields={"phone": "phone_invalid"})
        if outcome == "error-page":
            return "no", 422
        if outcome == "flashed-failure":
            discard_changes()
            return redirect("/")
        return redirect("/") if outcome == "redirect" else ("ok", 200)

    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer a 500, as in production
    return app


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("raise", 500), ("domain-error", None), ("error-page", 422), ("flashed-failure", 302)],
)
def test_a_request_that_fails_after_writing_leaves_nothing_written(writing_app, database, outcome, status):
    response = writing_app.test_client().get(f"/_test/write/{outcome}")

    assert response.status_code >= 400 if status is None else response.status_code == status
    assert _patients(database, f"Written-{outcome}") == 0


@pytest.mark.parametrize(("outcome", "status"), [("ok", 200), ("redirect", 302)])
def test_a_request_that_succeeds_is_committed_once_at_the_edge(writing_app, database, outcome, status):
    response = writing_app.test_client().get(f"/_test/write/{outcome}")

    assert response.status_code == status
    assert _patients(database, f"Written-{outcome}") == 1


def _request(clinic, first_name: str, start) -> BookingRequest:
    return BookingRequest(
        service_id=clinic.initial_id,
        location_id=clinic.location_id,
        practitioner_id=clinic.practitioner_ids[0],
        start=start,
        patient=PatientDetails(first_name=first_name, last_name="Tester", email=f"{first_name.lower()}@example.com"),
        source="staff",
    )


def test_a_booking_refused_by_the_database_keeps_the_callers_earlier_writes(database, make_clinic):
    clinic = make_clinic()
    start = local(TUESDAY, "10:00")
    with database.unit_of_work() as s:
        rival = book(s, _request(clinic, "Rival", start), secret_key=SECRET, now=NOW).appointment
        cancel(s, rival.id, now=NOW, by_patient=False)
    rival_id = rival.id

    session = database.session()
    try:
        # The caller's own earlier write, in the same transaction as the booking below.
        session.add(Patient(first_name="Earlier", last_name="Write", created_at=NOW))
        session.flush()

        # A rival's visit reappears between the re-check (slot free) and the insert, as when a
        # concurrent transaction wins the race: the database refuses the insert.
        def rival_returns(_conn, cursor, statement, _params, _context, _many):
            if statement.lstrip().upper().startswith("INSERT INTO APPOINTMENTS"):
                cursor.execute(
                    f"UPDATE appointments SET status = 'booked', cancelled_at = NULL WHERE id = {int(rival_id)}"
                )

        connection = session.connection()
        event.listen(connection, "before_cursor_execute", rival_returns)
        with pytest.raises(SlotTaken):
            book(session, _request(clinic, "Loser", start), secret_key=SECRET, now=NOW)
        event.remove(connection, "before_cursor_execute", rival_returns)
        session.commit()
    finally:
        session.close()

    assert _patients(database, "Earlier") == 1
    assert _patients(database, "Loser") == 0  # the booking's own writes went with its savepoint
    with database.session() as s:
        statuses = s.scalars(select(Appointment.status)).all()
    assert statuses == ["cancelled"]  # the rival's reappearance was inside the savepoint too
