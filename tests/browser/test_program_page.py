"""The patient's home exercise program page (/p/<token>) on a phone (390x844): every action,
with and without JavaScript, in English and French; axe-core on every state."""

from __future__ import annotations

import re
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import select

from booking_service.clinic.models import Location, Practitioner
from booking_service.db import utcnow
from booking_service.exercises.models import Program, ProgramLog
from booking_service.exercises.programs import program_token
from tests.browser.conftest import PHONE
from tests.support.programs import add_patient, add_program


def _program(live_server, *, language: str = "en", phone: str = "+14165550166") -> tuple[int, str]:
    with live_server.database.unit_of_work() as s:
        location = s.scalars(select(Location).order_by(Location.id)).first()
        practitioner = s.scalars(select(Practitioner).order_by(Practitioner.id)).first()
        clinic = SimpleNamespace(location_id=location.id, practitioner_ids=[practitioner.id])
        patient = add_patient(s, language=language, phone=phone, email=None)
        today = utcnow().astimezone(ZoneInfo(location.timezone)).date()
        program = add_program(s, clinic, patient.id, start=today, now=utcnow(), secret_key=live_server.secret)
        return program.id, program_token(program, live_server.secret)


def _log(live_server, program_id: int) -> ProgramLog | None:
    with live_server.database.unit_of_work() as s:
        log = s.scalars(select(ProgramLog).where(ProgramLog.program_id == program_id)).first()
        if log is not None:
            s.expunge(log)
        return log


def test_the_program_page_on_a_phone(visit, live_server):
    program_id, token = _program(live_server)
    v = visit(PHONE)
    response = v.goto(f"/p/{token}")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "no-store" in response.headers["cache-control"]
    v.check("program", doc="phone-program.png")

    v.page.get_by_role("button", name=re.compile(r"^Mark done")).first.click()
    v.page.wait_for_url(re.compile(r"#exercises$"))
    assert v.page.get_by_text("Marked as done.").is_visible()
    assert v.page.get_by_text("Done today").count() == 1
    v.check("one-done")

    v.page.get_by_role("radio", name="3", exact=True).check()
    v.page.get_by_label("A note for your physiotherapist").fill("Easier than yesterday")
    v.page.get_by_role("button", name="Save", exact=True).click()
    v.page.wait_for_url(re.compile(r"#pain$"))
    assert v.page.get_by_text("Thank you, saved.").is_visible()
    log = _log(live_server, program_id)
    assert (log.pain, log.note, log.source) == (3, "Easier than yesterday", "page")

    v.page.locator("#f-activity_1").fill("Sitting through a meal")
    v.page.locator("#f-score_1").fill("4")
    v.page.get_by_role("button", name="Save my scores").click()
    v.page.wait_for_url(re.compile(r"#function$"))
    assert v.page.get_by_text("Sitting through a meal:").is_visible()

    v.page.get_by_role("button", name="I did them all today").click()
    v.page.wait_for_url(re.compile(r"#exercises$"))
    assert v.page.get_by_text("All done for today").is_visible()
    assert _log(live_server, program_id).done is True
    v.check("all-done")


def test_the_program_page_without_javascript_in_french(visit, live_server):
    program_id, token = _program(live_server, language="fr", phone="+14165550167")
    v = visit(PHONE, java_script_enabled=False, locale="fr-CA")
    v.goto(f"/p/{token}")
    assert v.page.get_by_role("heading", name="Vos exercices à la maison").is_visible()
    v.page.get_by_role("button", name="Je les ai tous faits aujourd’hui").click()
    v.page.wait_for_url(re.compile(r"#exercises$"))
    assert v.page.get_by_text("Tout est fait pour aujourd’hui").is_visible()
    assert _log(live_server, program_id).done is True
    v.shot("fr-done")


def test_a_paused_program_says_so_without_forms(visit, live_server):
    program_id, token = _program(live_server, phone="+14165550168")
    with live_server.database.unit_of_work() as s:
        program = s.get(Program, program_id)
        program.status, program.pause_reason = "paused", "staff"
    v = visit(PHONE)
    v.goto(f"/p/{token}")
    assert v.page.get_by_text("Your program is on hold for now.", exact=False).is_visible()
    assert v.page.get_by_role("button").count() == 0
    v.check("paused")
