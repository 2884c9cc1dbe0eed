"""Home exercise programs in the domain: the library, assigning, revising, pausing, resuming,
ending and discharging, and the console's pages for them. Time is frozen at NOW (Monday
2026-11-23, 08:00 in Toronto)."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from sqlalchemy import func, select

from booking_service import errors
from booking_service.errors import InvalidTransition, ValidationFailed
from booking_service.exercises.catalogue import list_exercises, save_exercise
from booking_service.exercises.library import LIBRARY, load_library
from booking_service.exercises.models import Alert, Exercise, Program
from booking_service.exercises.programs import (
    ItemSpec,
    create_program,
    end_program,
    get_program,
    pause_program,
    resume_program,
    revise_program,
)
from booking_service.patients.models import Patient
from tests.conftest import NOW, SECRET

pytest_plugins = ["tests.console_fixtures"]

MONDAY = date(2026, 11, 23)


@pytest.fixture
def library(database, clinic):
    """The seeded library: key -> exercise id."""
    with database.unit_of_work() as s:
        load_library(s)
        return {e.key: e.id for e in s.scalars(select(Exercise))}


@pytest.fixture
def patient_id(booked, database):
    booked()
    with database.unit_of_work() as s:
        return s.scalar(select(Patient.id))


@pytest.fixture
def assign(database, clinic, library, patient_id):
    """``assign(**overrides)``: a program for the patient with Maya; returns its id."""

    def make(**overrides):
        values = dict(
            patient_id=patient_id,
            practitioner_id=clinic.practitioner_ids[0],
            location_id=clinic.location_id,
            items=[ItemSpec(library["bridge"], reps=12), ItemSpec(library["nerve_glide_seated"])],
            days=[0, 2, 4],
            time_of_day=time(18, 30),
            start=MONDAY,
            secret_key=SECRET,
            now=NOW,
        )
        values.update(overrides)
        with database.unit_of_work() as s:
            return create_program(s, **values).id

    return make


def _program(database, program_id):
    with database.unit_of_work() as s:
        program = get_program(s, program_id)
        program.versions  # noqa: B018  (loaded before the session closes)
        for version in program.versions:
            for item in version.items:
                item.exercise  # noqa: B018
        return program


# --- the library ----------------------------------------------------------------------------------


def test_library_load_is_idempotent_and_restores_edited_wording(database, clinic):
    with database.unit_of_work() as s:
        assert load_library(s) == (len(LIBRARY), 0)
    with database.unit_of_work() as s:
        assert load_library(s) == (0, 0)
        s.scalar(select(Exercise).where(Exercise.key == "bridge")).name_en = "Changed"
    with database.unit_of_work() as s:
        assert load_library(s) == (0, 1)
        assert s.scalar(select(func.count(Exercise.id))) == len(LIBRARY)
        bridge = s.scalar(select(Exercise).where(Exercise.key == "bridge"))
        assert bridge.name("en") == "Bridge" and bridge.name("fr") == "Pont"
        assert "physiotherapist" in bridge.cautions("en") and "physiothérapeute" in bridge.cautions("fr")


def test_library_covers_the_sciatica_set_in_both_languages(database, clinic, library):
    for key in (
        "nerve_glide_seated",
        "nerve_glide_lying",
        "hamstring_stretch",
        "knee_to_chest",
        "prone_press_up",
        "piriformis_stretch",
        "foam_roll_glutes",
        "abdominal_bracing",
        "bridge",
        "bird_dog",
        "walking",
        "pool_exercise",
    ):
        assert key in library
    with database.unit_of_work() as s:
        for exercise in s.scalars(select(Exercise)):
            assert exercise.instructions_fr and exercise.instructions_fr != exercise.instructions_en


def test_staff_add_an_exercise_and_search_finds_it(database, library):
    values = dict(
        key="side_plank",
        name_en="Side plank",
        name_fr="Planche latérale",
        instructions_en="Lie on your side...",
        instructions_fr="Couchez-vous sur le côté...",
        default_reps=None,
        default_sets=3,
        default_hold_seconds=20,
        default_times_per_day=1,
        media_url="https://videos.example.com/side-plank",
    )
    with database.unit_of_work() as s:
        save_exercise(s, values)
    with database.unit_of_work() as s:
        assert [e.key for e in list_exercises(s, "plank")] == ["side_plank"]
        assert [e.key for e in list_exercises(s, "latérale")] == ["side_plank"]


def test_an_exercise_with_a_taken_key_and_bad_values_names_each_field(database, library):
    values = dict(
        key="bridge",
        name_en="",
        name_fr="Pont",
        instructions_en="x",
        instructions_fr="",
        default_reps=0,
        default_hold_seconds=601,
        media_url="javascript:alert(1)",
    )
    with database.unit_of_work() as s, pytest.raises(ValidationFailed) as caught:
        save_exercise(s, values)
    assert caught.value.fields == {
        "key": errors.EXERCISE_KEY_TAKEN,
        "name_en": errors.EXERCISE_NAME_MISSING,
        "instructions_fr": errors.EXERCISE_INSTRUCTIONS_MISSING,
        "default_reps": errors.REPS_INVALID,
        "default_hold_seconds": errors.HOLD_INVALID,
        "media_url": errors.MEDIA_URL_INVALID,
    }


# --- programs -------------------------------------------------------------------------------------


def test_a_new_program_is_active_with_doses_and_defaults(database, assign, library):
    program = _program(database, assign())
    assert (program.status, program.version, program.days) == ("active", 1, [0, 2, 4])
    assert program.timezone == "America/Toronto" and program.end_date is None
    bridge, glide = program.current.items
    assert (bridge.reps, bridge.sets, bridge.hold_seconds) == (12, 2, 5)  # reps given, the rest default
    assert (glide.reps, glide.sets, glide.times_per_day) == (10, 2, 2)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"items": []}, {"exercises": errors.EXERCISES_MISSING}),
        ({"items": [ItemSpec(999_999)]}, {"exercises.0.exercise_id": errors.EXERCISE_UNKNOWN}),
        ({"days": []}, {"days": errors.DAYS_MISSING}),
        ({"days": [7]}, {"days": errors.WEEKDAY_INVALID}),
        ({"end": MONDAY - timedelta(days=1)}, {"end": errors.END_BEFORE_START}),
        ({"practitioner_id": 999_999}, {"practitioner_id": errors.PRACTITIONER_UNKNOWN}),
    ],
)
def test_bad_program_input_names_the_field(assign, overrides, expected):
    with pytest.raises(ValidationFailed) as caught:
        assign(**overrides)
    assert caught.value.fields == expected and caught.value.status == 422


def test_a_dose_out_of_bounds_names_the_item_and_the_dose(assign, library):
    with pytest.raises(ValidationFailed) as caught:
        assign(items=[ItemSpec(library["bridge"]), ItemSpec(library["walking"], sets=21, hold_seconds=0)])
    assert caught.value.fields == {
        "exercises.1.sets": errors.SETS_INVALID,
        "exercises.1.hold_seconds": errors.HOLD_INVALID,
    }


def test_revising_makes_a_new_version_and_keeps_the_old_one_readable(database, assign, library):
    program_id = assign()
    later = NOW + timedelta(days=7)
    with database.unit_of_work() as s:
        revise_program(
            s,
            program_id,
            items=[ItemSpec(library["bird_dog"], reps=10, sets=3)],
            days=[1, 3],
            time_of_day=time(7, 15),
            start=MONDAY + timedelta(days=7),
            end=date(2027, 1, 31),
            note="Progressed core work",
            now=later,
        )
    program = _program(database, program_id)
    assert (program.version, program.days, program.time_of_day) == (2, [1, 3], time(7, 15))
    assert program.start_date == MONDAY and program.end_date == date(2027, 1, 31)  # history counts from day one
    first, second = program.versions
    assert [i.exercise.key for i in first.items] == ["bridge", "nerve_glide_seated"]
    assert first.days == [0, 2, 4] and first.time_of_day == time(18, 30)
    assert [(i.exercise.key, i.reps, i.sets) for i in second.items] == [("bird_dog", 10, 3)]
    assert second.note == "Progressed core work"


def test_pause_and_resume(database, assign):
    program_id = assign()
    with database.unit_of_work() as s:
        pause_program(s, program_id, now=NOW)
    program = _program(database, program_id)
    assert (program.status, program.pause_reason) == ("paused", "staff")
    with database.unit_of_work() as s, pytest.raises(InvalidTransition) as caught:
        pause_program(s, program_id, now=NOW)
    assert caught.value.code == "program_not_active"
    with database.unit_of_work() as s:
        resume_program(s, program_id, now=NOW)
    program = _program(database, program_id)
    assert (program.status, program.pause_reason, program.paused_at) == ("active", None, None)


def test_a_program_paused_by_an_open_alert_resumes_only_after_acknowledging(database, assign, patient_id):
    program_id = assign()
    with database.unit_of_work() as s:
        pause_program(s, program_id, reason="alert", now=NOW)
        s.add(Alert(patient_id=patient_id, program_id=program_id, kind="pain", source="sms", text="pain 9"))
    with database.unit_of_work() as s, pytest.raises(InvalidTransition) as caught:
        resume_program(s, program_id, now=NOW)
    assert caught.value.code == "alert_open"


@pytest.mark.parametrize(("discharged", "reason"), [(False, "ended"), (True, "discharged")])
def test_end_and_discharge_stop_the_program_for_good(database, assign, library, discharged, reason):
    program_id = assign()
    with database.unit_of_work() as s:
        end_program(s, program_id, discharged=discharged, now=NOW + timedelta(days=2))
    program = _program(database, program_id)
    assert (program.status, program.end_reason, program.end_date) == ("ended", reason, MONDAY + timedelta(days=2))
    with database.unit_of_work() as s, pytest.raises(InvalidTransition) as caught:
        revise_program(
            s, program_id, items=[ItemSpec(library["bridge"])], days=[0], time_of_day=time(9), start=MONDAY, now=NOW
        )
    assert caught.value.code == "program_ended"
    with database.unit_of_work() as s:
        assert s.scalar(select(func.count(Program.id))) == 1


# --- the demo -------------------------------------------------------------------------------------


def test_the_demo_has_the_library_and_two_programs_one_improving_one_alerted(database):
    from booking_service.demo import seed
    from booking_service.exercises.progress import logs, pain_series

    with database.unit_of_work() as s:
        result = seed(s, secret_key=SECRET, now=NOW)
    assert "2 home exercise programs" in result.summary
    with database.unit_of_work() as s:
        assert s.scalar(select(func.count(Exercise.id))) == len(LIBRARY)
        improving, alerted = s.scalars(select(Program).order_by(Program.id)).all()
        assert improving.status == "active"
        pains = [pain for _day, pain in pain_series(logs(s, improving.id))]
        assert pains[0] > pains[-1] and len(pains) >= 8  # two weeks of logs, pain falling
        assert (alerted.status, alerted.pause_reason) == ("paused", "alert")
        pains = [pain for _day, pain in pain_series(logs(s, alerted.id))]
        assert pains[-1] >= 8 > pains[0]
        alert = s.scalar(select(Alert))
        assert (alert.kind, alert.status, alert.program_id) == ("pain", "open", alerted.id)
        assert s.get(Patient, improving.patient_id).exercise_sms_consent


# --- the console ----------------------------------------------------------------------------------


def test_a_practitioner_assigns_a_program_from_the_appointment_page(physio, booked, library, database):
    from tests.console_fixtures import text

    appointment_id = booked()
    page = text(physio.get(f"/staff/appointments/{appointment_id}"))
    assert "Home exercise program" in page and "Assign a program" in page
    with database.unit_of_work() as s:
        patient_id = s.scalar(select(Patient.id))
    form = physio.get(f"/staff/patients/{patient_id}/programs/new?appointment={appointment_id}")
    assert form.status_code == 200 and "America/Toronto" in text(form) and "not agreed" in text(form)
    bridge = library["bridge"]
    response = physio.post(
        f"/staff/patients/{patient_id}/programs/new",
        data={
            "appointment": appointment_id,
            f"ex_{bridge}": "yes",
            f"reps_{bridge}": "12",
            f"sets_{bridge}": "2",
            "day": ["0", "3"],
            "time": "07:45",
            "start": "2026-11-24",
            "end": "",
        },
    )
    assert response.status_code == 302, text(response)
    program_page = text(physio.get(response.headers["Location"]))
    assert "Bridge: 12 reps × 2 sets" in program_page and "Mon, Thu" in program_page
    assert "Version 1" in program_page and "/p/" in program_page


def test_the_program_form_says_what_to_fix(physio, booked, library, database):
    from tests.console_fixtures import text

    booked()
    with database.unit_of_work() as s:
        patient_id = s.scalar(select(Patient.id))
    bridge = library["bridge"]
    response = physio.post(
        f"/staff/patients/{patient_id}/programs/new",
        data={
            f"ex_{bridge}": "yes",
            f"reps_{bridge}": "999",
            "time": "07:45",
            "start": "2026-11-24",
            "end": "2026-11-01",
        },
    )
    assert response.status_code == 422
    page = text(response)
    assert "Repetitions: 1 to 200" in page and "Tick at least one day" in page and "The end date is before" in page


def test_staff_pause_resume_and_discharge_from_the_program_page(desk, assign):
    from tests.console_fixtures import text

    program_id = assign()
    for action, shown in (("pause", "Paused"), ("resume", "Active"), ("discharge", "discharged")):
        response = desk.post(f"/staff/programs/{program_id}/action", data={"action": action})
        assert response.status_code == 302
        assert shown in text(desk.get(f"/staff/programs/{program_id}"))


def test_another_practitioners_program_is_not_found(physio, assign, clinic):
    program_id = assign(practitioner_id=clinic.practitioner_ids[1])
    assert physio.get(f"/staff/programs/{program_id}").status_code == 404
    assert physio.post(f"/staff/programs/{program_id}/action", data={"action": "pause"}).status_code == 404


def test_the_library_page_lists_and_an_admin_edits(admin, desk, library):
    from tests.console_fixtures import text

    assert "Prone press-up" in text(admin.get("/staff/exercises?q=press"))
    assert desk.get(f"/staff/exercises/{library['bridge']}").status_code == 403
    form = {
        "key": "bridge",
        "name_en": "Glute bridge",
        "name_fr": "Pont fessier",
        "instructions_en": "Lift.",
        "instructions_fr": "Soulevez.",
        "default_reps": "12",
        "default_times_per_day": "1",
        "active": "yes",
    }
    assert admin.post(f"/staff/exercises/{library['bridge']}", data=form).status_code == 302
    assert "Glute bridge" in text(admin.get("/staff/exercises"))
    bad = admin.post("/staff/exercises/new", data={**form, "media_url": "ftp://x"})
    assert bad.status_code == 422 and "Another exercise already has this key" in text(bad)
