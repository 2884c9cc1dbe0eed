"""The staff JSON API (Bearer token): the day list, one appointment, status changes, messages,
patients. Time is frozen at NOW (Monday 2026-11-23, 08:00 in Toronto) unless a test moves it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from booking_service.outbox.models import OutboxMessage
from booking_service.staff.operations import create_api_token, create_user
from tests.conftest import NOW, local

MESSAGE_FIELDS = {"id", "channel", "kind", "status", "due_at", "sent_at", "to", "provider_id", "error"}


@pytest.fixture
def token(database, clinic) -> str:
    with database.unit_of_work() as s:
        create_user(s, "desk@example.com", role="frontdesk", password="a-long-password")
        token = create_api_token(s, "desk@example.com", now=NOW)
    return token


@pytest.fixture
def staff(client, token):
    """``staff.get(path)`` / ``staff.post(path, json=...)`` with the Bearer token."""

    class Staff:
        headers = {"Authorization": f"Bearer {token}"}

        def get(self, path, **kwargs):
            return client.get(path, headers=self.headers, **kwargs)

        def post(self, path, **kwargs):
            return client.post(path, headers=self.headers, **kwargs)

    return Staff()


@pytest.fixture
def book(client, clinic):
    """``book(start, **patient)``: a booking through the public API; returns its JSON."""

    def make(start, *, practitioner=0, intake=None, **patient):
        details = {
            "first_name": "Ana",
            "last_name": "Silva",
            "email": "ana@example.com",
            "phone": "+14165550142",
            "sms_consent": True,
            "email_consent": True,
        }
        details.update(patient)
        body = {
            "service_id": clinic.initial_id,
            "location_id": clinic.location_id,
            "practitioner_id": clinic.practitioner_ids[practitioner],
            "start": start.isoformat(),
            "patient": details,
        }
        if intake is not None:
            body["intake"] = intake
        response = client.post("/api/v1/appointments", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return make


def error_of(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error"} and {"code", "message", "fields"} <= set(body["error"]), body
    return body["error"]


STAFF_ENDPOINTS = [
    ("GET", "/api/v1/appointments?date=2026-11-24"),
    ("GET", "/api/v1/appointments/1"),
    ("POST", "/api/v1/appointments/1/status"),
    ("GET", "/api/v1/appointments/1/messages"),
    ("GET", "/api/v1/patients?q=ana"),
    ("GET", "/api/v1/patients/1"),
]


@pytest.mark.parametrize(("method", "path"), STAFF_ENDPOINTS)
def test_staff_endpoints_are_401_without_a_valid_token(client, token, method, path):
    for authorization in (None, "Bearer", "Bearer not-a-token", "Basic ZGVzazpwdw==", "Bearer " + "x" * 5000):
        headers = {"Authorization": authorization} if authorization else {}

        response = client.open(path, method=method, headers=headers, json={"status": "checked_in"})

        assert response.status_code == 401, authorization
        assert error_of(response)["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_is_401(client, database, token, staff):
    from sqlalchemy import update

    from booking_service.staff.models import ApiToken

    with database.unit_of_work() as s:
        s.execute(update(ApiToken).values(revoked_at=NOW))

    assert staff.get("/api/v1/appointments").status_code == 401


def test_the_day_list_reads_the_date_in_the_location_zone(staff, book, clinic):
    first = book(local("2026-11-24", "09:00"))
    second = book(
        local("2026-11-24", "16:00"), practitioner=1, first_name="Ben", email="ben@example.com", phone="+14165550199"
    )
    book(local("2026-11-25", "09:00"))

    response = staff.get(f"/api/v1/appointments?date=2026-11-24&location_id={clinic.location_id}")

    assert response.status_code == 200
    body = response.get_json()
    assert body["date"] == "2026-11-24" and body["timezone"] == "America/Toronto"
    assert [a["id"] for a in body["appointments"]] == [first["id"], second["id"]]  # 16:00 local is 21:00 UTC
    assert body["appointments"][1]["start"] == "2026-11-24T16:00:00-05:00"
    assert body["appointments"][1]["patient"] == {
        "id": body["appointments"][1]["patient_id"],
        "first_name": "Ben",
        "last_name": "Silva",
    }


def test_the_day_list_defaults_to_today_and_filters_by_practitioner(staff, book, clinic):
    today = book(local("2026-11-23", "14:00"))
    book(local("2026-11-23", "15:00"), practitioner=1, first_name="Ben", email="ben@example.com", phone="+14165550199")

    everyone = staff.get("/api/v1/appointments").get_json()
    maya = staff.get(f"/api/v1/appointments?practitioner_id={clinic.practitioner_ids[0]}").get_json()

    assert everyone["date"] == "2026-11-23" and len(everyone["appointments"]) == 2
    assert [a["id"] for a in maya["appointments"]] == [today["id"]]


def test_the_day_list_of_an_unknown_location_is_404(staff, clinic):
    response = staff.get("/api/v1/appointments?location_id=999")

    assert response.status_code == 404
    assert set(error_of(response)["fields"]) == {"location_id"}


def test_one_appointment_shows_staff_the_contact_details_intake_and_triage(staff, book):
    booked = book(local("2026-11-24", "09:00"), intake={"reason": "Back pain", "red_flags": {"bladder_bowel": True}})

    response = staff.get(f"/api/v1/appointments/{booked['id']}")

    assert response.status_code == 200
    body = response.get_json()
    assert body["triage"] == "urgent"
    assert body["patient"]["email"] == "ana@example.com" and body["patient"]["phone"] == "+14165550142"
    assert body["patient"]["sms_consent"] is True and body["patient"]["sms_opted_out"] is False
    assert body["intake"] == {
        "reason": "Back pain",
        "red_flags": {"bladder_bowel": True, "saddle_numbness": False, "leg_weakness": False, "systemic": False},
    }
    assert body["start"] == "2026-11-24T09:00:00-05:00"


def test_an_unknown_appointment_is_404(staff, clinic):
    for path in ("/api/v1/appointments/999", "/api/v1/appointments/999/messages"):
        response = staff.get(path)
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert staff.post("/api/v1/appointments/999/status", json={"status": "checked_in"}).status_code == 404
    assert staff.get("/api/v1/appointments/99999999999999").status_code == 404  # beyond 32 bits: no route


def test_status_moves_through_check_in_to_completed(staff, book, frozen):
    booked = book(local("2026-11-24", "09:00"))
    path = f"/api/v1/appointments/{booked['id']}/status"

    too_early = staff.post(path, json={"status": "checked_in"})
    frozen.move_to(local("2026-11-24", "08:50"))
    checked_in = staff.post(path, json={"status": "checked_in"})
    frozen.move_to(local("2026-11-24", "10:00"))
    completed = staff.post(path, json={"status": "completed"})
    undo = staff.post(path, json={"status": "no_show"})

    assert too_early.status_code == 409 and error_of(too_early)["code"] == "invalid_transition"
    assert checked_in.status_code == 200 and checked_in.get_json()["status"] == "checked_in"
    assert checked_in.get_json()["checked_in_at"] == "2026-11-24T08:50:00-05:00"
    assert completed.status_code == 200 and completed.get_json()["status"] == "completed"
    assert undo.status_code == 409


def test_a_no_show_can_still_be_checked_in(staff, book, frozen):
    booked = book(local("2026-11-24", "09:00"))
    path = f"/api/v1/appointments/{booked['id']}/status"
    frozen.move_to(local("2026-11-24", "09:20"))

    assert staff.post(path, json={"status": "no_show"}).get_json()["status"] == "no_show"
    assert staff.post(path, json={"status": "checked_in"}).get_json()["status"] == "checked_in"


def test_staff_can_confirm_and_cancel(staff, book):
    booked = book(local("2026-11-24", "09:00"))
    path = f"/api/v1/appointments/{booked['id']}/status"

    confirmed = staff.post(path, json={"status": "confirmed"}).get_json()
    cancelled = staff.post(path, json={"status": "cancelled"}).get_json()

    assert confirmed["status"] == "confirmed" and confirmed["confirmed_at"] == "2026-11-23T08:00:00-05:00"
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_by"] == "staff"


@pytest.mark.parametrize("body", [{"status": "booked"}, {"status": "done"}, {}, {"status": "checked_in", "x": 1}])
def test_an_unknown_status_is_422(staff, book, body):
    booked = book(local("2026-11-24", "09:00"))

    response = staff.post(f"/api/v1/appointments/{booked['id']}/status", json=body)

    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid"


def test_messages_list_every_message_with_exactly_the_contract_fields(staff, book, database):
    booked = book(local("2026-11-24", "09:00"))
    with database.unit_of_work() as s:
        s.add(
            OutboxMessage(
                appointment_id=booked["id"],
                patient_id=None,
                channel="sms",
                kind="reminder",
                to="+14165550142",
                due_at=NOW + timedelta(hours=1),
                next_attempt_at=NOW + timedelta(hours=1),
                status="failed",
                sent_at=NOW + timedelta(hours=1, seconds=5),
                provider_id="SM123",
                error_code="21610",
                error="The number opted out (STOP).",
                dedupe_key="test:failed-reminder",
            )
        )

    response = staff.get(f"/api/v1/appointments/{booked['id']}/messages")

    assert response.status_code == 200
    messages = response.get_json()["messages"]
    assert messages and all(set(m) == MESSAGE_FIELDS for m in messages)
    assert all(m["channel"] in ("sms", "email") for m in messages)
    assert "confirmation" in {m["kind"] for m in messages}  # a booking by the patient is confirmed at once
    failed = next(m for m in messages if m["provider_id"] == "SM123")
    assert failed == {
        "id": failed["id"],
        "channel": "sms",
        "kind": "reminder",
        "status": "failed",
        "due_at": "2026-11-23T09:00:00-05:00",
        "sent_at": "2026-11-23T09:00:05-05:00",
        "to": "+14165550142",
        "provider_id": "SM123",
        "error": "The number opted out (STOP).",
    }
    assert [m["due_at"] for m in messages] == sorted(m["due_at"] for m in messages)


@pytest.mark.parametrize("query", ["silva", "ANA SIL", "ben@exa", "416 555 0199", "(416) 555-0199", "0199"])
def test_patients_can_be_found_by_name_email_or_phone(staff, book, query):
    book(local("2026-11-24", "09:00"))
    book(
        local("2026-11-24", "10:00"), first_name="Ben", last_name="Silva", email="ben@example.com", phone="416-555-0199"
    )

    response = staff.get("/api/v1/patients", query_string={"q": query})

    assert response.status_code == 200
    names = {p["first_name"] for p in response.get_json()["patients"]}
    expected = {"Ana", "Ben"} if query == "silva" else {"Ana"} if query == "ANA SIL" else {"Ben"}
    assert names == expected


def test_patient_search_treats_wildcards_literally_and_respects_the_limit(staff, book):
    book(local("2026-11-24", "09:00"))
    book(local("2026-11-24", "10:00"), first_name="Ben", email="ben@example.com", phone="+14165550199")

    assert staff.get("/api/v1/patients?q=%25").get_json()["patients"] == []
    assert staff.get("/api/v1/patients?q=_").get_json()["patients"] == []
    assert len(staff.get("/api/v1/patients?q=silva&limit=1").get_json()["patients"]) == 1
    assert staff.get("/api/v1/patients?q=silva&limit=0").status_code == 422
    assert staff.get("/api/v1/patients").status_code == 422


def test_one_patient_comes_with_their_appointments_newest_first(staff, book):
    first = book(local("2026-11-24", "09:00"))
    second = book(local("2026-11-26", "09:00"))
    patient_id = staff.get(f"/api/v1/appointments/{first['id']}").get_json()["patient_id"]

    response = staff.get(f"/api/v1/patients/{patient_id}")

    assert response.status_code == 200
    body = response.get_json()
    assert body["first_name"] == "Ana" and body["phone"] == "+14165550142"
    assert [a["id"] for a in body["appointments"]] == [second["id"], first["id"]]
    assert staff.get("/api/v1/patients/999").status_code == 404
