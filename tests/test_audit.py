"""The audit trail: what an auditor sees after staff, API tokens, patients' links, the worker's
provider reports and the CLI act; that the table refuses UPDATE and DELETE on both engines; the
admin page, its filters and its CSV export."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from booking_service.audit import Actor, acting_as, record
from booking_service.audit.models import AuditEvent
from booking_service.patients.consent import opt_out_phone
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.tokens import manage_token
from booking_service.staff.operations import create_api_token
from tests.conftest import NOW, SECRET
from tests.console_fixtures import PASSWORD, appointment, flashed, login
from tests.console_fixtures import text as page_text

pytest_plugins = ["tests.console_fixtures"]


def events(database, **where) -> list[AuditEvent]:
    with database.unit_of_work() as s:
        query = select(AuditEvent).order_by(AuditEvent.id)
        for name, value in where.items():
            query = query.where(getattr(AuditEvent, name) == value)
        return list(s.scalars(query))


def test_the_trail_refuses_update_and_delete(database):
    with database.unit_of_work() as s:
        record(s, "patient.view", "patient", 7, now=NOW)
    for statement in ("UPDATE audit_events SET action = 'patient.nothing'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as conn:
            conn.execute(text(statement))
    [event] = events(database)
    assert (event.action, event.patient_id, event.actor_kind) == ("patient.view", 7, "system")


def test_detail_cannot_carry_clinical_or_contact_text(session):
    for detail in ({"reason": "back pain"}, {"body": "Hi Ana"}, {"email": "a@b.c"}, {"note": "x" * 200}):
        with pytest.raises(ValueError):
            record(session, "appointment.book", "appointment", 1, detail)


def test_staff_reading_a_patient_and_an_appointment_is_recorded_with_who_and_where(desk, database, booked):
    appointment_id = booked()
    patient_id = appointment(database, appointment_id).patient_id
    assert desk.get(f"/staff/patients/{patient_id}", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    assert desk.get(f"/staff/appointments/{appointment_id}", headers={"X-Request-ID": "req-42"}).status_code == 200

    viewed = events(database, action="patient.view")
    assert len(viewed) == 1
    assert (viewed[0].actor_kind, viewed[0].actor_label, viewed[0].patient_id) == (
        "staff",
        "desk@example.com",
        patient_id,
    )
    assert viewed[0].address == "10.1.2.3"
    [seen] = events(database, action="appointment.view")
    assert (seen.resource_id, seen.patient_id, seen.request_id) == (appointment_id, patient_id, "req-42")


def test_a_staff_status_change_and_a_booking_are_recorded_without_the_intake(desk, database, clinic, frozen):
    from datetime import UTC, datetime

    from booking_service.patients.operations import PatientDetails
    from booking_service.usecases.booking import BookingRequest, book
    from tests.console_fixtures import TUESDAY_10

    with database.unit_of_work() as s:
        booked = book(
            s,
            BookingRequest(
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                practitioner_id=clinic.practitioner_ids[0],
                start=TUESDAY_10,
                patient=PatientDetails(first_name="Ana", last_name="Silva", email="ana@example.com"),
                intake_reason="Sciatica after a fall",
                red_flags={"leg_weakness": True},
            ),
            secret_key=SECRET,
            now=datetime.now(UTC),
        )
        appointment_id = booked.appointment.id
    assert desk.post(f"/staff/appointments/{appointment_id}/status", data={"status": "confirmed"}).status_code == 302

    [booking] = events(database, action="appointment.book")
    assert booking.actor_kind == "system"  # booked outside any edge
    assert booking.detail["triage"] == "urgent"
    [change] = events(database, action="appointment.status")
    assert change.detail == {"from": "booked", "to": "confirmed"}
    assert (change.actor_kind, change.actor_label) == ("staff", "desk@example.com")
    everything = " ".join(str(e.detail) for e in events(database))
    assert "Sciatica" not in everything and "leg_weakness" not in everything


def test_an_api_token_read_and_change_name_the_token_and_its_user(console_app, users, database, booked):
    appointment_id = booked()
    with database.unit_of_work() as s:
        token = create_api_token(s, "desk@example.com", now=NOW)
    client = console_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/v1/appointments/{appointment_id}", headers=headers).status_code == 200
    patient_id = appointment(database, appointment_id).patient_id
    assert client.get(f"/api/v1/patients/{patient_id}", headers=headers).status_code == 200
    response = client.post(
        f"/api/v1/appointments/{appointment_id}/status", json={"status": "confirmed"}, headers=headers
    )
    assert response.status_code == 200

    [created] = events(database, action="token.create")
    for action in ("appointment.view", "patient.view", "appointment.status"):
        [event] = events(database, action=action)
        assert (event.actor_kind, event.actor_label, event.actor_token_id) == (
            "api_token",
            "desk@example.com",
            created.resource_id,
        )
        assert event.patient_id == patient_id
    assert token not in str([e.detail for e in events(database)])


def test_a_cancellation_by_manage_link_names_the_appointment_not_the_token(client, database, booked, frozen):
    appointment_id = booked()
    with database.unit_of_work() as s:
        token = manage_token(SECRET, s.get(Appointment, appointment_id).manage_nonce)
    assert client.post(f"/api/v1/manage/{token}/cancel", json={}).status_code == 200
    [event] = events(database, action="appointment.cancel")
    assert (event.actor_kind, event.actor_appointment_id, event.resource_id) == (
        "patient_link",
        appointment_id,
        appointment_id,
    )
    assert event.detail == {"by_patient": True, "late": False}
    assert all(token not in (e.request_id or "") for e in events(database))


def test_an_opt_out_recorded_by_the_worker_is_the_workers(database, booked):
    booked()
    with database.unit_of_work() as s, acting_as(Actor("worker", label="worker-1")):
        assert opt_out_phone(s, "+14165550142", source="twilio_21610", now=NOW)
    [event] = events(database, action="patient.sms_opt_out")
    assert (event.actor_kind, event.actor_label, event.detail) == ("worker", "worker-1", {"source": "twilio_21610"})
    assert "+1416" not in str(event.detail)


def test_cli_commands_are_recorded_as_the_cli(app, database):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-user", "new@example.com", "--role", "frontdesk", "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["revoke-api-token", "new@example.com"])
    assert result.exit_code == 0
    [created] = events(database, action="user.create")
    assert created.actor_kind == "cli"
    assert created.detail == {"role": "frontdesk", "practitioner_id": None}


def test_policy_update_is_recorded_with_the_fields_changed(session, make_clinic):
    from booking_service.clinic.operations import update_policy

    make_clinic()
    update_policy(session, horizon_days=60, min_notice_minutes=30)
    session.flush()
    [event] = session.scalars(select(AuditEvent)).all()
    assert (event.action, event.detail) == ("settings.update", {"fields": ["horizon_days", "min_notice_minutes"]})


# --- the admin page ------------------------------------------------------------------------------


def test_only_admins_see_the_audit_page(desk, admin, physio):
    assert desk.get("/staff/audit").status_code == 403
    assert physio.get("/staff/audit.csv").status_code == 403
    assert admin.get("/staff/audit").status_code == 200


def test_the_audit_page_filters_by_patient_and_actor_newest_first(admin, desk, database, booked, frozen):
    first, second = booked(), booked(practitioner=1, first_name="Bo", email="bo@example.com", phone="+14165550199")
    p1 = appointment(database, first).patient_id
    p2 = appointment(database, second).patient_id
    desk.get(f"/staff/patients/{p1}")
    frozen.shift(60)
    desk.get(f"/staff/appointments/{first}")
    desk.get(f"/staff/patients/{p2}")

    page = page_text(admin.get(f"/staff/audit?patient={p1}&actor=desk@"))
    assert page.index("appointment.view") < page.index("patient.view")  # newest first
    assert f'href="/staff/patients/{p2}"' not in page
    by_kind = page_text(admin.get("/staff/audit?kind=worker"))
    assert "No events match." in by_kind


def test_the_csv_export_holds_the_filtered_rows_and_is_itself_recorded(admin, desk, database, booked):
    appointment_id = booked()
    patient_id = appointment(database, appointment_id).patient_id
    desk.get(f"/staff/patients/{patient_id}")
    response = admin.get(f"/staff/audit.csv?action=patient.view&patient={patient_id}")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["action"], r["actor_label"], r["patient_id"]) for r in rows] == [
        ("patient.view", "desk@example.com", str(patient_id))
    ]
    [exported] = events(database, action="audit.export")
    assert exported.detail == {"rows": 1, "filtered_by": ["action", "patient"]}


def test_the_audit_page_pages(admin, database):
    with database.unit_of_work() as s:
        for n in range(60):
            record(s, "patient.view", "patient", n + 1, now=NOW)
    first = page_text(admin.get("/staff/audit"))
    assert "Older" in first and "Newer" not in first
    second = page_text(admin.get("/staff/audit?page=2"))
    assert "Newer" in second and "Older" not in second


def test_admins_find_the_audit_trail_in_the_menu(console_app, users):
    client = console_app.test_client()
    assert login(client, "admin@example.com").status_code == 302
    assert "Audit" in flashed(client)
