"""The desk's new console pages in Chromium (1280x900), axe-core on each: the triage queue on
the day view, a patient's notes, editing details, two records side by side, the new-patient
duplicate warning, and the waitlist's chain of offers."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from booking_service.clinic.models import Location, Service
from booking_service.db import utcnow
from booking_service.demo import DEMO_LOGINS
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.queries import staff_slots
from booking_service.usecases.booking import BookingRequest, book, cancel
from booking_service.waitlist.operations import WaitlistRequest, join_waitlist
from tests.browser.conftest import DESKTOP


def check_main(v, step: str) -> None:
    """axe-core on the page's main content (the pages of this test), with the usual screenshot.
    The shared top bar is the console-wide accessibility work's, checked there."""
    v.shot(step)
    violations = v.page.evaluate(
        """async () => {
            const result = await axe.run({include: [['main']]}, {
                runOnly: {type: 'tag', values: [
                    'wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']},
            });
            return result.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => ({id: v.id, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
        }"""
    )
    assert violations == [], f"{step}: {violations}"
    assert not v.problems, f"{step}: " + "\n".join(v.problems)


def _scene(live_server) -> dict:
    """An urgent booking, and a visit cancelled with two patients waiting for its day."""
    now = utcnow()
    with live_server.database.unit_of_work() as s:
        location = s.scalars(select(Location).order_by(Location.id)).first()
        service = s.scalars(select(Service).where(Service.kind == "follow_up").order_by(Service.id)).first()
        today = now.astimezone(ZoneInfo(location.timezone)).date()
        free = staff_slots(
            s,
            service_id=service.id,
            location_id=location.id,
            practitioner_id=None,
            first_day=today + timedelta(days=3),
            days=7,
            now=now,
        )
        first, second = free[0], free[4]

        def booking(slot, details, **extra):
            return book(
                s,
                BookingRequest(
                    service_id=service.id,
                    location_id=location.id,
                    practitioner_id=slot.practitioner_id,
                    start=slot.start,
                    patient=details,
                    **extra,
                ),
                secret_key=live_server.secret,
                now=now,
            ).appointment

        urgent = booking(
            first,
            PatientDetails("Rowan", "Desk-Urgent", phone="+14165550301", sms_consent=True),
            red_flags={"saddle_numbness": True},
        )
        visit = booking(second, PatientDetails("Quinn", "Desk-Cancel", phone="+14165550302", sms_consent=True))
        day = second.start.astimezone(ZoneInfo(location.timezone)).date()
        for first_name, phone in (("Sage", "+14165550303"), ("Tate", "+14165550304")):
            join_waitlist(
                s,
                WaitlistRequest(
                    service_id=service.id,
                    location_id=location.id,
                    earliest_date=day,
                    latest_date=day,
                    patient=PatientDetails(first_name, "Desk-Waiting", phone=phone, sms_consent=True),
                    notes="Mornings" if first_name == "Sage" else "",
                ),
                now=now,
            )
        cancel(s, visit.id, now=now, by_patient=True)
        return {"urgent_patient": urgent.patient_id, "cancelled_patient": visit.patient_id}


def test_the_desks_pages_in_a_browser(visit, live_server):
    scene = _scene(live_server)
    email, _role, password = DEMO_LOGINS[0]  # the admin: a clinician for the triage queue
    v = visit(DESKTOP)
    v.goto("/staff/login")
    v.page.get_by_label("Email").fill(email)
    v.page.get_by_label("Password").fill(password)
    v.page.get_by_role("button", name="Log in").click()
    v.page.wait_for_url(re.compile(r"/staff/$"))

    assert v.page.get_by_role("heading", name=re.compile("Triage queue")).is_visible()
    assert v.page.get_by_text("Rowan Desk-Urgent").first.is_visible()
    check_main(v, "triage-queue")
    v.page.get_by_role("button", name=re.compile(r"^Mark handled\W+Rowan Desk-Urgent")).click()
    assert v.page.get_by_text("Marked handled").is_visible()
    check_main(v, "triage-handled")

    v.goto(f"/staff/patients/{scene['urgent_patient']}")
    v.page.get_by_label("Add a note").fill("Called back; seen at the emergency department.")
    v.page.get_by_role("button", name="Add note").click()
    assert v.page.get_by_text("Note added.").is_visible()
    check_main(v, "patient-notes")

    v.goto(f"/staff/patients/{scene['urgent_patient']}/edit")
    v.page.get_by_label("Date of birth").fill("1979-06-30")
    v.page.get_by_role("button", name="Save details").click()
    assert v.page.get_by_text(re.compile(r"details \(birth date\)")).is_visible()
    check_main(v, "patient-edited")

    v.goto(f"/staff/patients/{scene['urgent_patient']}/compare?other={scene['cancelled_patient']}")
    assert v.page.get_by_role("button", name=re.compile("^Merge #")).is_visible()
    check_main(v, "compare")

    v.goto("/staff/patients/new")
    v.page.get_by_label("First name").fill("Rowen")
    v.page.get_by_label("Last name").fill("Desk Urgent")
    v.page.get_by_label("Mobile phone").fill("416 555 0301")
    v.page.get_by_role("button", name="Add patient").click()
    assert v.page.get_by_role("group", name="Already on file?").is_visible()
    check_main(v, "new-patient-duplicate")
    v.page.get_by_label(re.compile(r"Use this patient")).check()
    v.page.get_by_role("button", name="Add patient").click()
    v.page.wait_for_url(re.compile(rf"/staff/patients/{scene['urgent_patient']}$"))

    v.goto("/staff/waitlist")
    assert v.page.get_by_text("Being offered").first.is_visible()
    assert v.page.get_by_text("Sage Desk-Waiting").first.is_visible()
    check_main(v, "waitlist-chain")
    v.page.get_by_role("button", name=re.compile("^Offer to the next person now")).first.click()
    assert v.page.get_by_text(re.compile("Offered to Tate Desk-Waiting now")).is_visible()
    check_main(v, "waitlist-passed-on")
