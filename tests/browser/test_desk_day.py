"""A whole day at the front desk in Chromium, through the console as a receptionist uses it.

The app's clock is moved (``time_machine``, as the keyboard test of ``test_console_a11y`` does;
the browser keeps its own clock) to 08:50 on a Tuesday at Downtown far enough ahead that no other
test books it. The morning's bookings were made a week before, with the app's own functions; from
then on everything is clicks and typing:

1. the first patients are checked in from the day board;
2. a caller is rebooked to later that day;
3. Sophie Tremblay's afternoon is cancelled (time off): her patients move to Daniel Okafor from
   each appointment's reschedule page, and each is sent the usual reschedule message;
4. a patient books a series of weekly visits, one of which conflicts: an alternative is picked,
   then all are booked and the plan shows on the patient record;
5. a late cancellation is offered to the waitlist; the patient waiting opens the link of her text
   on her phone and books it; the chain shows it booked;
6. a second desk books a walk-in while the first desk's board is open: it appears there without
   a reload.

Every page visited is checked with axe-core (no serious or critical violation, no script or CSP
error); the screenshots of docs/staff-console.md ("A day at the desk") are taken at each step and
copied to docs/screenshots/desk-day-*.png."""

from __future__ import annotations

import re
import shutil
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from booking_service.clinic.models import Location, Practitioner, Service
from booking_service.db import Database, utcnow
from booking_service.outbox.models import OutboxMessage
from booking_service.patients.models import Patient
from booking_service.patients.operations import PatientDetails
from booking_service.usecases.booking import BookingRequest, book
from booking_service.waitlist.operations import WaitlistRequest, join_waitlist
from scheduler.worker import Worker
from tests.browser.conftest import PHONE, SCREENSHOTS, sign_in
from tests.support.environ import settings_from, variables

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1366, "height": 900}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
UPDATE_WITHIN_MS = 15_000  # the board polls every 4 s: a few seconds, with room for a loaded machine
TUESDAY = 1
DAYS_AHEAD = 63  # past the demo's appointments and plan, and the other browser tests' days

# The morning as booked a week before: (local time, practitioner key, service key, patient).
BOOKINGS = (
    ("09:00", "maya-chen", "follow-up-30", "Ines Duarte"),
    ("09:00", "daniel-okafor", "follow-up-30", "Omar Haddad"),
    ("10:00", "arjun-patel", "follow-up-30", "Tomas Novak"),
    ("10:30", "sophie-tremblay", "initial-assessment", "Wen Li"),
    ("13:30", "sophie-tremblay", "follow-up-30", "Yara Saleh"),
    ("15:00", "sophie-tremblay", "follow-up-45", "Ada Kowalski"),
    ("14:00", "maya-chen", "follow-up-30", "Zack Moreau"),
)
SERIES_CONFLICT = "Ben Okoro"  # booked with Maya two weeks after the day, at the series' time
WAITING = "Cleo Martin"


def the_day(live_server) -> tuple[date, ZoneInfo]:
    """The first Tuesday at least DAYS_AHEAD days from today in Toronto."""
    with live_server.database.unit_of_work() as s:
        zone = ZoneInfo(s.scalars(select(Location).where(Location.key == "downtown")).one().timezone)
    day = datetime.now(zone).date() + timedelta(days=DAYS_AHEAD)
    return day + timedelta(days=(TUESDAY - day.weekday()) % 7), zone


def details(name: str, n: int) -> PatientDetails:
    first, last = name.split()
    return PatientDetails(
        first_name=first,
        last_name=last,
        email=f"{first}.{last}@example.com".lower(),
        phone=f"+1416555{n:04d}",
        sms_consent=True,
        email_consent=True,
    )


def book_the_morning(live_server, day: date, zone: ZoneInfo) -> list[int]:
    """What was booked a week before the day (the app's own booking and waitlist functions);
    returns the patients' ids."""
    with live_server.database.unit_of_work() as s:
        downtown = s.scalars(select(Location).where(Location.key == "downtown")).one()
        people = {p.key: p.id for p in s.scalars(select(Practitioner))}
        services = {sv.key: sv.id for sv in s.scalars(select(Service))}
        now = utcnow()
        visits = [*BOOKINGS, ("09:00", "maya-chen", "follow-up-30", SERIES_CONFLICT)]
        patients = []
        for n, (clock, who, what, name) in enumerate(visits, start=201):
            on = day + timedelta(days=14) if name == SERIES_CONFLICT else day
            start = datetime.combine(on, time.fromisoformat(clock), zone)
            booked = book(
                s,
                BookingRequest(
                    service_id=services[what],
                    location_id=downtown.id,
                    practitioner_id=people[who],
                    start=start,
                    patient=details(name, n),
                    source="staff",
                ),
                secret_key=live_server.secret,
                now=now,
            )
            patients.append(booked.appointment.patient_id)
        join_waitlist(
            s,
            WaitlistRequest(
                service_id=services["follow-up-30"],
                location_id=downtown.id,
                earliest_date=day,
                latest_date=day,
                patient=details(WAITING, 299),
                notes="Any time that day",
            ),
            now=now,
        )
        return patients


