"""The exercise-program endpoints of the staff API (Bearer token): the library, assigning a
program, one program with logs and adherence; practitioner scoping; the booking request's
``exercise_sms_consent``. Time is frozen at NOW (Monday 2026-11-23, 08:00 in Toronto)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from booking_service.clinic.models import Practitioner
from booking_service.exercises.library import LIBRARY, load_library
from booking_service.exercises.models import ProgramLog
from booking_service.patients.models import Patient
from booking_service.staff.operations import create_api_token, create_user
from tests.conftest import NOW, local
from tests.test_api_staff import book, staff, token  # noqa: F401  (fixtures)

PROGRAM_FIELDS = {
    "id",
    "patient_id",
    "practitioner_id",
    "status",
    "pause_reason",
    "end_reason",
    "version",
    "program_url",
    "days",
    "time",
    "timezone",
    "start",
    "end",
    "exercises",
    "created_at",
}
ITEM_FIELDS = {"exercise_id", "key", "name", "reps", "sets", "hold_seconds", "times_per_day"}


@pytest.fixture
def library(database, clinic):
    with database.unit_of_work() as s:
        load_library(s)


@pytest.fixture
def exercises(staff, library):  # noqa: F811
    return {e["key"]: e["id"] for e in staff.get("/api/v1/exercises").get_json()["exercises"]}


@pytest.fixture
def patient_id(book, database):  # noqa: F811
    """Ana Silva, booked with Maya Chen for Tuesday."""
    book(local("2026-11-24", "10:00"))
    with database.unit_of_work() as s:
        return s.scalar(select(Patient.id))


def body(clinic, library_ids, **overrides):
    values = {
        "exercises": [
            {"exercise_id": library_ids["bridge"], "reps": 12, "sets": 2, "hold_seconds": 5},
            {"exercise_id": library_ids["nerve_glide_seated"]},
        ],
        "days": ["mon", "wed", "fri"],
        "time": "18:30",
        "start": "2026-11-23",
        "practitioner_id": clinic.practitioner_ids[0],
    }
    values.update(overrides)
    return values


def fields_of(response) -> dict:
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid"
    return error["fields"]


def test_the_library_lists_every_exercise_with_its_default_dose(staff, library):  # noqa: F811
    response = staff.get("/api/v1/exercises")
    assert response.status_code == 200
    listed = response.get_json()["exercises"]
    assert len(listed) == len(LIBRARY)
    bridge = next(e for e in listed if e["key"] == "bridge")
    assert bridge["name"] == "Bridge" and bridge["name_fr"] == "Pont"
    assert (bridge["default_reps"], bridge["default_sets"], bridge["default_hold_seconds"]) == (10, 2, 5)
    assert {"id", "name", "key", "instructions", "default_reps", "cautions", "media_url"} <= set(bridge)


def test_the_library_needs_a_staff_token(client, library):
    assert client.get("/api/v1/exercises").status_code == 401


def test_assigning_a_program_answers_201_with_its_link(staff, clinic, exercises, patient_id):  # noqa: F811
    response = staff.post(f"/api/v1/patients/{patient_id}/programs", json=body(clinic, exercises))
    assert response.status_code == 201, response.get_json()
    program = response.get_json()
    assert set(program) == PROGRAM_FIELDS
    assert (program["status"], program["version"], program["patient_id"]) == ("active", 1, patient_id)
    assert program["program_url"].startswith("http://testserver.local/")
    assert (program["days"], program["time"], program["start"], program["end"]) == (
        ["mon", "wed", "fri"],
        "18:30",
        "2026-11-23",
        None,
    )
    assert program["timezone"] == "America/Toronto"
    bridge, glide = program["exercises"]
    assert set(bridge) == ITEM_FIELDS
    assert (bridge["reps"], bridge["sets"], bridge["hold_seconds"]) == (12, 2, 5)
    assert (glide["key"], glide["reps"], glide["sets"]) == ("nerve_glide_seated", 10, 2)  # defaults


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"exercises": []}, "exercises"),
        ({"exercises": [{"exercise_id": 999999}]}, "exercises.0.exercise_id"),
        ({"days": []}, "days"),
        ({"days": ["someday"]}, "days.0"),
        ({"time": "25:00"}, "time"),
        ({"time": "6pm"}, "time"),
        ({"start": "23/11/2026"}, "start"),
        ({"end": "2026-11-01"}, "end"),
        ({"practitioner_id": 999999}, "practitioner_id"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_program_input_is_a_422_naming_the_field(staff, clinic, exercises, patient_id, overrides, field):  # noqa: F811
    response = staff.post(f"/api/v1/patients/{patient_id}/programs", json=body(clinic, exercises, **overrides))
    fields = fields_of(response)
    assert field in fields, fields
    assert fields[field] and "_" not in fields[field].split()[0]  # words, not a code


def test_a_dose_out_of_bounds_names_the_exercise_and_dose(staff, clinic, exercises, patient_id):  # noqa: F811
    bad = [{"exercise_id": exercises["bridge"], "reps": 500}]
    fields = fields_of(
        staff.post(f"/api/v1/patients/{patient_id}/programs", json=body(clinic, exercises, exercises=bad))
    )
    assert fields == {
        "exercises.0.reps": "Use a number of repetitions between 1 and 200, or leave it out for the default."
    }


def test_an_unknown_patient_is_a_404(staff, clinic, exercises):  # noqa: F811
    response = staff.post("/api/v1/patients/999999/programs", json=body(clinic, exercises))
    assert response.status_code == 404


def test_a_program_shows_its_logs_and_adherence(staff, clinic, exercises, patient_id, database, frozen):  # noqa: F811
    program_id = staff.post(
        f"/api/v1/patients/{patient_id}/programs", json=body(clinic, exercises, start="2026-11-16")
    ).get_json()["id"]
    with database.unit_of_work() as s:
        s.add_all(
            [
                ProgramLog(
                    program_id=program_id,
                    patient_id=patient_id,
                    local_date=date(2026, 11, 16),
                    done=True,
                    pain=6,
                    source="page",
                    note="Stiff in the morning",
                ),
                ProgramLog(
                    program_id=program_id,
                    patient_id=patient_id,
                    local_date=date(2026, 11, 18),
                    done=True,
                    pain=5,
                    source="sms",
                ),
                ProgramLog(
                    program_id=program_id,
                    patient_id=patient_id,
                    local_date=date(2026, 11, 20),
                    done=False,
                    pain=5,
                    source="sms",
                ),
            ]
        )
    response = staff.get(f"/api/v1/programs/{program_id}")
    assert response.status_code == 200
    program = response.get_json()
    assert PROGRAM_FIELDS | {"versions", "logs", "adherence"} == set(program)
    assert program["status"] == "active"
    assert program["logs"] == [
        {"date": "2026-11-16", "done": True, "pain": 6, "source": "page", "note": "Stiff in the morning"},
        {"date": "2026-11-18", "done": True, "pain": 5, "source": "sms", "note": ""},
        {"date": "2026-11-20", "done": False, "pain": 5, "source": "sms", "note": ""},
    ]
    # Week of the 16th: Mon, Wed, Fri prescribed, two done; this week: Monday the 23rd so far, not done.
    assert program["adherence"]["weeks"] == [
        {"start": "2026-11-16", "logged": 2, "prescribed": 3, "ratio": pytest.approx(2 / 3)},
        {"start": "2026-11-23", "logged": 0, "prescribed": 1, "ratio": 0.0},
    ]
    assert program["adherence"]["overall"] == pytest.approx(0.5)
    assert [v["version"] for v in program["versions"]] == [1]


def test_an_unknown_program_is_a_404(staff, library):  # noqa: F811
    assert staff.get("/api/v1/programs/424242").status_code == 404


def test_the_openapi_document_describes_the_program_endpoints(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert "/api/v1/exercises" in paths
    assert "post" in paths["/api/v1/patients/{patient_id}/programs"]
    assert "get" in paths["/api/v1/programs/{program_id}"]


# --- a practitioner's token ---------------------------------------------------------------------


@pytest.fixture
def maya(client, database, clinic):
    """A practitioner token for Maya Chen (practitioner 0)."""
    with database.unit_of_work() as s:
        user, _ = create_user(s, "maya@example.com", role="practitioner", password="a-long-password")
        s.get(Practitioner, clinic.practitioner_ids[0]).user_id = user.id
        secret = create_api_token(s, "maya@example.com", now=NOW)
    headers = {"Authorization": f"Bearer {secret}"}

    class Maya:
        def get(self, path):
            return client.get(path, headers=headers)

        def post(self, path, **kwargs):
            return client.post(path, headers=headers, **kwargs)

    return Maya()


def test_a_practitioner_assigns_to_their_own_patients_only(maya, staff, book, clinic, exercises, database):  # noqa: F811
    book(local("2026-11-24", "10:00"), practitioner=0, first_name="Ana", email="ana@example.com")
    book(local("2026-11-24", "11:00"), practitioner=1, first_name="Bea", email="bea@example.com", phone="+14165550177")
    with database.unit_of_work() as s:
        ana, bea = s.scalars(select(Patient.id).order_by(Patient.id)).all()
    mine = maya.post(f"/api/v1/patients/{ana}/programs", json=body(clinic, exercises))
    assert mine.status_code == 201
    assert maya.post(f"/api/v1/patients/{bea}/programs", json=body(clinic, exercises)).status_code == 404
    as_daniel = maya.post(
        f"/api/v1/patients/{ana}/programs", json=body(clinic, exercises, practitioner_id=clinic.practitioner_ids[1])
    )
    assert fields_of(as_daniel) == {"practitioner_id": "Use your own practitioner id."}

    daniels = staff.post(
        f"/api/v1/patients/{bea}/programs", json=body(clinic, exercises, practitioner_id=clinic.practitioner_ids[1])
    ).get_json()["id"]
    assert maya.get(f"/api/v1/programs/{mine.get_json()['id']}").status_code == 200
    assert maya.get(f"/api/v1/programs/{daniels}").status_code == 404


# --- the booking request ------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "stored"), [({}, False), ({"exercise_sms_consent": True}, True)])
def test_the_booking_request_takes_exercise_sms_consent(book, database, given, stored):  # noqa: F811
    book(local("2026-11-24", "10:00"), **given)
    with database.unit_of_work() as s:
        assert s.scalar(select(Patient.exercise_sms_consent)) is stored


def test_end_defaults_to_until_discharge(staff, clinic, exercises, patient_id):  # noqa: F811
    program = staff.post(f"/api/v1/patients/{patient_id}/programs", json=body(clinic, exercises)).get_json()
    assert program["end"] is None
    later = (date(2026, 11, 23) + timedelta(days=42)).isoformat()
    program = staff.post(f"/api/v1/patients/{patient_id}/programs", json=body(clinic, exercises, end=later)).get_json()
    assert program["end"] == later
