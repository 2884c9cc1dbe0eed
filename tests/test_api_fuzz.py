"""Schemathesis against the API's own OpenAPI document, loaded from the WSGI app.

Every operation, public and staff (with a valid Bearer token), gets generated valid and invalid
requests (schemathesis' positive and negative modes): none may answer 5xx, and every answer must
match the document (status code, content type, body schema); invalid requests must be refused.
Purely generated ids and tokens rarely exist, so each operation is also fuzzed with real ones
(a booked appointment, its manage token, its patient, the clinic's services and free slots),
which drives the requests through the domain code and not only through validation.

One pytest test per operation (not ``schemathesis.pytest.from_fixture``: its lazy loader reads
``Item._nodeid``, which pytest 9 removed); ``test_every_operation_is_fuzzed`` keeps the list
complete. Runs on both engines, about 45 seconds each (MAX_EXAMPLES per operation).
"""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from booking_service.clinic.models import Service
from booking_service.db import utcnow
from booking_service.staff.operations import create_api_token, create_user
from tests.conftest import NOW

MAX_EXAMPLES = 40
OPERATIONS = [
    ("GET", "/api/v1/services"),
    ("GET", "/api/v1/locations"),
    ("GET", "/api/v1/practitioners"),
    ("GET", "/api/v1/availability"),
    ("POST", "/api/v1/appointments"),
    ("GET", "/api/v1/manage/{token}"),
    ("POST", "/api/v1/manage/{token}/cancel"),
    ("POST", "/api/v1/manage/{token}/reschedule"),
    ("GET", "/api/v1/appointments"),
    ("GET", "/api/v1/appointments/{appointment_id}"),
    ("POST", "/api/v1/appointments/{appointment_id}/status"),
    ("GET", "/api/v1/appointments/{appointment_id}/messages"),
    ("GET", "/api/v1/patients"),
    ("GET", "/api/v1/patients/{patient_id}"),
    ("PATCH", "/api/v1/patients/{patient_id}"),
    ("GET", "/api/v1/exercises"),
    ("POST", "/api/v1/patients/{patient_id}/programs"),
    ("GET", "/api/v1/programs/{program_id}"),
    ("GET", "/api/v1/alerts"),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"),
    ("POST", "/api/v1/plans"),
    ("GET", "/api/v1/plans/{plan_id}"),
    ("POST", "/api/v1/plans/{plan_id}/cancel"),
]
# A schema-valid request may still be refused with a 422 for reasons JSON Schema cannot say
# (an end before the start, a phone that is not a number, a start that is not a free slot).
CONFIG = {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "404", "409", "422", "429"]}}}


@pytest.fixture
def world(app, database, make_clinic) -> SimpleNamespace:
    """A clinic, a staff token, and one real booking (made through the API, at the real now)."""
    clinic = make_clinic()
    with database.unit_of_work() as s:
        # A service that is not online-bookable, so the fuzzer meets that branch too.
        s.add(Service(name="Home visit", kind="other", duration_minutes=45, online_bookable=False))
        create_user(s, "fuzz@example.com", role="frontdesk", password="a-long-password")
        staff_token = create_api_token(s, "fuzz@example.com", now=NOW)
    client = app.test_client()
    today = utcnow().date()
    slots = client.get(
        "/api/v1/availability",
        query_string={
            "service_id": clinic.initial_id,
            "location_id": clinic.location_id,
            "start": (today + timedelta(days=1)).isoformat(),
            "end": (today + timedelta(days=15)).isoformat(),
        },
    ).get_json()["slots"]
    booked = client.post(
        "/api/v1/appointments",
        json={
            "service_id": clinic.initial_id,
            "location_id": clinic.location_id,
            "start": slots[0]["start"],
            "patient": {
                "first_name": "Ana",
                "last_name": "Silva",
                "email": "ana@example.com",
                "phone": "+14165550142",
                "sms_consent": True,
            },
            "intake": {"reason": "Back pain", "red_flags": {"leg_weakness": True}},
        },
    ).get_json()
    patient_id = client.get(
        f"/api/v1/appointments/{booked['id']}", headers={"Authorization": f"Bearer {staff_token}"}
    ).get_json()["patient_id"]
    plan = client.post(
        "/api/v1/plans",
        json={
            "patient_id": patient_id,
            "service_id": clinic.follow_up_id,
            "location_id": clinic.location_id,
            "first_start": slots[-1]["start"],
            "count": 3,
        },
        headers={"Authorization": f"Bearer {staff_token}"},
    ).get_json()
    return SimpleNamespace(
        clinic=clinic,
        staff_token=staff_token,
        plan_id=plan["id"],
        appointment_id=booked["id"],
        manage_token=booked["manage_url"].rsplit("/", 1)[1],
        patient_id=patient_id,
        starts=[slot["start"] for slot in slots[1:200]],
        today=today,
    )


@pytest.fixture
def api_schema(app, world):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=schemathesis.Config.from_dict(CONFIG))