def send_due(live_server) -> int:
    """The worker's send job, once (console transports): every message due by the app's clock
    goes out, as it would within seconds in a running clinic."""
    settings = settings_from(
        variables(DATABASE_URL=live_server.database.url, SECRET_KEY=live_server.secret, PUBLIC_BASE_URL=live_server.url)
    )
    worker = Worker(settings, database=Database(live_server.database.url))
    try:
        worker.claim_and_submit()
    finally:
        worker.drain()
    return worker.sent


def send_until(live_server, patients: list[int], end: datetime) -> None:
    """The worker at each time a message to ``patients`` fell due before ``end``."""
    while True:
        with live_server.database.unit_of_work() as s:
            due = s.scalars(
                select(OutboxMessage.due_at)
                .where(
                    OutboxMessage.patient_id.in_(patients),
                    OutboxMessage.status == "pending",
                    OutboxMessage.due_at < end,
                )
                .order_by(OutboxMessage.due_at)
                .limit(1)
            ).first()
        if due is None:
            return
        with time_machine.travel(due, tick=False):
            assert send_due(live_server) > 0, f"nothing went out at {due}"


def text_sent_to(live_server, name: str, kind: str) -> str:
    """The text of ``kind`` the patient got on their phone, as sent."""
    first, last = name.split()
    with live_server.database.unit_of_work() as s:
        return s.scalars(
            select(OutboxMessage.body)
            .join(Patient, OutboxMessage.patient_id == Patient.id)
            .where(
                OutboxMessage.kind == kind,
                OutboxMessage.channel == "sms",
                OutboxMessage.status.in_(("sent", "delivered")),
                Patient.first_name == first,
                Patient.last_name == last,
            )
        ).one()


def step(v, name: str, *, doc: str | None = None, scroll_to=None) -> None:
    """axe-core and the script/CSP checks on the page as it is; with ``doc``, its first screen
    (scrolled to ``scroll_to``: an element, or "top") goes to docs/screenshots/desk-day-<doc>.png."""
    if isinstance(scroll_to, str):  # "top"
        v.page.evaluate("window.scrollTo(0, 0)")
    elif scroll_to is not None:
        v.page.evaluate("(el) => el.scrollIntoView({block: 'start'})", scroll_to.element_handle())
    shot = f"desk-day-{doc}.png" if doc else None
    v.check(name, doc=shot)
    if shot:
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SCREENSHOTS / "docs" / shot, DOCS / shot)


def open_at_the_apps_time(visit, viewport: dict, name: str):
    """A visitor whose browser clock reads the app's (moved) clock, so what the page says of
    "now" agrees with the server."""
    v = visit(viewport, name=name)
    v.context.clock.set_system_time(utcnow())
    return v


def live(v) -> None:
    v.page.locator("[data-live-status]").get_by_text("Live").wait_for()


def visit_on_board(page, name: str):
    return page.locator("li.appt", has=page.locator("a.appt-link", has_text=name))


def pick_time(page, day: date, clock: str) -> None:
    """Choose ``clock`` among the free times listed for ``day``."""
    legend = f"{day:%a} {day.day} {day:%b}"
    fieldset = page.locator("fieldset.slot-day", has=page.locator("legend", has_text=legend))
    fieldset.get_by_label(clock, exact=True).check()


def move_from_appointment(v, name: str, *, practitioner: str | None, day: date, clock: str) -> None:
    """From the appointment page: Reschedule or move…, (a practitioner,) a free time, Move."""
    page = v.page
    page.get_by_role("link", name="Reschedule or move…").click()
    page.wait_for_url(re.compile(r"/reschedule"))
    if practitioner:
        page.get_by_label("Practitioner").select_option(label=practitioner)
        page.get_by_role("button", name="Show free times").click()
        page.get_by_role("heading", name=re.compile(f"Free times with {practitioner}")).wait_for()
    pick_time(page, day, clock)
    v.check(f"reschedule-{name.split()[0].lower()}")
    page.get_by_role("button", name="Move the appointment").click()
    page.get_by_text(re.compile(r"^Moved to ")).wait_for()


