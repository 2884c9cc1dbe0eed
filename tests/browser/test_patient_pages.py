"""The patient pages in Chromium: booking (phone, desktop, keyboard only, French, no JavaScript),
the red-flag path, a slot taken between choosing and confirming, the manage link (reschedule,
cancel), the waitlist, and the weight of the booking page. Every page is checked with axe-core
and photographed under test-artifacts/screenshots/."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from booking_service.clinic.models import Location, Practitioner, Service
from booking_service.db import utcnow
from booking_service.patients.models import ConsentEvent, Patient
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling import slots
from booking_service.scheduling.models import Appointment
from booking_service.usecases.booking import BookingRequest, book
from booking_service.waitlist.models import WaitlistEntry

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

PAGE_BUDGET = 150 * 1024


def _unique(prefix: str) -> str:
    return f"{prefix}{datetime.now().strftime('%H%M%S%f')}"


def step_one(v, service="Initial assessment", location="Downtown") -> None:
    page = v.page
    page.get_by_role("radio", name=re.compile(re.escape(service))).check()
    page.get_by_role("radio", name=re.compile(location)).check()
    page.get_by_role("button", name=re.compile("See free times|Voir les plages libres")).click()


def pick_first_time(v) -> str:
    """Checks the first free time shown and returns its value (the UTC start)."""
    slot = v.page.locator("details[open] input[name=start]").first
    slot.check()
    return slot.get_attribute("value")


def fill_details(v, first: str, last: str, *, email="pat@example.com", phone="416 555 0199", flags=()) -> None:
    page = v.page
    page.locator("#f-first_name").fill(first)
    page.locator("#f-last_name").fill(last)
    page.locator("#f-email").fill(email)
    page.locator("#f-phone").fill(phone)
    page.locator("#f-sms_consent").check()
    page.locator("#f-email_consent").check()
    page.locator("#f-reason").fill("Pain down the back of my left leg for three weeks")
    for key in ("bladder_bowel", "saddle_numbness", "leg_weakness", "systemic"):
        page.locator(f"#f-rf_{key}" if key in flags else f"#f-rf_{key}-no").check()


def patient_named(live_server, first: str) -> Patient:
    with live_server.database.unit_of_work() as s:
        patient = s.scalars(select(Patient).where(Patient.first_name == first)).one()
        s.expunge(patient)
        return patient


def appointments_of(live_server, first: str) -> list[Appointment]:
    with live_server.database.unit_of_work() as s:
        rows = list(
            s.scalars(select(Appointment).join(Patient).where(Patient.first_name == first).order_by(Appointment.id))
        )
        for row in rows:
            s.expunge(row)
        return rows


def assert_no_intake_in_urls(v) -> None:
    for url in v.urls:
        assert "rf_" not in url and "reason" not in url and "leg" not in url.lower(), url


def test_booking_on_a_phone(visit, live_server):
    v = visit(PHONE)
    first = _unique("Phone")
    v.goto("/")
    v.check("start", doc="phone-1-start.png")
    step_one(v)
    v.page.wait_for_url(re.compile(r"/book/time"))
    assert v.page.get_by_text(re.compile(r"Times are in Toronto time \((EST|EDT)\)")).is_visible()
    v.check("time", doc="phone-2-time.png")
    pick_first_time(v)
    v.page.get_by_role("button", name="Continue").click()
    v.page.wait_for_url(re.compile(r"/book/details"))
    v.check("details")
    # Sending the form empty shows a summary whose links lead to the fields.
    v.page.get_by_role("button", name="Continue").click()
    summary = v.page.locator("#error-summary")
    assert summary.is_visible()
    assert v.page.evaluate("document.activeElement.id") == "error-summary"
    assert v.page.locator("#f-first_name").get_attribute("aria-invalid") == "true"
    assert "first_name-error" in v.page.locator("#f-first_name").get_attribute("aria-describedby")
    assert v.page.title().startswith("Error:")
    v.check("details-errors", doc="phone-3-details-errors.png")
    fill_details(v, first, "Ng")
    v.page.get_by_role("button", name="Continue").click()
    v.page.wait_for_url(re.compile(r"/book/review"))
    v.check("review")
    v.page.get_by_role("button", name="Confirm booking").click()
    v.page.wait_for_url(re.compile(r"/book/confirmed"))
    assert v.page.get_by_role("heading", name="You are booked").is_visible()
    assert v.page.get_by_role("heading", name="Getting ready for your first visit").is_visible()
    google = v.page.get_by_role("link", name=re.compile("Google Calendar"))
    assert google.get_attribute("href").startswith("https://calendar.google.com/calendar/render?")
    assert "/m/" not in google.get_attribute("href")  # the manage token never leaves the site
    ics_href = v.page.get_by_role("link", name=re.compile(r"\.ics")).get_attribute("href")
    ics = v.context.request.get(live_server.url + ics_href)
    assert ics.ok and ics.headers["content-type"].startswith("text/calendar")
    assert b"BEGIN:VEVENT" in ics.body()
    v.check("confirmed", doc="phone-6-confirmed.png")
    assert_no_intake_in_urls(v)

    (appointment,) = appointments_of(live_server, first)
    assert appointment.source == "online" and appointment.triage == "none"
    assert appointment.intake_reason.startswith("Pain down the back")
    with live_server.database.unit_of_work() as s:
        events = s.scalars(select(ConsentEvent).where(ConsentEvent.patient_id == appointment.patient_id)).all()
        assert {(e.channel, e.source) for e in events} == {("sms", "booking_form"), ("email", "booking_form")}


def test_booking_on_a_desktop_with_the_keyboard_only(visit, live_server):
    v = visit(DESKTOP)
    page = v.page
    first = _unique("Keys")
    v.goto("/")

    def tab_to(selector: str, limit: int = 250) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
                outline = page.evaluate(
                    """() => { const e = document.activeElement, s = getComputedStyle(e);
                       const l = e.labels && e.labels[0] ? getComputedStyle(e.labels[0]) : s;
                       return [s.outlineStyle, s.boxShadow, l.boxShadow].join(' '); }"""
                )
                assert outline.strip() not in ("", "none none none"), f"no visible focus on {selector}"
                return
        raise AssertionError(f"Tab never reached {selector}")

    # Skip link first.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('skip-link')")
    tab_to("input[name=service_id]")
    page.keyboard.press("Space")
    tab_to("input[name=location_id]")
    page.keyboard.press("Space")
    tab_to("button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/book/time"))
    v.check("time", doc="desktop-time.png")
    tab_to("input[name=start]")
    page.keyboard.press("ArrowRight")  # radios move with the arrow keys
    page.keyboard.press("Space")
    chosen = page.evaluate("document.activeElement.value")
    tab_to(".slot-form button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/book/details"))
    for field, text in (("first_name", first), ("last_name", "Board"), ("email", "keys@example.com")):
        tab_to(f"#f-{field}")
        page.keyboard.type(text)
    tab_to("#f-email_consent")
    page.keyboard.press("Space")
    for key in ("bladder_bowel", "saddle_numbness", "leg_weakness", "systemic"):
        tab_to(f"input[name=rf_{key}]")
        page.keyboard.press("ArrowRight")  # from "Yes" to "No" (selects it)
    tab_to("[data-details-form] button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/book/review"))
    tab_to("form[data-once] button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/book/confirmed"))
    v.check("confirmed")
    (appointment,) = appointments_of(live_server, first)
    assert appointment.start_at.strftime("%Y-%m-%dT%H:%MZ") == chosen
    assert appointment.red_flags == dict.fromkeys(
        ("bladder_bowel", "saddle_numbness", "leg_weakness", "systemic"), False
    )


def test_red_flag_answer_shows_urgent_guidance_and_the_booking_is_flagged(visit, live_server):
    v = visit(PHONE)
    first = _unique("Flag")
    v.goto("/")
    step_one(v)
    pick_first_time(v)
    v.page.get_by_role("button", name="Continue").click()
    fill_details(v, first, "Red", flags=("saddle_numbness",))
    assert v.page.locator("#urgent-preview").is_visible()  # said at once, beside the question
    v.shot("details-yes")
    v.page.get_by_role("button", name="Continue").click()
    v.page.wait_for_url(re.compile(r"/book/urgent"))
    assert v.page.get_by_role("heading", name="Please read this first").is_visible()
    assert v.page.get_by_text(re.compile("call 911")).first.is_visible()
    v.check("urgent", doc="phone-4-urgent.png")
    v.page.get_by_role("button", name="Continue booking").click()  # without ticking: refused
    assert v.page.locator("#error-summary").is_visible()
    v.check("urgent-error")
    v.page.get_by_label("I have read this advice.").check()
    v.page.get_by_role("button", name="Continue booking").click()
    v.page.wait_for_url(re.compile(r"/book/review"))
    assert v.page.get_by_text("You answered yes to at least one").is_visible()
    v.page.get_by_role("button", name="Confirm booking").click()
    v.page.wait_for_url(re.compile(r"/book/confirmed"))
    v.check("confirmed")
    assert_no_intake_in_urls(v)
    (appointment,) = appointments_of(live_server, first)
    assert appointment.triage == "urgent"
    assert appointment.red_flags["saddle_numbness"] is True


def test_a_slot_taken_before_confirming_offers_alternatives_and_keeps_the_details(visit, live_server):
    v = visit(PHONE)
    first = _unique("Late")
    v.goto("/")
    step_one(v, service="Follow-up (30 min)")
    v.page.wait_for_url(re.compile(r"/book/time"))
    v.page.get_by_label("Practitioner").select_option(label="Daniel Okafor (Physiotherapist)")
    v.page.get_by_role("button", name="Show times").click()
    v.page.wait_for_url(re.compile(r"practitioner_id=\d+"))
    v.page.wait_for_selector("details[open] input[name=start]")
    chosen = pick_first_time(v)
    v.page.get_by_role("button", name="Continue").click()
    fill_details(v, first, "Comer")
    v.page.get_by_role("button", name="Continue").click()
    v.page.wait_for_url(re.compile(r"/book/review"))

    # Someone else books that very time (through the domain, as the API or the desk would).
    with live_server.database.unit_of_work() as s:
        service = s.scalars(select(Service).where(Service.name == "Follow-up (30 min)")).one()
        daniel = s.scalars(select(Practitioner).where(Practitioner.first_name == "Daniel")).one()
        downtown = s.scalars(select(Location).where(Location.name == "Downtown")).one()
        book(
            s,
            BookingRequest(
                service_id=service.id,
                location_id=downtown.id,
                practitioner_id=daniel.id,
                start=datetime.fromisoformat(chosen),
                source="staff",
                patient=PatientDetails(first_name=_unique("Other"), last_name="Person", email="other@example.com"),
            ),
            secret_key=live_server.secret,
            now=utcnow(),
        )

    v.page.get_by_role("button", name="Confirm booking").click()
    assert v.page.get_by_text("that time was just taken").is_visible()
    assert v.page.get_by_text("Your details are kept").is_visible()
    assert v.page.locator("input[name=start]").count() >= 1
    assert v.page.get_by_text(f"{first} Comer").is_visible()
    v.check("taken", doc="phone-5-slot-taken.png")
    v.page.get_by_role("button", name="Use this time").click()
    v.page.wait_for_url(re.compile(r"/book/review"))
    assert v.page.get_by_text(f"{first} Comer").is_visible()
    v.page.get_by_role("button", name="Confirm booking").click()
    v.page.wait_for_url(re.compile(r"/book/confirmed"))
    (appointment,) = appointments_of(live_server, first)
    assert appointment.start_at.strftime("%Y-%m-%dT%H:%MZ") != chosen
    assert appointment.practitioner_id == daniel.id


def _book_through_the_domain(live_server, first: str, *, days_ahead: int = 5) -> str:
    with live_server.database.unit_of_work() as s:
        service = s.scalars(select(Service).where(Service.name == "Initial assessment")).one()
        downtown = s.scalars(select(Location).where(Location.name == "Downtown")).one()
        from booking_service.clinic.queries import get_clinic

        clinic = get_clinic(s)
        now = utcnow()
        day = slots.local_date(now, downtown) + timedelta(days=days_ahead)
        free = slots.find_slots(
            s,
            clinic=clinic,
            service=service,
            location=downtown,
            practitioners=service.practitioners,
            first_day=day,
            last_day=day + timedelta(days=7),
            now=now,
        )
        booked = book(
            s,
            BookingRequest(
                service_id=service.id,
                location_id=downtown.id,
                practitioner_id=free[0].practitioner_id,
                start=free[0].start,
                patient=PatientDetails(
                    first_name=first,
                    last_name="Manage",
                    email="manage.me@example.com",
                    phone="416 555 0177",
                    sms_consent=True,
                ),
            ),
            secret_key=live_server.secret,
            now=now,
        )
        return booked.manage_token


def test_reschedule_and_cancel_through_the_manage_link(visit, live_server):
    first = _unique("Manage")
    token = _book_through_the_domain(live_server, first)
    v = visit(PHONE)
    response = v.goto(f"/m/{token}")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "no-store" in response.headers["cache-control"]
    assert v.page.get_by_text("m•••@example.com").is_visible()
    assert v.page.get_by_text("Pain").count() == 0  # never any intake here
    v.check("manage", doc="phone-7-manage.png")
    before = appointments_of(live_server, first)[0].start_at

    v.page.get_by_role("link", name="Change the time").click()
    v.page.wait_for_url(re.compile(r"/reschedule"))
    v.check("reschedule")
    v.page.get_by_role("link", name=re.compile("Later week")).click()
    v.page.wait_for_url(re.compile(r"from="))
    v.page.wait_for_selector("details[open] input[name=start]")
    pick_first_time(v)
    v.page.get_by_role("button", name="Move my appointment").click()
    v.page.wait_for_url(re.compile(rf"/m/{token}$"))
    assert v.page.get_by_role("status").get_by_text("moved to").is_visible()
    v.check("rescheduled")
    after = appointments_of(live_server, first)[0]
    assert after.start_at > before and after.status == "booked"

    v.page.get_by_role("link", name="Cancel appointment").click()
    v.page.wait_for_url(re.compile(r"/cancel"))
    v.page.get_by_role("button", name="Cancel appointment").click()
    assert v.page.locator("#error-summary").is_visible()  # a reason is asked for
    v.check("cancel-error")
    v.page.get_by_label("I cannot make this time").check()
    v.page.get_by_label(re.compile("Anything you want to tell us")).fill("Work trip")
    v.page.get_by_role("button", name="Cancel appointment").click()
    v.page.wait_for_url(re.compile(rf"/m/{token}$"))
    assert v.page.get_by_text("Your appointment is cancelled").is_visible()
    v.check("cancelled")
    cancelled = appointments_of(live_server, first)[0]
    assert cancelled.status == "cancelled"
    assert cancelled.cancel_reason == "Cannot make this time: Work trip"
    assert cancelled.cancelled_by == "patient"


def test_a_french_booking(visit, live_server):
    v = visit(PHONE, locale="en-CA")
    first = _unique("Franc")
    v.goto("/")
    v.page.get_by_role("link", name="Français").click()
    v.page.wait_for_url(re.compile(r"lang=fr"))
    assert v.page.locator("html").get_attribute("lang") == "fr-CA"
    assert v.page.get_by_role("heading", name="Prendre rendez-vous").is_visible()
    v.check("start")
    step_one(v, service="Évaluation initiale", location="Downtown")
    v.page.wait_for_url(re.compile(r"/book/time"))
    assert v.page.get_by_text(re.compile(r"heure de Toronto \((HNE|HAE)\)")).is_visible()
    assert re.search(r"\d{2} h \d{2}", v.page.locator("details[open] .slot").first.inner_text())
    v.check("time", doc="phone-8-french-time.png")
    pick_first_time(v)
    v.page.get_by_role("button", name="Continuer").click()
    v.page.wait_for_url(re.compile(r"/book/details"))
    fill_details(v, first, "Tremblay", email="franc@example.com")
    assert v.page.locator("#language-fr").is_checked()  # the page language is the default
    v.check("details")
    v.page.get_by_role("button", name="Continuer").click()
    v.page.wait_for_url(re.compile(r"/book/review"))
    v.check("review")
    v.page.get_by_role("button", name="Confirmer le rendez-vous").click()
    v.page.wait_for_url(re.compile(r"/book/confirmed"))
    assert v.page.get_by_role("heading", name="Votre rendez-vous est réservé").is_visible()
    v.check("confirmed")
    patient = patient_named(live_server, first)
    assert patient.language == "fr"
    (appointment,) = appointments_of(live_server, first)
    assert appointment.language == "fr"


def test_booking_works_without_javascript(visit, live_server):
    v = visit(PHONE, java_script_enabled=False)
    first = _unique("NoJs")
    v.goto("/")
    step_one(v, service="Follow-up (45 min)")
    v.page.wait_for_url(re.compile(r"/book/time"))
    v.page.get_by_role("link", name=re.compile("Later week")).click()
    v.page.wait_for_url(re.compile(r"from="))
    v.page.locator("details.day").nth(1).locator("summary").click()
    slot = v.page.locator("details[open] input[name=start]").last
    slot.check()
    v.page.get_by_role("button", name="Continue").click()
    fill_details(v, first, "Plain")
    v.page.get_by_role("button", name="Continue").click()
    v.page.get_by_role("button", name="Confirm booking").click()
    v.page.wait_for_url(re.compile(r"/book/confirmed"))
    v.shot("confirmed")
    assert len(appointments_of(live_server, first)) == 1


def test_joining_the_waitlist_when_nothing_fits(visit, live_server):
    v = visit(PHONE)
    first = _unique("Wait")
    v.goto("/")
    step_one(v, service="Massage therapy (60 min)")
    v.page.wait_for_url(re.compile(r"/book/time"))
    v.page.get_by_role("link", name="Join the waitlist").click()
    v.page.wait_for_url(re.compile(r"/waitlist"))
    v.check("waitlist")
    v.page.locator("#f-first_name").fill(first)
    v.page.locator("#f-last_name").fill("Patient")
    v.page.locator("#f-phone").fill("647 555 0123")
    v.page.locator("#f-sms_consent").check()
    v.page.locator("#f-notes").fill("Weekday mornings")
    v.page.get_by_role("button", name="Join the waitlist").click()
    v.page.wait_for_url(re.compile(r"/waitlist/joined"))
    v.check("joined")
    with live_server.database.unit_of_work() as s:
        entry = s.scalars(select(WaitlistEntry).join(Patient).where(Patient.first_name == first)).one()
        assert entry.status == "waiting" and entry.notes == "Weekday mornings"


def test_the_booking_pages_weigh_less_than_150_kb(visit, live_server):
    for path in ("/", "/book/time?service_id=1&location_id=1&practitioner_id="):
        v = visit(PHONE)  # a first visit: nothing cached
        responses = []

        def keep(response, responses=responses):
            responses.append(response)

        v.page.on("response", keep)
        v.page.goto(live_server.url + path, wait_until="load")
        v.page.remove_listener("response", keep)
        assert all(r.status == 200 for r in responses), [(r.url, r.status) for r in responses]
        sizes = {r.url: len(r.body()) + sum(len(k) + len(val) + 4 for k, val in r.headers.items()) for r in responses}
        assert any(".css?" in u for u in sizes) and any(".js?" in u for u in sizes), sizes
        total = sum(sizes.values())
        assert total < PAGE_BUDGET, f"{path}: {total} bytes over {len(sizes)} responses"
        print(f"page weight {path}: {total} bytes in {len(sizes)} responses: {sizes}")


def test_an_unknown_manage_link_says_so(visit, live_server):
    v = visit(PHONE)
    response = v.goto("/m/not-a-real-token-at-all")
    assert response.status == 404
    assert response.headers["referrer-policy"] == "no-referrer"
    v.check("not-found")
