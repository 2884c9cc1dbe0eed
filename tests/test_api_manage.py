"""The patient's manage link in the JSON API: show, cancel, reschedule.

Time is frozen at NOW (Monday 2026-11-23, 08:00 in Toronto) unless a test moves it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import local


@pytest.fixture
def book(client, clinic):
    """``book(start, **patient)``: book the initial assessment with Maya; returns (body, token)."""

    def make(start, *, intake=None, **patient):
        details = {
            "first_name": "Ana",
            "last_name": "Silva",
            "email": "ana.silva@example.com",
            "phone": "+14165550142",
            "sms_consent": True,
        }
        details.update(patient)
        body = {
            "service_id": clinic.initial_id,
            "location_id": clinic.location_id,
            "practitioner_id": clinic.practitioner_ids[0],
            "start": start.isoformat(),
            "patient": details,
        }
        if intake is not None:
            body["intake"] = intake
        response = client.post("/api/v1/appointments", json=body)
        assert response.status_code == 201, response.get_json()
        booked = response.get_json()
        return booked, booked["manage_url"].rsplit("/", 1)[1]

    return make


def error_of(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error"} and {"code", "message", "fields"} <= set(body["error"]), body
    return body["error"]


def test_the_manage_link_shows_what_the_holder_needs_and_no_more(client, book):
    booked, token = book(
        local("2026-11-25", "09:00"),
        intake={"reason": "Sciatica after a fall", "red_flags": {"leg_weakness": True}},
    )

    response = client.get(f"/api/v1/manage/{token}")

    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == booked["id"]
    assert body["status"] == "booked"
    assert body["start"] == "2026-11-25T09:00:00-05:00" and body["end"] == "2026-11-25T10:00:00-05:00"
    assert body["service"]["name"] == "Initial assessment"
    assert body["practitioner"]["display_name"] == "Maya Chen"
    assert body["location"] == {
        "id": booked["location_id"],
        "name": "Downtown",
        "address": "120 King St W",
        "timezone": "America/Toronto",
    }
    assert body["can_cancel"] is True and body["can_reschedule"] is True
    assert body["cancellation_policy"] == {
        "window_hours": 24,
        "policy": "record",
        "inside_window": False,
        "clinic_phone": "+14165550100",
    }
    assert body["contact"] == {"email": "a•••@example.com", "phone": "•••• 0142"}
    text = response.get_data(as_text=True)
    for secret in ("ana.silva@example.com", "4165550142", "Sciatica", "leg_weakness", "urgent", "Silva"):
        assert secret not in text


def test_an_unknown_token_is_404(client, clinic):
    for path in ("/api/v1/manage/not-a-real-token", "/api/v1/manage/" + "x" * 500):
        response = client.get(path)
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"
    assert client.post("/api/v1/manage/not-a-real-token/cancel").status_code == 404
    assert client.post("/api/v1/manage/nope/reschedule", json={"start": "2026-11-25T10:00:00-05:00"}).status_code == 404


def test_a_link_expires_30_days_after_the_visit(client, book, frozen):
    _, token = book(local("2026-11-25", "09:00"))

    frozen.move_to(local("2026-12-25", "10:01"))

    assert client.get(f"/api/v1/manage/{token}").status_code == 404


def test_cancel_answers_200_with_the_cancelled_booking(client, book):
    _, token = book(local("2026-11-25", "09:00"))

    response = client.post(f"/api/v1/manage/{token}/cancel", json={"reason": "Feeling better"})

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "cancelled"
    assert body["can_cancel"] is False and body["can_reschedule"] is False
    assert client.get(f"/api/v1/manage/{token}").get_json()["status"] == "cancelled"


def test_cancel_needs_no_body(client, book):
    _, token = book(local("2026-11-25", "09:00"))

    assert client.post(f"/api/v1/manage/{token}/cancel").status_code == 200


def test_cancel_rejects_unknown_keys(client, book):
    _, token = book(local("2026-11-25", "09:00"))

    response = client.post(f"/api/v1/manage/{token}/cancel", json={"why": "busy"})

    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"why"}


def test_cancel_then_reschedule_is_409(client, book):
    _, token = book(local("2026-11-25", "09:00"))
    client.post(f"/api/v1/manage/{token}/cancel")

    again = client.post(f"/api/v1/manage/{token}/cancel")
    moved = client.post(f"/api/v1/manage/{token}/reschedule", json={"start": local("2026-11-26", "09:00").isoformat()})

    assert again.status_code == 409 and error_of(again)["code"] == "invalid_transition"
    assert moved.status_code == 409 and error_of(moved)["code"] == "invalid_transition"


def test_reschedule_moves_the_booking_and_the_link_keeps_working(client, book):
    booked, token = book(local("2026-11-25", "09:00"))

    response = client.post(f"/api/v1/manage/{token}/reschedule", json={"start": "2026-11-26T14:00:00-05:00"})

    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == booked["id"]
    assert body["start"] == "2026-11-26T14:00:00-05:00" and body["end"] == "2026-11-26T15:00:00-05:00"
    assert client.get(f"/api/v1/manage/{token}").get_json()["start"] == "2026-11-26T14:00:00-05:00"


def test_reschedule_accepts_any_offset_for_the_same_instant(client, book):
    _, token = book(local("2026-11-25", "09:00"))

    response = client.post(f"/api/v1/manage/{token}/reschedule", json={"start": "2026-11-26T19:00:00Z"})

    assert response.status_code == 200
    assert response.get_json()["start"] == "2026-11-26T14:00:00-05:00"


def test_reschedule_onto_a_taken_slot_is_409_with_alternatives_in_local_time(client, book):
    book(local("2026-11-26", "10:00"), first_name="Ben", email="ben@example.com", phone="+14165550199")
    _, token = book(local("2026-11-25", "09:00"))

    response = client.post(f"/api/v1/manage/{token}/reschedule", json={"start": "2026-11-26T10:00:00-05:00"})

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "slot_taken"
    assert error["alternatives"] and all(a["start"].endswith("-05:00") for a in error["alternatives"])


def test_reschedule_off_the_grid_is_422_slot_unavailable(client, book):
    _, token = book(local("2026-11-25", "09:00"))

    response = client.post(f"/api/v1/manage/{token}/reschedule", json={"start": "2026-11-26T10:10:00-05:00"})

    assert response.status_code == 422
    assert error_of(response)["code"] == "slot_unavailable"


def test_reschedule_needs_a_start_with_an_offset(client, book):
    _, token = book(local("2026-11-25", "09:00"))

    missing = client.post(f"/api/v1/manage/{token}/reschedule", json={})
    naive = client.post(f"/api/v1/manage/{token}/reschedule", json={"start": "2026-11-26T10:00:00"})

    assert missing.status_code == 422 and set(error_of(missing)["fields"]) == {"start"}
    assert naive.status_code == 422 and "offset" in error_of(naive)["fields"]["start"]


def test_inside_the_window_a_blocking_clinic_asks_the_patient_to_phone(client, make_clinic, frozen):
    clinic = make_clinic(late_cancellation_policy="block")
    body = {
        "service_id": clinic.initial_id,
        "location_id": clinic.location_id,
        "start": "2026-11-23T14:00:00-05:00",
        "patient": {"first_name": "Ana", "last_name": "Silva", "email": "ana@example.com"},
    }
    token = client.post("/api/v1/appointments", json=body).get_json()["manage_url"].rsplit("/", 1)[1]

    shown = client.get(f"/api/v1/manage/{token}").get_json()
    cancelled = client.post(f"/api/v1/manage/{token}/cancel")

    assert shown["can_cancel"] is False and shown["cancellation_policy"]["inside_window"] is True
    assert cancelled.status_code == 409
    error = error_of(cancelled)
    assert error["code"] == "late_cancellation"
    assert error["phone"] == "+14165550100"


def test_a_started_appointment_can_no_longer_be_changed(client, book, frozen):
    _, token = book(local("2026-11-25", "09:00"))
    frozen.move_to(local("2026-11-25", "09:00") + timedelta(minutes=5))

    shown = client.get(f"/api/v1/manage/{token}").get_json()
    cancelled = client.post(f"/api/v1/manage/{token}/cancel")

    assert shown["can_cancel"] is False
    assert cancelled.status_code == 409