def _days(world) -> st.SearchStrategy[str]:
    return st.dates(min_value=world.today - timedelta(days=10), max_value=world.today + timedelta(days=120)).map(
        date.isoformat
    )


def _booking_bodies(world) -> st.SearchStrategy[dict]:
    clinic = world.clinic
    short_text = st.text(min_size=1, max_size=80)
    patient = st.fixed_dictionaries(
        {"first_name": short_text, "last_name": short_text},
        optional={
            "email": st.one_of(st.none(), st.emails(), st.text(max_size=40)),
            "phone": st.sampled_from(["416 555 0142", "+14165550199", "(514) 555-0123", "+33 1 23 45 67 89", "12"])
            | st.none()
            | st.text(max_size=32),
            "sms_consent": st.booleans(),
            "email_consent": st.booleans(),
            "language": st.sampled_from(["en", "fr"]),
        },
    )
    intake = st.fixed_dictionaries(
        {},
        optional={
            "reason": st.one_of(st.none(), st.text(max_size=200)),
            "red_flags": st.fixed_dictionaries(
                {},
                optional={k: st.booleans() for k in ("bladder_bowel", "saddle_numbness", "leg_weakness", "systemic")},
            ),
        },
    )
    return st.fixed_dictionaries(
        {
            "service_id": st.sampled_from([clinic.initial_id, clinic.follow_up_id]),
            "location_id": st.just(clinic.location_id),
            "start": st.sampled_from(world.starts),
            "patient": patient,
        },
        optional={"practitioner_id": st.sampled_from([None, *clinic.practitioner_ids]), "intake": intake},
    )


def _plan_bodies(world) -> st.SearchStrategy[dict]:
    clinic = world.clinic
    start = st.sampled_from(world.starts)
    return st.fixed_dictionaries(
        {
            "patient_id": st.just(world.patient_id),
            "service_id": st.sampled_from([clinic.initial_id, clinic.follow_up_id]),
            "location_id": st.just(clinic.location_id),
        },
        optional={
            "practitioner_id": st.sampled_from([None, *clinic.practitioner_ids]),
            "first_start": start,
            "count": st.integers(min_value=1, max_value=52),
            "every_days": st.integers(min_value=1, max_value=90),
            "starts": st.lists(start, min_size=1, max_size=8),
        },
    )


def _with_real_data(operation, world, headers) -> st.SearchStrategy:
    """Valid requests about things that exist, so the domain code runs, not only validation."""
    clinic = world.clinic
    method, path = operation.method.upper(), operation.path
    positive = GenerationMode.POSITIVE
    if (method, path) == ("POST", "/api/v1/appointments"):
        return _booking_bodies(world).map(lambda body: operation.Case(body=body, media_type="application/json"))
    if path == "/api/v1/availability":
        return st.builds(
            lambda start, end, who: operation.Case(
                query={
                    "service_id": clinic.initial_id,
                    "location_id": clinic.location_id,
                    "start": start,
                    "end": end,
                    **({"practitioner_id": who} if who else {}),
                }
            ),
            _days(world),
            _days(world),
            st.sampled_from([None, *clinic.practitioner_ids]),
        )
    if (method, path) == ("POST", "/api/v1/manage/{token}/reschedule"):
        return st.sampled_from(world.starts).map(
            lambda start: operation.Case(
                path_parameters={"token": world.manage_token}, body={"start": start}, media_type="application/json"
            )
        )
    if path.startswith("/api/v1/manage/"):
        return operation.as_strategy(positive, path_parameters={"token": world.manage_token})
    if path == "/api/v1/appointments" and method == "GET":
        return st.builds(lambda day: operation.Case(query={"date": day}, headers=headers), _days(world))
    if path.startswith("/api/v1/appointments/"):
        return operation.as_strategy(
            positive, headers=headers, path_parameters={"appointment_id": world.appointment_id}
        )
    if (method, path) == ("POST", "/api/v1/plans"):
        return _plan_bodies(world).map(
            lambda body: operation.Case(body=body, headers=headers, media_type="application/json")
        )
    if path.startswith("/api/v1/plans/"):
        return operation.as_strategy(positive, headers=headers, path_parameters={"plan_id": world.plan_id})
    if path in ("/api/v1/patients/{patient_id}", "/api/v1/patients/{patient_id}/programs"):
        return operation.as_strategy(positive, headers=headers, path_parameters={"patient_id": world.patient_id})
    return operation.as_strategy(positive, headers=headers)


def test_every_operation_is_fuzzed(api_schema):
    documented = {
        (method.upper(), path)
        for path, item in api_schema.raw_schema["paths"].items()
        for method in item
        if method != "parameters"
    }

    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_the_api_never_answers_5xx_and_matches_its_document(api_schema, world, method, path):
    operation = api_schema[path][method]
    headers = {"Authorization": f"Bearer {world.staff_token}"} if "security" in operation.definition.raw else None
    cases = st.one_of(
        *(operation.as_strategy(mode, headers=headers) for mode in GenerationMode),
        _with_real_data(operation, world, headers),
    )

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def fuzz(case):
        case.call_and_validate()

    fuzz()
