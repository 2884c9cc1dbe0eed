"""GET /api/v1/availability as HTTP: the body orjson writes is the document the schema dumped
before, byte for byte; its ETag (a hash of the body) gives a 304 to ``If-None-Match``; it may be
reused for ten seconds, privately; and a booking changes it.

Time is frozen at NOW (Monday 2026-11-23, 08:00 in Toronto), as in tests/test_api_public.py.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from flask import jsonify

from booking_service.api import serializers
from booking_service.api.schemas import AvailabilitySchema
from booking_service.clinic.queries import bookable, get_clinic
from booking_service.db import utcnow
from booking_service.scheduling.slots import find_slots


def availability(client, clinic, start="2026-11-23", end="2026-12-20", headers=None, **extra):
    query = {"service_id": clinic.follow_up_id, "location_id": clinic.location_id, "start": start, "end": end}
    return client.get("/api/v1/availability", query_string={**query, **extra}, headers=headers or {})


def schema_document(app, database, clinic, first: date, last: date, practitioner_id=None) -> bytes:
    """What the view answered before orjson: the schema's dump of the same slots, written by Flask."""
    with database.unit_of_work() as session, app.app_context():
        service, location, candidates = bookable(
            session, service_id=clinic.follow_up_id, location_id=clinic.location_id, practitioner_id=practitioner_id
        )
        slots = find_slots(
            session,
            clinic=get_clinic(session),
            service=service,
            location=location,
            practitioners=candidates,
            first_day=first,
            last_day=last,
            now=utcnow(),
        )
        return jsonify(AvailabilitySchema().dump(serializers.availability(slots, location))).get_data()


@pytest.mark.parametrize(
    ("start", "end", "who"),
    [
        ("2026-11-23", "2026-11-29", "one"),  # a week from today: the minimum notice cuts today short
        ("2026-11-23", "2026-12-20", None),  # four weeks, everyone
        ("2027-03-01", "2027-03-05", None),  # beyond the horizon: no slots
    ],
)
def test_the_body_is_the_schema_document_byte_for_byte(app, database, client, clinic, start, end, who):
    practitioner_id = clinic.practitioner_ids[0] if who == "one" else None
    extra = {"practitioner_id": practitioner_id} if practitioner_id else {}

    response = availability(client, clinic, start, end, **extra)
    before = schema_document(app, database, clinic, date.fromisoformat(start), date.fromisoformat(end), practitioner_id)

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.data == before
    document = json.loads(response.data)
    assert document == json.loads(before)
    assert list(document) == ["timezone", "slots"]
    if who == "one":
        assert document["slots"][0] == {
            "start": "2026-11-23T10:00:00-05:00",
            "end": "2026-11-23T10:30:00-05:00",
            "practitioner_id": practitioner_id,
        }


def test_the_answer_carries_an_etag_and_private_ten_second_caching(client, clinic):
    response = availability(client, clinic)

    etag, weak = response.get_etag()
    assert etag and not weak
    assert response.headers["Cache-Control"] == "private, max-age=10"
    assert availability(client, clinic).get_etag() == (etag, False)  # the same document, the same tag


@pytest.mark.parametrize("form", ['"{}"', 'W/"{}"', '"other", "{}"', "*"])
def test_if_none_match_naming_the_current_etag_is_a_304_without_body(client, clinic, form):
    etag = availability(client, clinic).get_etag()[0]

    response = availability(client, clinic, headers={"If-None-Match": form.format(etag)})

    assert response.status_code == 304
    assert response.data == b""
    assert response.get_etag() == (etag, False)
    assert response.headers["Cache-Control"] == "private, max-age=10"


def test_if_none_match_with_another_etag_gets_the_document(client, clinic):
    response = availability(client, clinic, headers={"If-None-Match": '"not-the-current-one"'})

    assert response.status_code == 200
    assert json.loads(response.data)["slots"]


def test_another_query_has_another_etag(client, clinic):
    week = availability(client, clinic, "2026-11-23", "2026-11-29").get_etag()[0]
    month = availability(client, clinic).get_etag()[0]

    assert week != month
    assert availability(client, clinic, headers={"If-None-Match": f'"{week}"'}).status_code == 200


def test_a_booking_changes_the_etag_and_the_old_one_gets_the_new_document(client, clinic):
    before = availability(client, clinic)
    slot = json.loads(before.data)["slots"][0]
    booked = client.post(
        "/api/v1/appointments",
        json={
            "service_id": clinic.follow_up_id,
            "location_id": clinic.location_id,
            "practitioner_id": slot["practitioner_id"],
            "start": slot["start"],
            "patient": {
                "first_name": "Ana",
                "last_name": "Silva",
                "email": "ana@example.com",
                "phone": "+14165550142",
                "sms_consent": True,
                "email_consent": True,
            },
        },
    )
    assert booked.status_code == 201, booked.data

    after = availability(client, clinic, headers={"If-None-Match": before.headers["ETag"]})

    assert after.status_code == 200
    assert after.get_etag()[0] != before.get_etag()[0]
    assert slot not in json.loads(after.data)["slots"]


def test_errors_carry_no_etag_and_are_not_cached(client, clinic):
    response = availability(client, clinic, service_id=999)

    assert response.status_code == 404
    assert "ETag" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def test_the_openapi_document_describes_the_slots_the_headers_and_the_304(client):
    operation = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/availability"]["get"]

    ok = operation["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Availability"}
    assert set(ok["headers"]) == {"ETag", "Cache-Control"}
    assert "304" in operation["responses"]
    assert {"200", "304", "404", "422"} <= set(operation["responses"])
