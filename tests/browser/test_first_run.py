"""A clinic of one's own in Chromium: from an empty database through the guided setup (the
first admin's account, the clinic, a location, a practitioner with hours, a service) to a
patient booking with the new clinic on a phone; and the console's clinic setup pages, as a
clinic owner finds them afterwards (demo clinic). Every page is checked with axe-core and
photographed; docs/clinic-setup.md shows the ``doc=`` screenshots (copies from
test-artifacts/screenshots/docs/)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from booking_service.clinic.models import Practitioner, Service
from booking_service.demo import DEMO_LOGINS
from booking_service.scheduling.models import Appointment
from booking_service.staff.models import User
from tests.browser.conftest import DESKTOP, PHONE, Visit
from tests.browser.test_patient_pages import fill_details, pick_first_time, step_one

pytestmark = pytest.mark.browser

OWNER_EMAIL = "olive@harbourphysio.example"
OWNER_PASSWORD = "tide-pool-lantern"


def press(v: Visit, button: str, url: str) -> None:
    v.page.get_by_role("button", name=button).click()
    v.page.wait_for_url(re.compile(url))


def test_from_an_empty_database_to_a_patients_first_booking(browser, empty_server):
    owner = Visit(browser, empty_server, "first-run", DESKTOP, locale="en-CA", timezone_id="America/Vancouver")
    page = owner.page
    try:
        owner.goto("/")
        assert page.get_by_role("heading", name="This clinic is not set up yet").is_visible()
        owner.check("empty-start", doc="first-run-1-start.png")
        page.get_by_role("link", name="Set up your clinic").click()
        page.wait_for_url(re.compile(r"/setup$"))

        # 1. The first admin's account; a mistyped repeat is caught before anything is saved.
        page.get_by_label("Your name").fill("Olive Owner")
        page.get_by_label("Email").fill(OWNER_EMAIL)
        page.get_by_label("Password", exact=True).fill(OWNER_PASSWORD)
        page.get_by_label("Password again").fill(OWNER_PASSWORD)
        owner.check("account", doc="first-run-2-account.png")
        page.get_by_label("Password again").fill("tide-pool-lantren")
        press(owner, "Create my account and continue", r"/setup$")
        assert "not the same" in page.locator("#password_again-error").inner_text()
        assert page.get_by_label("Password again").get_attribute("aria-invalid") == "true"
        assert page.get_by_label("Email").input_value() == OWNER_EMAIL  # what was typed stays
        owner.check("account-errors")
        page.get_by_label("Password", exact=True).fill(OWNER_PASSWORD)
        page.get_by_label("Password again").fill(OWNER_PASSWORD)
        press(owner, "Create my account and continue", r"/staff/first-run/clinic$")

        # 2. The clinic: a wrong phone says what to fix, and what was typed stays.
        page.get_by_label("Clinic name").fill("Harbour Physio")
        page.get_by_label("Phone").fill("555 01")
        page.get_by_label("Email").fill("hello@harbourphysio.example")
        page.get_by_label("Address").fill("1 Lower Water St, Halifax, NS B3J 1R7")
        page.get_by_label("Time zone").fill("America/Halifax")
        press(owner, "Save and continue", r"/staff/first-run/clinic$")
        assert "phone number" in page.locator("#phone-error").inner_text()
        assert page.get_by_label("Clinic name").input_value() == "Harbour Physio"
        owner.check("clinic-errors", doc="first-run-3-clinic-errors.png")
        page.get_by_label("Phone").fill("902 555 0100")
        owner.check("clinic", doc="first-run-3-clinic.png")
        press(owner, "Save and continue", r"/staff/first-run/location$")

        # 3. A location: the zone and address start as the clinic's.
        assert page.get_by_label("Time zone").input_value() == "America/Halifax"
        page.get_by_label("Name").fill("Waterfront")
        page.get_by_label("Directions and parking").fill("Entrance on Lower Water St, second floor. Parking behind.")
        owner.check("location", doc="first-run-4-location.png")
        press(owner, "Save and continue", r"/staff/first-run/practitioner$")

        # 4. A practitioner, with Monday to Friday 09:00-17:00 offered; Saturday morning added.
        page.get_by_label("First name").fill("Ann")
        page.get_by_label("Last name").fill("Lee")
        page.get_by_label("Short bio").fill("Manual therapy and return to running.")
        page.get_by_label("Saturday start").fill("09:00")
        page.get_by_label("Saturday end").fill("12:00")
        owner.check("practitioner", doc="first-run-5-practitioner.png")
        press(owner, "Save and continue", r"/staff/first-run/service$")

        # 5. A service, with the warning that its name appears in texts.
        assert page.get_by_text("The name appears in texts and emails.").is_visible()
        page.get_by_label("Price").fill("95")
        page.get_by_label("Preparation notes").fill("Wear shorts or loose clothing.")
        owner.check("service", doc="first-run-6-service.png")
        press(owner, "Save and open online booking", r"/staff/first-run$")
        assert page.get_by_role("heading", name="Your clinic is ready").is_visible()
        owner.check("ready", doc="first-run-7-ready.png")
        # Signed in to the console: the day page is theirs.
        page.get_by_role("link", name="Day").click()
        assert page.get_by_text("Olive Owner").is_visible()

        # The setup is closed for good.
        assert owner.goto("/setup").status == 404
    finally:
        owner.close()

    # A patient on a phone books with the new clinic.
    patient = Visit(browser, empty_server, "first-run-patient", PHONE, locale="en-CA", timezone_id="America/Vancouver")
    try:
        patient.goto("/")
        assert patient.page.get_by_role("heading", name="Book an appointment").is_visible()
        step_one(patient, service="Initial assessment", location="Waterfront")
        patient.page.wait_for_url(re.compile(r"/book/time"))
        assert patient.page.get_by_text(re.compile(r"Times are in Halifax time")).is_visible()
        chosen = pick_first_time(patient)
        press(patient, "Continue", r"/book/details")
        fill_details(patient, "Pat", "First", email="pat.first@example.com", phone="902 555 0142")
        press(patient, "Continue", r"/book/review")
        press(patient, "Confirm booking", r"/book/confirmed")
        assert patient.page.get_by_role("heading", name="You are booked").is_visible()
        assert patient.page.get_by_text("Wear shorts or loose clothing.").is_visible()
        patient.check("booked", doc="first-run-8-booked.png")
    finally:
        patient.close()

    with empty_server.database.unit_of_work() as s:
        (appointment,) = s.scalars(select(Appointment)).all()
        practitioner = s.get(Practitioner, appointment.practitioner_id)
        assert practitioner.display_name == "Ann Lee"
        assert s.get(Service, appointment.service_id).name == "Initial assessment"
        assert appointment.start_at.strftime("%Y-%m-%dT%H:%MZ") == chosen
        assert [u.email for u in s.scalars(select(User))] == [OWNER_EMAIL]


def test_the_console_clinic_setup_pages_as_an_owner_finds_them(visit, live_server):
    """The demo clinic's setup pages, photographed for docs/clinic-setup.md."""
    v = visit(DESKTOP)
    page = v.page
    email, _role, password = DEMO_LOGINS[0]
    v.goto("/staff/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    press(v, "Log in", r"/staff/$")
    page.get_by_role("link", name="Clinic setup").click()
    page.wait_for_url(re.compile(r"/staff/setup/clinic$"))
    v.check("clinic", doc="console-setup-clinic.png")
    page.get_by_role("link", name="Locations").click()
    page.wait_for_url(re.compile(r"/staff/setup/locations$"))
    v.check("locations", doc="console-setup-locations.png")
    page.get_by_role("link", name="Practitioners").click()
    page.wait_for_url(re.compile(r"/staff/setup/practitioners$"))
    v.check("practitioners")
    page.get_by_role("link", name="Maya Chen", exact=True).click()
    page.wait_for_url(re.compile(r"/staff/setup/practitioners/\d+$"))
    v.check("practitioner", doc="console-setup-practitioner.png")
    page.get_by_role("link", name="Services", exact=True).click()
    page.wait_for_url(re.compile(r"/staff/setup/services$"))
    v.check("services", doc="console-setup-services.png")
    page.get_by_role("link", name="Follow-up (30 min)", exact=True).click()
    page.wait_for_url(re.compile(r"/staff/setup/services/\d+$"))
    v.check("service", doc="console-setup-service.png")
