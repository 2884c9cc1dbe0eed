"""The live day view in Chromium: two desks look at the same day; one books, the other's board
shows it within seconds, without a reload and with its keyboard focus where it was; a board being
pressed waits for the press to end. Every page is checked with axe-core (no CSP violation either:
the script is the site's own file) and photographed; the doc shots go to docs/screenshots/."""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from booking_service.clinic.models import Location, Service
from booking_service.clinic.queries import get_clinic
from booking_service.db import utcnow
from booking_service.demo import DEMO_LOGINS
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling import slots
from booking_service.usecases.booking import BookingRequest, book

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1366, "height": 900}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
UPDATE_WITHIN_MS = 15_000  # polls every 4 s: a few seconds, with room for a loaded machine


def desk_login() -> tuple[str, str]:
    email, _role, password = next(login for login in DEMO_LOGINS if login[1] == "frontdesk")
    return email, password


def a_working_day(live_server) -> date:
    """The second weekday ahead in Toronto: the demo's practitioners all work then and every
    free row is still to come. Not the first: the keyboard test of test_console_a11y books that
    one, on the same live server, and would leave the first free gap too short."""
    with live_server.database.unit_of_work() as s:
        downtown = s.scalars(select(Location).order_by(Location.id)).first()
        day = slots.local_date(utcnow(), downtown)
    for _ in range(2):
        day += timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
    return day


def book_on(
    live_server, day: date, first: str, last: str, *, service_kind: str = "follow_up", pick: int = 0, **extra
) -> None:
    """Book the patient into a free time of ``day`` at Downtown as the API would (``pick``: which
    of the free times, counted from the end when negative)."""
    with live_server.database.unit_of_work() as s:
        downtown = s.scalars(select(Location).order_by(Location.id)).first()
        service = s.scalars(select(Service).where(Service.kind == service_kind).order_by(Service.id)).first()
        free = slots.find_slots(
            s,
            clinic=get_clinic(s),
            service=service,
            location=downtown,
            practitioners=[p for p in service.practitioners if downtown in p.locations],
            first_day=day,
            last_day=day,
            now=utcnow(),
        )
        slot = free[pick % len(free)]
        book(
            s,
            BookingRequest(
                service_id=service.id,
                location_id=downtown.id,
                practitioner_id=slot.practitioner_id,
                start=slot.start,
                source="api",
                patient=PatientDetails(first_name=first, last_name=last, email=f"{first}.{last}@example.com".lower()),
                **extra,
            ),
            secret_key=live_server.secret,
            now=utcnow(),
        )


def a_busy_day(live_server) -> date:
    """A working day with a dozen visits of both kinds, one with a red-flag answer."""
    day = a_working_day(live_server)
    names = (
        "Ines Duarte",
        "Omar Haddad",
        "Priya Nair",
        "Tomas Novak",
        "Wen Li",
        "Yara Saleh",
        "Zack Moreau",
        "Ada Kowalski",
        "Ben Okoro",
        "Cleo Martin",
        "Dev Sharma",
    )
    for n, name in enumerate(names):
        kind = "initial" if n % 3 == 0 else "follow_up"
        flags = {"leg_weakness": True} if n == 4 else {}
        book_on(live_server, day, *name.split(), service_kind=kind, pick=n * 7, red_flags=flags)
    return day


def sign_in(v) -> None:
    email, password = desk_login()
    v.goto("/staff/login")
    v.page.get_by_label("Email").fill(email)
    v.page.get_by_label("Password").fill(password)
    v.page.get_by_role("button", name="Log in").click()
    v.page.wait_for_url(re.compile(r"/staff/"))


def open_day(v, day: date) -> None:
    v.goto(f"/staff/?date={day.isoformat()}")
    v.page.locator("[data-live-status]").get_by_text("Live").wait_for()


def keep_doc_shot(name: str) -> None:
    """Copy a doc shot from test-artifacts into docs/screenshots/ (what the docs show)."""
    source = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots" / "docs" / name
    DOCS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, DOCS / name)


def test_a_booking_at_one_desk_shows_on_the_other_desks_board_without_a_reload(visit, live_server):
    day = a_busy_day(live_server)
    desk_a = visit(DESKTOP, name="live-desk-a")
    desk_b = visit(DESKTOP, name="live-desk-b")
    sign_in(desk_a)
    sign_in(desk_b)

    open_day(desk_b, day)
    page_b = desk_b.page
    page_b.evaluate("window.__sameDocument = true")
    desk_b.check("before", doc="staff-day.png")
    # Desk B is working the board with the keyboard: the focus is on the last free time.
    last_free = page_b.locator("a.free-link").last
    last_free.focus()
    focused = last_free.get_attribute("id")

    # Desk A books a caller into the first free time of the first column.
    open_day(desk_a, day)
    page_a = desk_a.page
    page_a.locator("a.free-link").first.click()
    page_a.wait_for_url(re.compile(r"/staff/book\?"))
    if page_a.locator("input[name=start]:checked").count() == 0:  # not a free time for the service
        page_a.get_by_label("Reason, if outside the free times").fill("Only time the caller has")
    name = "Noor Castillo"
    page_a.get_by_label("First name").fill("Noor")
    page_a.get_by_label("Last name").fill("Castillo")
    page_a.get_by_label("Mobile phone").fill("416 555 0188")
    page_a.get_by_role("button", name="Book appointment").click()
    page_a.get_by_text(f"Booked {name}").wait_for()
    desk_a.check("booked")

    # Desk B's board shows it within seconds: same document, focus where it was.
    page_b.get_by_text(name).wait_for(timeout=UPDATE_WITHIN_MS)
    assert page_b.evaluate("window.__sameDocument") is True
    assert page_b.evaluate("document.activeElement && document.activeElement.id") == focused
    assert "updated" in page_b.locator("[data-live-status]").inner_text()
    page_b.locator(f"text={name}").scroll_into_view_if_needed()
    desk_b.check("after", doc="staff-day-live.png")
    keep_doc_shot("staff-day.png")
    keep_doc_shot("staff-day-live.png")


def test_a_board_being_pressed_waits_for_the_press_to_end(visit, live_server):
    day = a_working_day(live_server)
    desk = visit(DESKTOP, name="live-press")
    sign_in(desk)
    open_day(desk, day)
    page = desk.page
    legend = page.locator(".legend").first
    box = legend.bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.mouse.down()  # a click under way on the board: no swap under the pointer

    name = "Hugo Lambert"
    book_on(live_server, day, "Hugo", "Lambert")

    status = page.locator("[data-live-status]")
    status.get_by_text("Changes waiting").wait_for(timeout=UPDATE_WITHIN_MS)
    assert page.get_by_text(name).count() == 0
    page.mouse.up()
    page.get_by_text(name).wait_for(timeout=5_000)
    desk.check("released")