def messages_table(page):
    return page.locator("table.messages tbody tr")


def test_a_day_at_the_desk(visit, live_server):
    day, zone = the_day(live_server)
    week_before = datetime.combine(day - timedelta(days=7), time(12, 0), zone)
    with time_machine.travel(week_before, tick=True):
        patients = book_the_morning(live_server, day, zone)
    send_until(live_server, patients, datetime.combine(day, time(0, 0), zone))  # confirmations, reminders
    short = f"{day:%a} {day.day} {day:%b}"

    with time_machine.travel(datetime.combine(day, time(8, 50), zone), tick=True):
        desk = open_at_the_apps_time(visit, DESKTOP, "desk-day")
        page = desk.page
        sign_in(desk)
        live(desk)
        assert page.get_by_role("heading", level=1).inner_text().startswith(f"{day:%A} {day.day} {day:%B %Y}")
        step(desk, "morning")

        # 1. Morning check-ins, from the board's own buttons.
        for name in ("Ines Duarte", "Omar Haddad"):
            page.get_by_role("button", name=f"Check in {name}").click()
            page.get_by_text("Checked in.").wait_for()
            live(desk)
            assert "Checked in" in visit_on_board(page, name).locator(".appt-marks").inner_text()
        assert page.get_by_role("button", name="Check in Tomas Novak").is_visible()  # not yet here
        step(desk, "checked-in", doc="1-check-ins", scroll_to=page.locator(".board-bar"))

        # 2. Tomas Novak phones: he cannot come at 10:00; 15:30 with Arjun suits him.
        page.locator("a.appt-link", has_text="Tomas Novak").click()
        page.wait_for_url(re.compile(r"/staff/appointments/\d+$"))
        step(desk, "tomas")
        move_from_appointment(desk, "Tomas Novak", practitioner=None, day=day, clock="15:30")
        assert page.get_by_text(f"Moved to {short}", exact=False).first.is_visible()
        assert "15:30" in page.get_by_role("heading", level=1).inner_text()
        assert "reschedule" in messages_table(page).first.inner_text() or any(
            "reschedule" in row for row in messages_table(page).all_inner_texts()
        )
        step(desk, "rebooked", doc="2-rebooked")

        # 3. Sophie Tremblay is ill after lunch: her afternoon off, her patients to Daniel Okafor.
        page.get_by_role("link", name="Time off").first.click()
        page.wait_for_url(re.compile(r"/staff/time-off"))
        page.get_by_label("Practitioner").select_option(label="Sophie Tremblay")
        page.get_by_label("Start date").fill(day.isoformat())
        page.get_by_label("Start time").fill("13:00")
        page.get_by_label("End time").fill("17:00")
        page.get_by_label("Reason").fill("Ill: afternoon cancelled")
        page.get_by_role("button", name="Add time off").click()
        to_move = page.locator("ul.conflicts a")
        to_move.first.wait_for()
        assert [re.sub(r"\s+", " ", t) for t in to_move.all_inner_texts()] == [
            f"{day:%a} {day.day} {day:%b %Y}, 13:30, Yara Saleh (Follow-up (30 min), Sophie Tremblay)",
            f"{day:%a} {day.day} {day:%b %Y}, 15:00, Ada Kowalski (Follow-up (45 min), Sophie Tremblay)",
        ]
        step(desk, "time-off", doc="3-time-off")
        for name, clock, said in (("Yara Saleh", "13:30", "1:30 PM"), ("Ada Kowalski", "15:00", "3:00 PM")):
            page.locator("ul.conflicts a", has_text=name).click()
            page.wait_for_url(re.compile(r"/staff/appointments/\d+$"))
            move_from_appointment(desk, name, practitioner="Daniel Okafor", day=day, clock=clock)
            assert page.get_by_text("Now with Daniel Okafor at Downtown.", exact=False).is_visible()
            facts = page.locator("section[aria-labelledby=visit-title]").inner_text()
            assert "Daniel Okafor" in facts and clock in facts
            step(desk, f"moved-{name.split()[0].lower()}")
            # The worker sends the usual reschedule message, by text and e-mail: the new time and place.
            send_due(live_server)
            page.reload()
            rows = [row.split("\t") for row in messages_table(page).all_inner_texts()]
            sent = {(r[0], r[1]) for r in rows if r[3].strip() in ("sent", "delivered")}
            assert {("reschedule", "SMS"), ("reschedule", "Email")} <= sent, rows
            assert f"moved to {day:%a %b} {day.day}, {said}, Downtown" in text_sent_to(live_server, name, "reschedule")
            if name == "Yara Saleh":
                step(desk, "moved-messages", doc="3-moved")
            page.goto(live_server.url + "/staff/time-off")
        assert page.locator("ul.conflicts a").count() == 0
        page.goto(live_server.url + "/staff/")
        live(desk)
        sophie = page.locator("thead th", has_text="Sophie Tremblay")
        assert "1 appointment" in sophie.inner_text()
        for name in ("Yara Saleh", "Ada Kowalski"):
            assert visit_on_board(page, name).count() == 1
        step(desk, "board-after-moves")

        # 4. Ines Duarte, at the desk after her visit, books four weekly follow-ups with Maya.
        page.get_by_role("link", name="Patients").first.click()
        page.get_by_label("Name, email or phone").fill("Duarte")
        page.get_by_role("button", name="Search").click()
        step(desk, "patients-search")
        page.get_by_role("link", name="Duarte, Ines").click()
        page.wait_for_url(re.compile(r"/staff/patients/\d+$"))
        step(desk, "patient")
        page.get_by_role("link", name="Book a series").click()
        page.wait_for_url(re.compile(r"/plans/new"))
        assert "(30 min) (30 min)" not in page.get_by_label("Service").inner_text()
        page.get_by_label("Service").select_option(label="Follow-up (30 min)")
        page.get_by_label("Practitioner").select_option(label="Maya Chen")
        page.get_by_label("First visit").fill((day + timedelta(days=7)).isoformat())
        page.locator("#time").fill("09:00")
        page.get_by_label("Number of visits").fill("4")
        page.get_by_label("Weekly, on these days:").check()
        page.get_by_label("Tue").check()
        step(desk, "series-form")
        page.get_by_role("button", name="Preview the visits").click()
        page.get_by_role("heading", name=re.compile(r"2\. The visits")).wait_for()
        assert "1 to resolve" in page.get_by_role("heading", name=re.compile(r"2\. The visits")).inner_text()
        conflict = page.locator("tr.msg-failed")
        assert conflict.count() == 1 and "Taken" in conflict.inner_text()
        second = day + timedelta(days=14)
        assert f"{second:%a} {second.day} {second:%b %Y}, 09:00" in conflict.inner_text()
        step(desk, "series-preview", doc="4-series-conflict", scroll_to=page.locator(".page-head"))
        choice = conflict.get_by_role("radio").first
        picked = choice.locator("xpath=..").inner_text().strip()
        choice.check()
        page.get_by_role("button", name="Book all 4 visits").click()
        page.wait_for_url(re.compile(r"/staff/plans/\d+$"))
        assert page.get_by_text("Booked 4 visits for Ines Duarte", exact=False).is_visible()
        visits = page.locator("section[aria-labelledby=plan-visits-title] tbody tr").all_inner_texts()
        assert len(visits) == 4 and picked in visits[1], (picked, visits)
        step(desk, "plan")
        page.get_by_role("link", name="Ines Duarte").first.click()
        page.wait_for_url(re.compile(r"/staff/patients/\d+$"))
        plans = page.locator("section[aria-labelledby=plans-title]")
        assert re.search(r"4 × Follow-up \(30 min\) from \w{3} \d+ \w{3}:\s+0 done, 4 left", plans.inner_text())
        step(desk, "patient-plan", doc="4-plan", scroll_to=page.get_by_role("heading", name="Treatment plans"))

        # 5. Zack Moreau phones at 09:00 for his 14:00: a late cancellation, offered to Cleo Martin.
        page.goto(live_server.url + "/staff/")
        live(desk)
        page.locator("a.appt-link", has_text="Zack Moreau").click()
        page.wait_for_url(re.compile(r"/staff/appointments/\d+$"))
        page.get_by_label("Reason for cancelling").fill("Phoned: his car broke down")
        page.get_by_role("button", name="Cancel appointment").click()
        page.get_by_text("Cancelled. The time is free again.").wait_for()
        assert "(late)" in page.locator("section[aria-labelledby=visit-title]").inner_text()
        step(desk, "cancelled")
        page.get_by_role("link", name=re.compile(r"^Back to ")).click()
        live(desk)
        late = page.locator("section.cancelled-list")
        assert "Zack Moreau" in late.inner_text() and "Late cancellation" in late.inner_text()
        step(desk, "late-cancellation")
        page.get_by_role("link", name=re.compile("^Waitlist")).first.click()
        page.wait_for_url(re.compile(r"/staff/waitlist"))
        freed = page.locator("article", has=page.get_by_role("heading", name=re.compile(rf"^{short} .*14:00")))
        assert "Being offered" in freed.inner_text()
        assert re.search(rf"{WAITING}.*offered .*Offered until", freed.locator("ol.chain").inner_text(), re.S)
        step(desk, "offered", doc="5-offered", scroll_to=freed)

        assert send_due(live_server) > 0  # the worker sends what waits: the offer, the notices
        offer = text_sent_to(live_server, WAITING, "waitlist_offer")
        link = re.search(r"https?://\S+/w/\d+/\S+", offer).group(0)
        cleo = open_at_the_apps_time(visit, PHONE, "desk-day-cleo")
        cleo.page.goto(link)
        cleo.page.wait_for_url(re.compile(r"/book/details"))
        assert f"{day:%B} {day.day}, {day.year} at 2:00" in cleo.page.locator("main").inner_text()
        cleo.page.locator("#f-first_name").fill("Cleo")
        cleo.page.locator("#f-last_name").fill("Martin")
        for key in ("bladder_bowel", "saddle_numbness", "leg_weakness", "systemic"):
            cleo.page.locator(f"#f-rf_{key}-no").check()
        step(cleo, "offer-details", doc="5-offer-phone", scroll_to="top")
        cleo.page.get_by_role("button", name="Continue").click()
        cleo.page.wait_for_url(re.compile(r"/book/review"))
        step(cleo, "offer-review")
        cleo.page.get_by_role("button", name="Confirm booking").click()
        cleo.page.wait_for_url(re.compile(r"/book/confirmed"))
        step(cleo, "offer-booked")

        page.reload()
        freed = page.locator("article", has=page.get_by_role("heading", name=re.compile(rf"^{short} .*14:00")))
        assert "Booked from the waitlist" in freed.inner_text()
        assert re.search(rf"{WAITING}.*Booked", freed.locator("ol.chain").inner_text(), re.S)
        assert freed.get_by_role("link", name=WAITING).count() >= 1
        step(desk, "waitlist-booked", doc="5-booked", scroll_to=freed)

        # 6. A second desk books a walk-in; the first desk's board shows it without a reload.
        page.goto(live_server.url + "/staff/")
        live(desk)
        assert visit_on_board(page, WAITING).count() == 1  # Cleo in Zack's time
        page.evaluate("window.__sameDocument = true")
        other = open_at_the_apps_time(visit, DESKTOP, "desk-day-second-desk")
        sign_in(other)
        live(other)
        other.page.get_by_role("link", name="Book 11:00 with Maya Chen").click()
        other.page.wait_for_url(re.compile(r"/staff/book\?"))
        other.page.get_by_label("First name").fill("Noor")
        other.page.get_by_label("Last name").fill("Castillo")
        other.page.get_by_label("Mobile phone").fill("416 555 0188")
        other.page.get_by_label(re.compile("Don.t send a confirmation")).check()
        step(other, "walk-in-form")
        other.page.get_by_role("button", name="Book appointment").click()
        other.page.get_by_text("Booked Noor Castillo", exact=False).wait_for()
        step(other, "walk-in-booked")

        visit_on_board(page, "Noor Castillo").wait_for(timeout=UPDATE_WITHIN_MS)
        assert page.evaluate("window.__sameDocument") is True
        # "Live · updated 08:51:07": the location's time, like every time on the page (the
        # browser's own zone is Vancouver's).
        stamp = re.search(r"updated (\d\d):(\d\d):(\d\d)$", page.locator("[data-live-status]").inner_text())
        assert stamp, page.locator("[data-live-status]").inner_text()
        said = datetime.combine(day, time(*map(int, stamp.groups())), zone)
        assert abs((datetime.now(zone) - said).total_seconds()) < 120
        step(desk, "board-live", doc="6-live", scroll_to=page.locator(".board-bar"))
