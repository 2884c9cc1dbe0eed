"""The public JSON API: catalogue, availability, booking, errors, rate limits, OpenAPI document.

Time is frozen at NOW (Monday 2026-11-23, 08:00 in Toronto); with two hours' minimum notice the
first bookable start is 10:00 that day.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from booking_service.patients.models import Patient
from tests.conftest import SECRET, local


def booking_body(clinic, start, *, practitioner_id=None, **patient) -> dict:
    details = {
        "first_name": "Ana",
        "last_name": "Silva",
        "email": "ana@example.com",
        "phone": "+14165550142",
        "sms_consent": True,
        "email_consent": True,
    }
    details.update(patient)
    return {
        "service_id": clinic.initial_id,
        "location_id": clinic.location_id,
        "practitioner_id": practitioner_id,
        "start": start.isoformat(),
        "patient": details,
    }


def error_of(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "fields"} <= set(body["error"]), body
    return body["error"]


# --- catalogue -------------------------------------------------------------------------------


def test_services_are_a_list_object_with_kind_and_duration(client, clinic):
    response = client.get("/api/v1/services")

    assert response.status_code == 200
    services = response.get_json()["services"]
    assert [(s["id"], s["name"], s["kind"], s["duration_minutes"]) for s in services] == [
        (clinic.initial_id, "Initial assessment", "initial", 60),
        (clinic.follow_up_id, "Follow-up", "follow_up", 30),
    ]


def test_locations_carry_their_time_zone(client, clinic):
    locations = client.get("/api/v1/locations").get_json()["locations"]

    assert locations == [
        {
            "id": clinic.location_id,
            "name": "Downtown",
            "address": "120 King St W",
            "phone": None,
            "timezone": "America/Toronto",
        }
    ]


def test_practitioners_can_be_filtered_by_location_and_service(client, clinic):
    everyone = client.get("/api/v1/practitioners").get_json()["practitioners"]
    filtered = client.get(
        f"/api/v1/practitioners?location_id={clinic.location_id}&service_id={clinic.follow_up_id}"
    ).get_json()["practitioners"]
    elsewhere = client.get("/api/v1/practitioners?location_id=999").get_json()["practitioners"]

    assert [p["id"] for p in everyone] == clinic.practitioner_ids
    assert [p["display_name"] for p in filtered] == ["Maya Chen", "Daniel Okafor"]
    assert filtered[0]["service_ids"] == [clinic.initial_id, clinic.follow_up_id]
    assert elsewhere == []


# --- availability ----------------------------------------------------------------------------


def availability(client, clinic, start, end, **extra):
    query = {"service_id": clinic.initial_id, "location_id": clinic.location_id, "start": start, "end": end, **extra}
    return client.get("/api/v1/availability", query_string=query)


def test_availability_gives_slots_in_the_location_time_zone(client, clinic):
    response = availability(client, clinic, "2026-11-23", "2026-11-23")

    assert response.status_code == 200
    body = response.get_json()
    assert body["timezone"] == "America/Toronto"
    starts = [s["start"] for s in body["slots"] if s["practitioner_id"] == clinic.practitioner_ids[0]]
    assert starts[0] == "2026-11-23T10:00:00-05:00"  # 08:00 now + 2 h notice
    assert "2026-11-23T11:00:00-05:00" in starts and "2026-11-23T11:15:00-05:00" not in starts  # lunch at 12
    assert starts[-1] == "2026-11-23T16:00:00-05:00"
    assert body["slots"][0]["end"] == "2026-11-23T11:00:00-05:00"


def test_availability_dates_are_inclusive_and_weekends_are_empty(client, clinic):
    saturday_to_sunday = availability(client, clinic, "2026-11-28", "2026-11-29").get_json()["slots"]
    friday = availability(client, clinic, "2026-11-27", "2026-11-27").get_json()["slots"]

    assert saturday_to_sunday == []
    assert {s["start"][:10] for s in friday} == {"2026-11-27"}


def test_availability_can_ask_for_one_practitioner(client, clinic):
    maya = clinic.practitioner_ids[0]
    slots = availability(client, clinic, "2026-11-24", "2026-11-24", practitioner_id=maya).get_json()["slots"]

    assert slots and {s["practitioner_id"] for s in slots} == {maya}


def test_availability_accepts_62_days_and_refuses_63(client, clinic):
    ok = availability(client, clinic, "2026-12-01", "2027-01-31")
    too_long = availability(client, clinic, "2026-12-01", "2027-02-01")

    assert ok.status_code == 200
    assert too_long.status_code == 422
    error = error_of(too_long)
    assert error["code"] == "invalid"
    assert "62 days" in error["fields"]["end"]


def test_availability_end_before_start_is_422(client, clinic):
    response = availability(client, clinic, "2026-11-25", "2026-11-24")

    assert response.status_code == 422
    assert "on or after" in error_of(response)["fields"]["end"]


def test_availability_beyond_the_horizon_has_no_slots(client, clinic):
    response = availability(client, clinic, "2027-03-01", "2027-03-05")  # > 90 days ahead

    assert response.status_code == 200
    assert response.get_json()["slots"] == []


@pytest.mark.parametrize("field", ["service_id", "location_id"])
def test_availability_for_an_unknown_service_or_location_is_404_naming_the_field(client, clinic, field):
    response = availability(client, clinic, "2026-11-24", "2026-11-24", **{field: 999})

    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "not_found"
    assert set(error["fields"]) == {field}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"start": "24/11/2026"}, "start"),
        ({"start": "2026-02-30"}, "start"),
        ({"start": "0001-01-01", "end": "0001-01-02"}, "start"),
        ({"service_id": "abc"}, "service_id"),
        ({"service_id": "99999999999999999999"}, "service_id"),
        ({"service_id": "-1"}, "service_id"),
    ],
)
def test_availability_with_bad_query_values_is_422_naming_the_field(client, clinic, query, field):
    args = {"start": "2026-11-24", "end": "2026-11-24", **query}
    response = availability(client, clinic, **args)

    assert response.status_code == 422
    assert field in error_of(response)["fields"]


def test_availability_without_required_parameters_is_422_listing_them(client, clinic):
    response = client.get("/api/v1/availability")

    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"service_id", "location_id", "start", "end"}
    assert error_of(response)["fields"]["start"] == "This field is required."


# --- booking ---------------------------------------------------------------------------------


def test_booking_returns_201_with_a_manage_url_that_works(client, clinic):
    response = client.post("/api/v1/appointments", json=booking_body(clinic, local("2026-11-24", "09:00")))

    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "booked"
    assert body["start"] == "2026-11-24T09:00:00-05:00"
    assert body["end"] == "2026-11-24T10:00:00-05:00"
    assert body["triage"] == "none"
    assert body["service_id"] == clinic.initial_id and body["location_id"] == clinic.location_id
    assert body["practitioner_id"] in clinic.practitioner_ids
    assert isinstance(body["id"], int)
    assert body["manage_url"].startswith("http://testserver.local/m/")
    token = body["manage_url"].rsplit("/", 1)[1]
    managed = client.get(f"/api/v1/manage/{token}")
    assert managed.status_code == 200
    assert managed.get_json()["id"] == body["id"]


def test_booking_with_anyone_takes_the_other_practitioner_when_one_is_busy(client, clinic):
    maya, daniel = clinic.practitioner_ids
    start = local("2026-11-24", "09:00")
    client.post("/api/v1/appointments", json=booking_body(clinic, start, practitioner_id=maya))

    second = client.post(
        "/api/v1/appointments",
        json=booking_body(clinic, start, first_name="Ben", email="ben@example.com", phone="+14165550199"),
    )

    assert second.status_code == 201
    assert second.get_json()["practitioner_id"] == daniel


def test_booking_the_same_slot_twice_gives_409_slot_taken_with_alternatives(client, clinic):
    maya = clinic.practitioner_ids[0]
    start = local("2026-11-24", "10:00")
    first = client.post("/api/v1/appointments", json=booking_body(clinic, start, practitioner_id=maya))
    second = client.post(
        "/api/v1/appointments",
        json=booking_body(
            clinic, start, practitioner_id=maya, first_name="Ben", email="ben@example.com", phone="+14165550199"
        ),
    )

    assert first.status_code == 201
    assert second.status_code == 409
    error = error_of(second)
    assert error["code"] == "slot_taken"
    alternatives = error["alternatives"]
    assert 0 < len(alternatives) <= 5
    assert all(set(a) == {"start", "end", "practitioner_id"} for a in alternatives)
    assert all(a["start"].endswith("-05:00") for a in alternatives)  # in the location's zone
    assert "2026-11-24T10:00:00-05:00" not in [a["start"] for a in alternatives]


def test_an_off_grid_start_is_422_slot_unavailable(client, clinic):
    response = client.post("/api/v1/appointments", json=booking_body(clinic, local("2026-11-24", "10:07")))

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "slot_unavailable"
    assert "start" in error["fields"]
    assert error["alternatives"]


@pytest.mark.parametrize(
    "start",
    [
        local("2026-11-23", "09:00"),  # inside the minimum notice
        local("2026-11-20", "10:00"),  # in the past
        local("2026-11-24", "20:00"),  # outside hours
        local("2027-06-01", "10:00"),  # beyond the horizon
    ],
)
def test_a_start_that_is_not_a_slot_is_422_slot_unavailable(client, clinic, start):
    response = client.post("/api/v1/appointments", json=booking_body(clinic, start))

    assert response.status_code == 422
    assert error_of(response)["code"] == "slot_unavailable"


def test_a_bad_phone_is_422_naming_patient_phone(client, clinic):
    response = client.post(
        "/api/v1/appointments", json=booking_body(clinic, local("2026-11-24", "09:00"), phone="12345")
    )

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"patient.phone"}
    assert "416 555 0123" in error["fields"]["patient.phone"]


def test_a_phone_in_national_format_is_stored_as_e164(client, clinic, session):
    response = client.post(
        "/api/v1/appointments", json=booking_body(clinic, local("2026-11-24", "09:00"), phone="(416) 555-0142")
    )

    assert response.status_code == 201
    assert session.scalars(select(Patient.phone)).one() == "+14165550142"


def test_a_patient_without_email_or_phone_is_422(client, clinic):
    response = client.post(
        "/api/v1/appointments", json=booking_body(clinic, local("2026-11-24", "09:00"), email=None, phone=None)
    )

    assert response.status_code == 422
    assert "patient.email" in error_of(response)["fields"]


def test_red_flags_mark_the_booking_urgent(client, clinic, session):
    body = booking_body(clinic, local("2026-11-24", "09:00"))
    body["intake"] = {"reason": "Low back pain", "red_flags": {"bladder_bowel": False, "saddle_numbness": True}}

    response = client.post("/api/v1/appointments", json=body)

    assert response.status_code == 201
    assert response.get_json()["triage"] == "urgent"


def test_an_intake_without_red_flags_is_not_urgent(client, clinic):
    body = booking_body(clinic, local("2026-11-24", "09:00"))
    body["intake"] = {"reason": "Sore shoulder", "red_flags": {"bladder_bowel": False, "leg_weakness": False}}

    assert client.post("/api/v1/appointments", json=body).get_json()["triage"] == "none"


def test_french_is_accepted_as_the_patient_language(client, clinic):
    response = client.post(
        "/api/v1/appointments", json=booking_body(clinic, local("2026-11-24", "09:00"), language="fr")
    )

    assert response.status_code == 201
    body = response.get_json()
    assert body["language"] == "fr"
    assert body["service"]["name"] == "Évaluation initiale"


def test_an_unknown_language_is_422(client, clinic):
    response = client.post(
        "/api/v1/appointments", json=booking_body(clinic, local("2026-11-24", "09:00"), language="de")
    )

    assert response.status_code == 422
    assert error_of(response)["fields"] == {"patient.language": "Use en or fr."}


def test_a_start_without_offset_is_422_asking_for_one(client, clinic):
    body = booking_body(clinic, local("2026-11-24", "09:00"))
    body["start"] = "2026-11-24T09:00:00"

    response = client.post("/api/v1/appointments", json=body)

    assert response.status_code == 422
    assert "offset" in error_of(response)["fields"]["start"]


def test_unknown_keys_in_the_body_are_rejected_by_name(client, clinic):
    body = booking_body(clinic, local("2026-11-24", "09:00"))
    body["practitionerId"] = 1
    body["patient"]["nickname"] = "Annie"

    response = client.post("/api/v1/appointments", json=body)

    assert response.status_code == 422
    fields = error_of(response)["fields"]
    assert set(fields) == {"practitionerId", "patient.nickname"}
    assert "Remove this field" in fields["practitionerId"]


def test_a_practitioner_who_does_not_offer_the_service_there_is_422(client, clinic):
    response = client.post(
        "/api/v1/appointments", json=booking_body(clinic, local("2026-11-24", "09:00"), practitioner_id=999)
    )

    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"practitioner_id"}


def test_missing_and_mistyped_fields_are_422_with_every_path(client, clinic):
    response = client.post(
        "/api/v1/appointments",
        json={"service_id": "1", "location_id": True, "start": 5, "patient": {"first_name": ""}},
    )

    assert response.status_code == 422
    fields = error_of(response)["fields"]
    assert set(fields) == {"service_id", "location_id", "start", "patient.first_name", "patient.last_name"}


# --- bad input never gives a 500 ------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type", "code"),
    [
        (b'{"service_id": 1,', "application/json", "malformed_json"),
        (b"\xff\xfe\x00{", "application/json", "malformed_json"),
        (b"[" * 30_000 + b"]" * 30_000, "application/json", "malformed_json"),
        (b"service_id=1", "application/x-www-form-urlencoded", "unsupported_content_type"),
        (b'{"service_id": 1}', "text/plain", "unsupported_content_type"),
    ],
)
def test_unreadable_bodies_are_400(client, clinic, data, content_type, code):
    response = client.post("/api/v1/appointments", data=data, content_type=content_type)

    assert response.status_code == 400
    assert error_of(response)["code"] == code


def test_a_body_that_is_not_an_object_is_422(client, clinic):
    response = client.post("/api/v1/appointments", json=[1, 2, 3])

    assert response.status_code == 422
    assert error_of(response)["fields"] == {"body": "Send a JSON object."}


def test_a_huge_body_is_413(client, clinic):
    response = client.post(
        "/api/v1/appointments", data=b'{"a": "' + b"x" * 200_000 + b'"}', content_type="application/json"
    )

    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "patch",
    [
        {"service_id": 10**30},
        {"service_id": 1.5},
        {"service_id": 1e400},
        {"start": "9999-12-31T23:59:59+14:00"},
        {"start": "0001-01-01T00:00:00-05:00"},
        {"patient": {"first_name": "A\u0000na", "last_name": "Silva", "email": "ana@example.com"}},
        {"patient": {"first_name": "\ud800", "last_name": "Silva", "email": "ana@example.com"}},
        {"patient": {"first_name": "A" * 81, "last_name": "Silva", "email": "ana@example.com"}},
        {"patient": {"first_name": "Ana", "last_name": "Silva", "email": "x" * 300}},
        {"intake": {"red_flags": {"fever": True}}},
        {"intake": "none"},
    ],
)
def test_hostile_values_are_422_not_500(client, clinic, patch):
    body = booking_body(clinic, local("2026-11-24", "09:00"))
    body.update(patch)

    response = client.post("/api/v1/appointments", data=json.dumps(body), content_type="application/json")

    assert response.status_code == 422, response.get_json()
    assert error_of(response)["code"] == "invalid"


def test_unknown_routes_and_methods_under_the_api_are_json(client, clinic):
    missing = client.get("/api/v1/nothing-here")
    wrong_method = client.delete("/api/v1/services")
    not_an_id = client.get("/api/v1/appointments/abc")

    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    assert wrong_method.status_code == 405 and error_of(wrong_method)["code"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["Allow"]
    assert not_an_id.status_code == 404 and error_of(not_an_id)["code"] == "not_found"


# --- rate limits -----------------------------------------------------------------------------


def _limited_app(db_url, storage_uri):
    from booking_service import create_app

    return create_app(
        {
            "DATABASE_URL": db_url,
            "SECRET_KEY": SECRET,
            "TESTING": True,
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_STORAGE_URI": storage_uri,
            "PUBLIC_BASE_URL": "http://testserver.local",
        }
    )


def _hammer(app) -> list:
    from booking_service.extensions import limiter

    client = app.test_client()
    limiter.reset()  # the limiter is one object for every app: start from clean counters
    try:
        return [client.post("/api/v1/manage/not-a-token/cancel") for _ in range(21)]
    finally:
        limiter.reset()
        app.extensions["database"].dispose()


def _assert_21st_is_rate_limited(responses):
    assert [r.status_code for r in responses[:20]] == [404] * 20
    last = responses[20]
    assert last.status_code == 429
    error = error_of(last)
    assert error["code"] == "rate_limited"
    assert "20 per 1 minute" in error["message"]
    assert int(last.headers["Retry-After"]) > 0


def test_public_writes_are_rate_limited_with_a_json_429(db_url, database):
    _assert_21st_is_rate_limited(_hammer(_limited_app(db_url, "memory://")))


def test_rate_limits_work_with_redis_storage(db_url, database):
    import redis

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/15", socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError as exc:  # a failure under REQUIRE_ALL
        pytest.skip(f"Redis not reachable: {exc}")

    _assert_21st_is_rate_limited(_hammer(_limited_app(db_url, "redis://127.0.0.1:6379/15")))


def test_reads_are_not_rate_limited(db_url, database, make_clinic):
    make_clinic()
    app = _limited_app(db_url, "memory://")
    try:
        assert {app.test_client().get("/api/v1/services").status_code for _ in range(25)} == {200}
    finally:
        from booking_service.extensions import limiter

        limiter.reset()
        app.extensions["database"].dispose()


# --- OpenAPI ---------------------------------------------------------------------------------


def test_the_openapi_document_describes_every_endpoint_errors_and_bearer_security(client):
    spec = client.get("/api/v1/openapi.json").get_json()

    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/api/v1/services",
        "/api/v1/locations",
        "/api/v1/practitioners",
        "/api/v1/availability",
        "/api/v1/appointments",
        "/api/v1/manage/{token}",
        "/api/v1/manage/{token}/cancel",
        "/api/v1/manage/{token}/reschedule",
        "/api/v1/appointments/{appointment_id}",
        "/api/v1/appointments/{appointment_id}/status",
        "/api/v1/appointments/{appointment_id}/messages",
        "/api/v1/patients",
        "/api/v1/patients/{patient_id}",
        "/api/v1/alerts",
        "/api/v1/alerts/{alert_id}/acknowledge",
        "/api/v1/exercises",
        "/api/v1/patients/{patient_id}/programs",
        "/api/v1/programs/{program_id}",
        "/api/v1/plans",
        "/api/v1/plans/{plan_id}",
        "/api/v1/plans/{plan_id}/cancel",
    }
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert spec["paths"]["/api/v1/appointments"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in spec["paths"]["/api/v1/appointments"]["post"]
    error = spec["components"]["schemas"]["Error"]
    assert error["properties"]["error"] == {"$ref": "#/components/schemas/ErrorBody"}
    post = spec["paths"]["/api/v1/appointments"]["post"]
    assert {"201", "409", "422", "429"} <= set(post["responses"])
    booking_in = spec["components"]["schemas"]["BookingIn"]
    assert booking_in["additionalProperties"] is False  # the same schema that rejects unknown keys


def test_a_database_outage_is_a_json_503_not_an_html_page(tmp_path):
    from booking_service import create_app

    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/clinic.db",  # cannot be opened
            "SECRET_KEY": SECRET,
            "RATELIMIT_ENABLED": False,
            "PROPAGATE_EXCEPTIONS": False,  # as in production: the error handler answers
        }
    )

    response = app.test_client().get("/api/v1/services")

    assert response.status_code == 503  # the database is away: try again (tests/test_database_away.py)
    assert response.is_json and error_of(response)["code"] == "service_unavailable"
    app.extensions["database"].dispose()
