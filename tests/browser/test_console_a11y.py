"""The staff console in Chromium: axe-core on every console page, and the desk's main path with
the keyboard only.

The pages are not listed by hand: every GET route of the console blueprint is visited, its ids
filled from the demo clinic (``appointment_id`` from the ``appointments`` table, and so on for any
``<name>_id``), so a new page is checked the day it is added. A route whose id has no table to
sample from fails the test with the name to add; a route that answers something other than HTML
(the audit trail's CSV) is named in the output and must not be HTML; nothing is skipped silently.
The sign-in pages (password, then the two-step code) are checked signed out, through a real
sign-in of an admin with two-step sign-in on.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pyotp
import pytest
import time_machine
from flask import url_for
from sqlalchemy import select, text

from booking_service.clinic.models import Location, Service
from booking_service.db import utcnow
from booking_service.models import Base
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.scheduling.queries import staff_slots
from booking_service.staff.models import User
from booking_service.staff.operations import confirm_totp, create_user, start_totp
from booking_service.usecases.booking import BookingRequest, book
from tests.browser.conftest import DESKTOP, PHONE

pytestmark = pytest.mark.browser

ADMIN = ("admin@demo.clinic", "demo-admin-2026")
DESK = ("frontdesk@demo.clinic", "demo-desk-2026")
# Shown only signed out; checked through a real sign-in below.
SIGNED_OUT = {"console.login", "console.login_code"}
# The guided setup's steps: on the demo (a clinic already set up) each sends the admin back to
# the setup's summary (302). tests/browser/test_first_run.py runs axe on them on an empty clinic.
# The day board alone, polled by the day page: the page that includes it is checked; the fragment
# is fetched (with its location) for its status only.
FRAGMENTS = {"console.day_fragment"}
SETUP_STEPS = {f"console.first_run_{step}" for step in ("clinic", "location", "practitioner", "service")}
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def sign_in(v, email: str, password: str) -> None:
    v.goto("/staff/login")
    v.page.fill("#email", email)
    v.page.fill("#password", password)
    v.page.get_by_role("button", name=re.compile("Log in|Sign in", re.I)).click()
    v.page.wait_for_load_state()


def serious_violations(page) -> list[dict]:
    found = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')),
            }));
        }""",
        AXE_TAGS,
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


def _sample_ids(database) -> dict[str, int]:
    """A sample id for every ``<name>_id`` a route may take: the demo row of the table
    ``<name>s`` (or ``…_<name>s``) with the most to show."""
    preferred = {
        # An appointment still ahead (its page shows every action and the reschedule times).
        "appointments": "SELECT id FROM appointments WHERE status IN ('booked', 'confirmed') ORDER BY id",
        # A patient with appointments and a program (the richest patient page).
        "patients": "SELECT patient_id FROM programs ORDER BY id",
        "users": "SELECT id FROM users WHERE role = 'frontdesk' ORDER BY id",
    }
    samples = {}
    with database.unit_of_work() as s:
        for table in Base.metadata.sorted_tables:
            if "id" not in table.c:
                continue
            query = preferred.get(table.name, f"SELECT id FROM {table.name} ORDER BY id")
            found = s.execute(text(query)).scalar()
            if found is not None:
                samples[table.name] = found
    return samples


# Where an id's table is not simply the plural of its name (or is ambiguous).
ARG_TABLES = {"message_id": "inbound_messages", "entry_id": "waitlist_entries"}


def _id_for(argument: str, samples: dict[str, int]) -> int | None:
    if argument in ARG_TABLES:
        return samples.get(ARG_TABLES[argument])
    name = argument.removesuffix("_id")
    plurals = {f"{name}s", f"{name[:-1]}ies" if name.endswith("y") else f"{name}s"}
    for table in sorted(samples, key=lambda t: t not in plurals):  # an exact name first
        if table in plurals or any(table.endswith(f"_{plural}") for plural in plurals):
            return samples[table]
    return None


