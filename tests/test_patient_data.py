"""A patient's data: the JSON export (desk roles) and the erasure (admins, confirmed), as the
desk, the patient and an auditor see them afterwards."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from booking_service.audit.models import AuditEvent
from booking_service.errors import Conflict, ValidationFailed
from booking_service.messaging.models import InboundMessage
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient, SmsOptOut
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.tokens import manage_token
from booking_service.usecases.booking import BookingRequest, book, set_status
from booking_service.usecases.erase import erase_patient
from booking_service.waitlist.models import WaitlistEntry
from tests.conftest import SECRET, local
from tests.console_fixtures import TUESDAY_10, appointment

pytest_plugins = ["tests.console_fixtures"]

MONDAY_11 = local("2026-11-23", "11:00")  # later today: still in the future at 08:00


@pytest.fixture
def history(database, clinic, frozen, booked):
    """Ana Silva: a visit today (completed), a future visit with an intake, a reply text,
    a waitlist entry with a note; the clock then at 11:40. Requested before the logged-in
    clients, so their sessions start after the clock moved. Returns (patient id, past visit id, future visit id)."""
    with database.unit_of_work() as s:
        future = book(
            s,
            BookingRequest(
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                practitioner_id=clinic.practitioner_ids[0],
                start=TUESDAY_10,
                patient=PatientDetails(
                    first_name="Ana",
                    last_name="Silva",
                    email="ana@example.com",
                    phone="+14165550142",
                    sms_consent=True,
                    email_consent=True,
                ),
                intake_reason="Sciatica after a fall",
                red_flags={"leg_weakness": True},
            ),
            secret_key=SECRET,
            now=datetime.now(UTC),
        ).appointment
        patient = future.patient
        today = book(
            s,
            BookingRequest(
                service_id=clinic.follow_up_id,
                location_id=clinic.location_id,
                practitioner_id=clinic.practitioner_ids[1],
                start=MONDAY_11,
                patient=PatientDetails(first_name="Ana", last_name="Silva", email="ana@example.com"),
                source="staff",
            ),
            secret_key=SECRET,
            now=datetime.now(UTC),
        ).appointment
        s.add(
            InboundMessage(
                from_phone="+14165550142",
                body="my back hurts a lot",
                patient_id=patient.id,
                intent="other",
                needs_staff=True,
            )
        )
        s.add(
            WaitlistEntry(
                patient_id=patient.id,
                service_id=clinic.initial_id,
                location_id=clinic.location_id,
                earliest_date=TUESDAY_10.date(),
                latest_date=TUESDAY_10.date(),
                notes="mornings, knee",
            )
        )
        ids = patient.id, today.id, future.id
    frozen.move_to(local("2026-11-23", "11:40"))
    with database.unit_of_work() as s:
        set_status(s, ids[1], "completed", now=datetime.now(UTC))
    return ids


# --- export ----------------------------------------------------------------------------------------


def test_the_desk_downloads_everything_about_the_patient_and_it_is_audited(history, desk, database):
    patient_id, _done, future = history
    response = desk.post(f"/staff/patients/{patient_id}/export")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="patient-{patient_id}.json"'
    assert response.headers["Cache-Control"] == "no-store"
    data = json.loads(response.get_data(as_text=True))
    assert data["patient"]["email"] == "ana@example.com"
    assert [a["status"] for a in data["appointments"]] == ["completed", "booked"]
    assert data["appointments"][1]["intake_reason"] == "Sciatica after a fall"
    assert "manage_nonce" not in data["appointments"][1]
    assert any(m["kind"] == "confirmation" and m["appointment_id"] == future for m in data["messages"])
    assert {e["channel"] for e in data["consent_events"]} == {"sms", "email"}
    assert data["inbound_texts"][0]["body"] == "my back hurts a lot"
    assert data["waitlist_entries"][0]["notes"] == "mornings, knee"

    with database.unit_of_work() as s:
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "patient.export")).all()
        assert (event.actor_label, event.patient_id) == ("desk@example.com", patient_id)
        assert "ana@" not in json.dumps(event.detail)


def test_a_practitioner_cannot_export_and_a_get_does_nothing(history, physio, desk):
    patient_id = history[0]
    assert physio.post(f"/staff/patients/{patient_id}/export").status_code == 403
    assert desk.get(f"/staff/patients/{patient_id}/export").status_code == 405


# --- erase -----------------------------------------------------------------------------------------


def test_erasing_anonymises_the_patient_and_keeps_the_history_counts(history, admin, database):
    patient_id, done, future = history
    page = admin.get(f"/staff/patients/{patient_id}/erase")
    assert page.status_code == 200 and "Type the patient" in page.get_data(as_text=True)

    response = admin.post(f"/staff/patients/{patient_id}/erase", data={"confirmation": " silva "})
    assert response.status_code == 302
    assert "1 future visit cancelled" in admin.get(response.headers["Location"]).get_data(as_text=True)

    with database.unit_of_work() as s:
        patient = s.get(Patient, patient_id)
        assert (patient.first_name, patient.last_name, patient.email, patient.phone) == ("Erased", "Erased", None, None)
        assert not (patient.sms_consent or patient.email_consent) and patient.erased_at is not None
        visits = {a.id: a for a in s.scalars(select(Appointment).where(Appointment.patient_id == patient_id))}
        assert {i: a.status for i, a in visits.items()} == {done: "completed", future: "cancelled"}
        assert all(a.intake_reason is None and a.red_flags is None for a in visits.values())
        assert visits[future].triage == "urgent"  # counts by triage stay right
        messages = s.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient_id)).all()
        assert messages and all(m.to is None and m.body is None for m in messages)
        assert all(m.status != "pending" for m in messages)  # no reminder, no cancellation notice
        inbound = s.scalars(select(InboundMessage)).one()
        assert (inbound.body, inbound.from_phone) == ("", "")
        entry = s.scalars(select(WaitlistEntry)).one()
        assert (entry.notes, entry.status) == ("", "removed")

        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "patient.erase")).all()
        assert (event.actor_label, event.patient_id, event.detail["cancelled_visits"]) == (
            "admin@example.com",
            patient_id,
            1,
        )
        trail = json.dumps([e.detail for e in s.scalars(select(AuditEvent))])
        assert "Silva" not in trail and "ana@" not in trail and "+1416" not in trail


def test_an_erased_patients_manage_link_stops_working(history, admin, client, database):
    patient_id, _done, future = history
    with database.unit_of_work() as s:
        token = manage_token(SECRET, s.get(Appointment, future).manage_nonce)
    assert client.get(f"/api/v1/manage/{token}").status_code == 200
    admin.post(f"/staff/patients/{patient_id}/erase", data={"confirmation": "Silva"})
    assert client.get(f"/api/v1/manage/{token}").status_code == 404


def test_erase_needs_the_last_name_and_an_admin(history, admin, desk, database):
    patient_id = history[0]
    assert desk.post(f"/staff/patients/{patient_id}/erase", data={"confirmation": "Silva"}).status_code == 403
    wrong = admin.post(f"/staff/patients/{patient_id}/erase", data={"confirmation": "Smith"})
    assert wrong.headers["Location"].endswith(f"/staff/patients/{patient_id}/erase")
    with database.unit_of_work() as s:
        assert s.get(Patient, patient_id).last_name == "Silva"
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "patient.erase")) == 0


def test_erase_keeps_the_opt_out_and_refuses_a_second_time(session, history):
    from booking_service.patients.consent import opt_out_phone

    patient_id = history[0]
    now = datetime.now(UTC)
    opt_out_phone(session, "+14165550142", source="sms_reply", now=now)
    with pytest.raises(ValidationFailed):
        erase_patient(session, patient_id, confirmation="", now=now)
    counts = erase_patient(session, patient_id, confirmation="SILVA", now=now)
    assert counts["cancelled_visits"] == 1 and counts["appointments"] == 2
    assert session.get(SmsOptOut, "+14165550142") is not None  # the number still gets no texts
    with pytest.raises(Conflict):
        erase_patient(session, patient_id, confirmation="Erased", now=now)


def test_erasing_one_patient_leaves_another_alone(session, history, booked, database):
    other = booked(
        practitioner=1,
        start=local("2026-11-25", "10:00"),
        first_name="Bo",
        last_name="Lee",
        email="bo@example.com",
        phone="+14165550199",
    )
    erase_patient(session, history[0], confirmation="Silva", now=datetime.now(UTC))
    session.flush()
    kept = session.get(Appointment, other)
    assert (kept.status, kept.patient.email) == ("booked", "bo@example.com")
    assert appointment(database, other).patient.first_name == "Bo"
