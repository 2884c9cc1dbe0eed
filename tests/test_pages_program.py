"""The program page /p/<token>: what it shows, every action, bad tokens, bad input, and the
domain writes behind it (exercises.logging). SQLite and PostgreSQL; time frozen."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

import pytest
from sqlalchemy import select

from booking_service.exercises import logging as logs
from booking_service.exercises.models import FunctionScore, Program, ProgramLog, ProgramLogItem
from booking_service.exercises.programs import program_token
from tests.conftest import NOW, SECRET
from tests.support.programs import add_patient, add_program

TODAY = date(2026, 11, 23)  # NOW is Monday 08:00 in Toronto


@pytest.fixture
def make_program(database, clinic):
    """Returns (program id, token) of an active program every day since 2026-11-16."""

    def make(language="en", **program):
        with database.unit_of_work() as s:
            patient = add_patient(s, language=language)
            made = add_program(s, clinic, patient.id, start=program.pop("start", date(2026, 11, 16)), **program)
            return made.id, program_token(made, SECRET)

    return make


def logged(database, program_id: int, day: date = TODAY) -> ProgramLog | None:
    with database.unit_of_work() as s:
        log = s.scalars(
            select(ProgramLog).where(ProgramLog.program_id == program_id, ProgramLog.local_date == day)
        ).first()
        if log is not None:
            s.expunge(log)
        return log


def item_ids(database, program_id: int) -> list[int]:
    with database.unit_of_work() as s:
        return [item.id for item in s.get(Program, program_id).current.items]


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


# --------------------------------------------------------------------------- showing


def test_the_page_shows_todays_exercises_with_dose_and_cautions_privately(pages, make_program):
    _, token = make_program()
    response = pages.get(f"/p/{token}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    page = text_of(response)
    assert "Seated nerve glide" in page and "12 repetitions · 2 sets" in page
    assert "Knee to chest" in page and "hold 20 seconds" in page
    assert "Stop if tingling spreads down the leg." in page
    assert "Mark done" in page and "I did them all today" in page
    assert "Everyday activities" in page  # the PSFS is asked on the first day it is opened


def test_the_page_speaks_the_patients_language(pages, make_program):
    _, token = make_program(language="fr")
    page = text_of(pages.get(f"/p/{token}"))
    assert "Glissement neural assis" in page
    assert "Arrêtez si les picotements descendent dans la jambe." in page
    assert "Vos exercices à la maison" in page


@pytest.mark.parametrize("token", ["nope", "x" * 24, "x" * 65, "%00", "..%2F..%2Fetc"])
def test_an_unknown_token_is_the_same_404_page(pages, make_program, token):
    make_program()
    response = pages.get(f"/p/{token}")
    assert response.status_code == 404
    assert response.headers["Cache-Control"] == "no-store"


def test_a_program_ended_over_30_days_ago_is_a_404_and_a_recent_one_says_so_kindly(pages, database, make_program):
    old_id, old = make_program()
    recent_id, recent = make_program()
    with database.unit_of_work() as s:
        for program_id, ended in ((old_id, datetime(2026, 10, 1, tzinfo=UTC)), (recent_id, NOW)):
            program = s.get(Program, program_id)
            program.status, program.ended_at, program.end_reason = "ended", ended, "discharged"
    assert pages.get(f"/p/{old}").status_code == 404
    response = pages.get(f"/p/{recent}")
    assert response.status_code == 200
    page = text_of(response)
    assert "This program has ended" in page
    assert "Mark done" not in page and "How is your pain today?" not in page


def test_a_paused_program_says_so_and_refuses_logging(pages, database, make_program):
    program_id, token = make_program()
    with database.unit_of_work() as s:
        program = s.get(Program, program_id)
        program.status, program.pause_reason = "paused", "alert"
    page = text_of(pages.get(f"/p/{token}"))
    assert "on hold" in page and "Mark done" not in page
    assert pages.post(f"/p/{token}/done").status_code == 409
    assert logged(database, program_id) is None


# --------------------------------------------------------------------------- actions


def test_marking_each_exercise_done_makes_the_day_done(pages, database, make_program):
    program_id, token = make_program()
    first, second = item_ids(database, program_id)

    response = pages.post(f"/p/{token}/items/{first}/done")
    assert response.status_code == 302 and response.headers["Location"].startswith(f"/p/{token}")
    log = logged(database, program_id)
    assert (log.done, log.source) == (False, "page")
    assert "Done today" in text_of(pages.get(f"/p/{token}"))

    pages.post(f"/p/{token}/items/{first}/done")  # twice: no harm
    pages.post(f"/p/{token}/items/{second}/done")
    assert logged(database, program_id).done is True
    with database.unit_of_work() as s:
        assert s.scalar(select(ProgramLogItem.id).where(ProgramLogItem.program_item_id == second)) is not None
    page = text_of(pages.get(f"/p/{token}"))
    assert "All done for today" in page and "I did them all today" not in page


def test_done_all_logs_the_day_and_the_week_shows_it(pages, database, make_program):
    program_id, token = make_program()
    assert pages.post(f"/p/{token}/done").status_code == 302
    assert logged(database, program_id).done is True
    page = pages.get(f"/p/{token}").get_data(as_text=True)
    assert re.search(r'week-done" aria-current="date"', page)
    assert page.count("week-missed") == 0  # Monday is the first day of the week


def test_pain_and_a_note_are_saved_for_today(pages, database, make_program):
    program_id, token = make_program()
    response = pages.post(f"/p/{token}/pain", data={"pain": "4", "note": "  Stiff after sitting  "})
    assert response.status_code == 302
    log = logged(database, program_id)
    assert (log.pain, log.note, log.done) == (4, "Stiff after sitting", False)
    assert 'id="pain-4" value="4" checked' in pages.get(f"/p/{token}").get_data(as_text=True)


@pytest.mark.parametrize("pain", ["11", "-1", "7.5", "seven", "1e3", "９"])
def test_pain_out_of_range_is_refused_with_the_page_not_a_500(pages, database, make_program, pain):
    program_id, token = make_program()
    response = pages.post(f"/p/{token}/pain", data={"pain": pain})
    assert response.status_code == 422
    assert "Choose a number from 0 to 10." in text_of(response)
    assert logged(database, program_id) is None


def test_a_high_pain_score_is_a_pain_jump_and_thanks_the_patient_with_safety_advice(pages, database, make_program):
    program_id, token = make_program()
    response = pages.post(f"/p/{token}/pain", data={"pain": "8"}, follow_redirects=True)
    assert "stop the exercises and call the clinic" in text_of(response)
    assert logged(database, program_id).pain == 8


def test_the_psfs_is_saved_and_shown_then_not_asked_again_for_a_week(pages, database, make_program, frozen):
    program_id, token = make_program()
    form = {"activity_1": "Sitting through a meal", "score_1": "3", "activity_2": "Putting on socks", "score_2": "5"}
    assert pages.post(f"/p/{token}/function", data=form).status_code == 302
    with database.unit_of_work() as s:
        rows = s.scalars(select(FunctionScore).where(FunctionScore.program_id == program_id)).all()
        assert sorted((r.position, r.activity, r.score) for r in rows) == [
            (1, "Sitting through a meal", 3),
            (2, "Putting on socks", 5),
        ]
    page = text_of(pages.get(f"/p/{token}"))
    assert "Sitting through a meal: 3 /10" in page and "Save my scores" not in page
    frozen.shift(7 * 24 * 3600)
    assert "Save my scores" in text_of(pages.get(f"/p/{token}"))


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({}, "Name at least one activity."),
        ({"activity_1": "Walking", "score_1": "12"}, "Choose a score from 0 to 10."),
        ({"activity_1": "Walking", "score_1": ""}, "Choose a score from 0 to 10."),
        ({"activity_1": "W" * 121, "score_1": "3"}, "Keep this to 120 characters or fewer."),
    ],
)
def test_bad_psfs_answers_are_refused_with_the_reason(pages, make_program, form, message):
    _, token = make_program()
    response = pages.post(f"/p/{token}/function", data=form)
    assert response.status_code == 422
    assert message in text_of(response)


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("post", "/p/{token}/items/999999/done", {}),
        ("post", "/p/{token}/items/99999999999999999999/done", {}),
        ("post", "/p/{token}/pain", {"pain": "\x00", "note": "x" * 100_000}),
        ("post", "/p/{token}/pain", {"note": "x" * 501}),
        ("post", "/p/{token}/function", {"activity_1": ["a", "b"], "score_1": "\x00"}),
        ("get", "/p/{token}/done", {}),
        ("post", "/p/nope/done", {}),
    ],
)
def test_junk_never_makes_a_500(pages, make_program, method, path, data):
    _, token = make_program()
    response = getattr(pages, method)(path.format(token=token), data=data)
    assert 400 <= response.status_code < 500


def test_posts_need_a_csrf_token(app, clinic, database, make_program):
    program_id, token = make_program()
    app.config["WTF_CSRF_ENABLED"] = True
    response = app.test_client().post(f"/p/{token}/done")
    assert response.status_code == 400
    assert logged(database, program_id) is None


def test_before_the_start_date_the_page_says_when_and_shows_no_forms(pages, make_program):
    _, token = make_program(start=date(2026, 11, 30))
    page = text_of(pages.get(f"/p/{token}"))
    assert "Your program starts on" in page
    assert "Mark done" not in page and "How is your pain today?" not in page


# --------------------------------------------------------------------------- the domain contract


def test_log_day_reports_a_pain_jump_over_the_baseline_once(database, make_program):
    program_id, _ = make_program()
    with database.unit_of_work() as s:
        program = s.get(Program, program_id)
        for day, pain in ((date(2026, 11, 18), 2), (date(2026, 11, 19), 3), (date(2026, 11, 20), 2)):
            s.add(
                ProgramLog(
                    program_id=program_id, patient_id=program.patient_id, local_date=day, pain=pain, source="sms"
                )
            )
        s.flush()
        assert logs.baseline(s, program, before=TODAY) == 2
        assert logs.log_day(s, program, TODAY, pain=4, source="sms", now=NOW).pain_jump is None
        jump = logs.log_day(s, program, TODAY, pain=5, source="sms", now=NOW).pain_jump
        assert jump == logs.PainJump(5, 2.0)
        # The jump raised a pain alert, which pauses the program until a practitioner acknowledges.
        assert (program.status, program.pause_reason) == ("paused", "alert")
        assert logs.log_day(s, program, TODAY, pain=5, source="staff", now=NOW).pain_jump is None  # same score again
        assert logs.log_day(s, program, TODAY, pain=9, source="staff", now=NOW).pain_jump.pain == 9


def test_log_day_refuses_a_future_day_and_an_item_of_another_program(database, make_program):
    program_id, _ = make_program()
    other_id, _ = make_program()
    foreign = item_ids(database, other_id)[0]
    with database.unit_of_work() as s:
        program = s.get(Program, program_id)
        with pytest.raises(logs.ValidationFailed):
            logs.log_day(s, program, date(2026, 11, 24), done=True, source="sms", now=NOW)
        with pytest.raises(logs.NotFound):
            logs.log_day(s, program, TODAY, item_id=foreign, source="page", now=NOW)


def test_program_time_is_local_to_the_program(database, make_program):
    # 23:30 in Vancouver on Monday is already Tuesday in UTC: the log is Monday's.
    program_id, _ = make_program(timezone="America/Vancouver", at=time(20, 0))
    late = datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    with database.unit_of_work() as s:
        program = s.get(Program, program_id)
        result = logs.log_day(s, program, date(2026, 11, 23), done=True, source="sms", now=late)
        assert result.newly_done is True