def console_get_routes(app) -> list:
    return sorted(
        (r for r in app.url_map.iter_rules() if r.endpoint.startswith("console.") and "GET" in r.methods),
        key=lambda r: r.rule,
    )


def console_urls(live_server) -> list[tuple[str, str]]:
    """(endpoint, path) of every console GET route shown signed in, ids from the demo data."""
    samples = _sample_ids(live_server.database)
    urls, missing = [], []
    with live_server.app.test_request_context():
        for rule in console_get_routes(live_server.app):
            if rule.endpoint in SIGNED_OUT:
                continue
            values = {}
            for argument in sorted(rule.arguments):
                sample = _id_for(argument, samples)
                if sample is None:
                    missing.append(f"{rule.rule}: no demo row for {argument}")
                values[argument] = sample
            if rule.endpoint in FRAGMENTS:
                values["location_id"] = samples.get("locations")
            if not any(v is None for v in values.values()):
                urls.append((rule.endpoint, url_for(rule.endpoint, **values)))
    assert not missing, "console pages that cannot be visited:\n" + "\n".join(missing)
    return urls


def _content_types(live_server, paths: list[str]) -> dict[str, tuple[int, str]]:
    """{path: (status, mimetype)} for the admin, without reading a body (a stream stays unread)."""
    client = live_server.app.test_client()
    login_page = client.get("/staff/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login_page)
    data = {"email": ADMIN[0], "password": ADMIN[1], **({"csrf_token": token.group(1)} if token else {})}
    assert client.post("/staff/login", data=data).status_code == 302
    found = {}
    for path in paths:
        response = client.get(path)
        found[path] = (response.status_code, response.mimetype)
        response.close()
    return found


def test_every_console_page_has_no_serious_accessibility_violation(visit, live_server):
    urls = console_urls(live_server)
    with live_server.database.unit_of_work() as s:
        first = s.scalars(select(Appointment).order_by(Appointment.start_at)).first()
        tz = first.location.timezone
        day = first.start_at.astimezone(ZoneInfo(tz)).date().isoformat()
    # Variants with more on the page than the bare address shows.
    urls += [
        ("console.day (a day with appointments)", f"/staff/?date={day}"),
        ("console.day (cancelled shown)", f"/staff/?date={day}&cancelled=1"),
        ("console.week (a week with appointments)", f"/staff/week?date={day}"),
        ("console.patients (a search)", "/staff/patients?q=a"),
        ("console error page (404)", "/staff/appointments/999999"),
    ]
    kinds = _content_types(live_server, [path for _, path in urls])
    not_html = {path: kind for path, kind in kinds.items() if kind[1] != "text/html"}
    print("\nconsole GET routes that are not pages (no axe):", not_html or "none")
    answers = {path: kinds[path][0] for _, path in urls}
    expected = {path: 404 if "(404)" in name else 302 if name in SETUP_STEPS else 200 for name, path in urls}
    pages = [
        (name, path) for name, path in urls if path not in not_html and expected[path] != 302 and name not in FRAGMENTS
    ]
    assert answers == expected, {path: status for path, status in answers.items() if status != expected[path]}
    assert len(pages) >= 25, pages

    problems = []
    for viewport, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
        v = visit(viewport, name=f"console-a11y-{label}")
        sign_in(v, *ADMIN)
        for name, path in pages:
            response = v.goto(path)
            if response.status != expected[path]:
                problems.append(f"{label} {name} {path}: HTTP {response.status}")
                continue
            for violation in serious_violations(v.page):
                problems.append(f"{label} {name} {path}: {violation}")
        problems += [f"{label}: {p}" for p in v.problems]
    assert not problems, "\n".join(problems)


def test_the_sign_in_pages_have_no_serious_accessibility_violation(visit, live_server):
    email, password = "totp-admin@demo.clinic", "two-step-admin-2026"
    with live_server.database.unit_of_work() as s:
        if s.scalars(select(User).where(User.email == email)).first() is None:
            user, _ = create_user(s, email, role="admin", password=password, name="Two Step")
            secret = start_totp(s, user)
            confirm_totp(s, user, pyotp.TOTP(secret).now(), now=utcnow())
    v = visit(DESKTOP)
    v.goto("/staff/login")
    v.check("login")
    v.page.fill("#email", email)
    v.page.fill("#password", "not the password")
    v.page.get_by_role("button", name=re.compile("Log in|Sign in", re.I)).click()
    v.check("login-failed")
    v.page.fill("#email", email)
    v.page.fill("#password", password)
    v.page.get_by_role("button", name=re.compile("Log in|Sign in", re.I)).click()
    v.page.wait_for_url(re.compile(r"/staff/login/code"))
    v.check("login-code")


# --- the keyboard only -------------------------------------------------------------------------------


def tab_to(page, selector: str, limit: int = 200) -> None:
    """Press Tab until ``selector`` has the focus, and check the focus is visible there."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            outline = page.evaluate(
                """() => { const s = getComputedStyle(document.activeElement);
                   return [s.outlineStyle, s.boxShadow].join(' '); }"""
            )
            assert outline.strip() not in ("", "none none"), f"no visible focus on {selector}"
            return
    raise AssertionError(f"Tab never reached {selector} on {page.url}")


def _next_weekday_morning(tz: ZoneInfo) -> datetime:
    day = datetime.now(tz).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, time(9, 50), tz)


def test_the_desk_runs_day_view_to_check_in_with_the_keyboard_only(visit, live_server):
    """Sign in, open the day, reach an appointment, open it and check the patient in: Tab,
    Enter and typing only. The clock is moved to a weekday morning (the app's clock: the
    browser keeps its own) so the visit is today and check-in is open."""
    with live_server.database.unit_of_work() as s:
        location = s.scalars(select(Location).order_by(Location.id)).first()
        tz = ZoneInfo(location.timezone)
        service = s.scalars(select(Service).order_by(Service.id)).first()
        location_id, service_id = location.id, service.id
    morning = _next_weekday_morning(tz)
    with time_machine.travel(morning, tick=True):
        with live_server.database.unit_of_work() as s:
            now = utcnow()
            slot = next(
                slot
                for slot in staff_slots(
                    s,
                    service_id=service_id,
                    location_id=location_id,
                    practitioner_id=None,
                    first_day=morning.date(),
                    days=1,
                    now=now,
                )
                if slot.start >= now
            )
            walk_in = book(
                s,
                BookingRequest(
                    service_id=service_id,
                    location_id=location_id,
                    practitioner_id=slot.practitioner_id,
                    start=slot.start,
                    patient=PatientDetails(first_name="Kiran", last_name="Keyboard", phone="416 555 0166"),
                    source="staff",
                ),
                secret_key=live_server.secret,
                now=now,
                confirm=False,
            ).appointment.id

        v = visit(DESKTOP)
        page = v.page
        v.goto("/staff/login")
        tab_to(page, "#email")
        page.keyboard.type(DESK[0])
        tab_to(page, "#password")
        page.keyboard.type(DESK[1])
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/staff/$"))
        # The skip link comes first and lands on the main content.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.classList.contains('skip-link')")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        tab_to(page, f'a[href="/staff/appointments/{walk_in}"]')
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(rf"/staff/appointments/{walk_in}$"))
        v.check("appointment", shot=False)
        tab_to(page, 'button[name="status"][value="checked_in"]')
        page.keyboard.press("Enter")
        page.wait_for_load_state()
        assert urlsplit(page.url).path == f"/staff/appointments/{walk_in}"
        assert "Checked in." in page.inner_text("main")
        v.check("checked-in", shot=False)
    with live_server.database.unit_of_work() as s:
        assert s.get(Appointment, walk_in).status == "checked_in"
