"""First run: an empty database, the start page that says so, the guided setup from the first
admin's account to a clinic patients can book with, its refusal once anyone holds a staff
login, and ``make run``'s choice between the setup page and the demo clinic.

The setup is driven as a browser would: forms with their CSRF token (the app's CSRF checks are
on), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select

from booking_service import migrate
from booking_service.audit.models import AuditEvent
from booking_service.clinic.models import ClinicSettings, Location, Practitioner, Service, WorkingHours
from booking_service.errors import NotFound
from booking_service.staff.models import User
from booking_service.staff.operations import create_user
from booking_service.usecases import first_run
from tests.console_fixtures import PASSWORD, text

pytest_plugins = ["tests.console_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
OWNER = {"name": "Olive Owner", "email": "owner@harbourphysio.example", "password": "tide-pool-lantern"}
CLINIC = {
    "name": "Harbour Physio",
    "phone": "902 555 0100",
    "email": "hello@harbourphysio.example",
    "address": "1 Lower Water St, Halifax, NS",
    "country": "CA",
    "timezone": "America/Halifax",
    "languages": ["en", "fr"],
}
LOCATION = {"name": "Waterfront", "address": "1 Lower Water St, Halifax, NS", "timezone": "America/Halifax"}
PRACTITIONER = {"first_name": "Ann", "last_name": "Lee", "profession": "Physiotherapist", "bio": "Backs and hips."}
SERVICE = {"name": "Initial assessment", "kind": "initial", "duration_minutes": "60", "price": "95"}


def csrf(client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    return re.search(r'name="csrf_token" value="([^"]+)"', text(page)).group(1)


def post(client, path: str, data: dict):
    """POST a form the way the page does: with the CSRF token of the page just loaded."""
    return client.post(path, data={**data, "csrf_token": csrf(client, path)})


def hours(start="09:00", end="17:00", days=range(5)) -> dict:
    grid = {f"rows.{day}.weekday": str(day) for day in range(7)}
    for day in days:
        grid[f"rows.{day}.start"] = start
        grid[f"rows.{day}.end"] = end
    return grid


def field_error(page: str, name: str) -> str:
    """The words under a field, which the field names as its description."""
    found = re.search(rf'<p class="field-error" id="{re.escape(name)}-error">([^<]+)</p>', page)
    assert found, f"no error shown for {name}"
    assert f'aria-describedby="{name}-error"' in page or f"{name}-error" in page
    return found.group(1)


def count(database, model) -> int:
    with database.unit_of_work() as s:
        return s.scalar(sql_select(func.count()).select_from(model))


@pytest.fixture
def owner(client):
    """The first admin, made through /setup and signed in (the client keeps the session)."""
    answer = post(client, "/setup", {**OWNER, "password_again": OWNER["password"]})
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith("/staff/first-run")
    return client


def set_up_the_clinic(client) -> None:
    for path, data in (
        ("/staff/first-run/clinic", CLINIC),
        ("/staff/first-run/location", LOCATION),
        ("/staff/first-run/practitioner", {**PRACTITIONER, **hours()}),
        ("/staff/first-run/service", SERVICE),
    ):
        answer = post(client, path, data)
        assert answer.status_code == 302, (path, text(answer))


# --- the empty database's start page ------------------------------------------------------------------


def test_the_start_page_of_an_empty_database_offers_the_setup_and_the_demo_not_an_error(client):
    page = client.get("/")
    assert page.status_code == 200
    body = text(page)
    assert "This clinic is not set up yet" in body
    assert 'href="/setup"' in body
    assert "make run DEMO=1" in body and "seed-demo" in body


def test_while_the_setup_is_under_way_the_start_page_says_booking_opens_soon_without_the_setup_link(client, database):
    with database.unit_of_work() as s:
        create_user(s, "owner@example.com", role="admin", password=PASSWORD)
    body = text(client.get("/"))
    assert "This clinic is not set up yet" in body
    assert 'href="/setup"' not in body
    assert "Online booking will open here soon" in body


def test_a_clinic_with_nothing_bookable_yet_says_booking_is_not_open_and_gives_its_phone(client, owner):
    post(owner, "/staff/first-run/clinic", CLINIC)
    body = text(client.get("/"))
    assert "Online booking is not open yet" in body
    assert "tel:+19025550100" in body


# --- the first admin's account ------------------------------------------------------------------------------


def test_setup_creates_the_first_admin_signs_them_in_and_goes_on_to_the_clinic(client, database):
    answer = post(client, "/setup", {**OWNER, "password_again": OWNER["password"]})
    assert answer.status_code == 302
    assert client.get("/staff/first-run").headers["Location"].endswith("/staff/first-run/clinic")
    page = client.get("/staff/first-run/clinic")
    assert page.status_code == 200 and "The clinic" in text(page)
    assert "Olive Owner" in text(page)  # signed in: the console shows who
    with database.unit_of_work() as s:
        user = s.scalars(sql_select(User)).one()
        assert (user.email, user.role, user.name) == (OWNER["email"], "admin", "Olive Owner")
        created = s.scalars(sql_select(AuditEvent).where(AuditEvent.action == "user.create")).one()
        assert created.actor_kind == "public"  # nobody was signed in: an address, not a login


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"email": "not-an-address"}, "email", "This email address does not look right"),
        ({"password": "short", "password_again": "short"}, "password", "at least 10 characters"),
        ({"password_again": "something-else"}, "password_again", "The two passwords are not the same"),
    ],
)
def test_a_refused_account_says_what_to_fix_keeps_the_email_and_creates_nobody(client, database, change, field, words):
    answer = post(client, "/setup", {**OWNER, "password_again": OWNER["password"], **change})
    assert answer.status_code == 422
    body = text(answer)
    assert words in field_error(body, field)
    assert "Nothing was saved" in body
    assert f'value="{change.get("email", OWNER["email"])}"' in body
    assert OWNER["password"] not in body  # passwords are never sent back
    assert count(database, User) == 0


def test_the_account_form_without_its_csrf_token_is_refused(client, database):
    answer = client.post("/setup", data={**OWNER, "password_again": OWNER["password"]})
    assert answer.status_code == 400
    assert count(database, User) == 0


def test_setup_answers_404_once_anybody_holds_a_staff_login(client, database):
    with database.unit_of_work() as s:
        create_user(s, "desk@example.com", role="frontdesk", password=PASSWORD)
    assert client.get("/setup").status_code == 404
    answer = client.post("/setup", data={**OWNER, "password_again": OWNER["password"]})
    assert answer.status_code in (400, 404)  # no form to take a token from: refused either way
    assert count(database, User) == 1


def test_setup_answers_404_to_a_stranger_after_the_owner_made_their_account(client, owner, app, database):
    stranger = app.test_client()
    assert stranger.get("/setup").status_code == 404
    assert "This clinic is not set up yet" in text(stranger.get("/"))
    assert 'href="/setup"' not in text(stranger.get("/"))
    # The later steps are the console's: a stranger is sent to sign in, a colleague refused.
    assert "/staff/login" in stranger.get("/staff/first-run/clinic").headers["Location"]
    with database.unit_of_work() as s:
        create_user(s, "desk@example.com", role="frontdesk", password=PASSWORD)
    colleague = app.test_client()
    token = csrf(colleague, "/staff/login")
    assert colleague.post("/staff/login", data={"email": "desk@example.com", "password": PASSWORD, "csrf_token": token})
    assert colleague.get("/staff/first-run/clinic").status_code == 403
    assert count(database, User) == 2


def test_setup_answers_404_on_a_database_that_holds_a_clinic_without_staff(client, make_clinic):
    make_clinic()  # loaded from a file, say: its staff are made with create-user
    assert client.get("/setup").status_code == 404


def test_two_first_admins_at_once_make_one_admin(database):
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt(email: str) -> None:
        barrier.wait()
        try:
            with database.unit_of_work() as s:
                first_run.create_first_admin(s, email, "tide-pool-lantern")
            outcomes.append("created")
        except NotFound:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(f"owner{n}@example.com",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["created", "refused"]
    assert count(database, User) == 1


# --- the four steps -----------------------------------------------------------------------------------------


def test_the_setup_ends_with_a_clinic_patients_can_book_with(frozen, owner, client, database):
    set_up_the_clinic(owner)
    done = owner.get("/staff/first-run")
    assert done.status_code == 200
    assert "Your clinic is ready" in text(done)
    assert "Patients can book Initial assessment with Ann Lee at Waterfront online now." in text(done)

    with database.unit_of_work() as s:
        clinic = s.get(ClinicSettings, 1)
        assert (clinic.name, clinic.phone, clinic.timezone, clinic.languages) == (
            "Harbour Physio",
            "+19025550100",
            "America/Halifax",
            ["en", "fr"],
        )
        location = s.scalars(sql_select(Location)).one()
        practitioner = s.scalars(sql_select(Practitioner)).one()
        service = s.scalars(sql_select(Service)).one()
        assert [loc.id for loc in practitioner.locations] == [location.id]
        assert [p.id for p in service.practitioners] == [practitioner.id]
        assert (service.duration_minutes, service.price_cents) == (60, 9500)
        rows = s.scalars(sql_select(WorkingHours).order_by(WorkingHours.weekday)).all()
        assert [(r.weekday, r.start_time.hour, r.end_time.hour, r.location_id) for r in rows] == [
            (day, 9, 17, location.id) for day in range(5)
        ]
        ids = (service.id, location.id)

    # The patient pages work: the service is offered, and Monday's times are there, in Halifax time.
    start = text(client.get("/"))
    assert "Initial assessment" in start and "Waterfront" in start
    times = client.get(f"/book/time?service_id={ids[0]}&location_id={ids[1]}")
    assert times.status_code == 200
    assert "Halifax" in text(times)
    assert 'name="start"' in text(times)
    # And the setup is closed for good.
    assert client.get("/setup").status_code == 404


def test_each_step_shows_what_to_fix_and_saves_nothing(owner, database):
    clinic = post(
        owner, "/staff/first-run/clinic", {**CLINIC, "name": "", "phone": "12", "timezone": "Halifax", "languages": []}
    )
    assert clinic.status_code == 422
    body = text(clinic)
    assert "Nothing was saved" in body
    assert field_error(body, "name")
    assert "phone number" in field_error(body, "phone")
    assert "time zone from the list" in field_error(body, "timezone")
    assert "language" in field_error(body, "languages")
    assert 'value="Halifax"' in body  # what was typed stays
    assert count(database, ClinicSettings) == 0

    post(owner, "/staff/first-run/clinic", CLINIC)
    location = post(owner, "/staff/first-run/location", {**LOCATION, "address": "", "timezone": "Mars/Olympus"})
    assert location.status_code == 422
    assert field_error(text(location), "address")
    assert field_error(text(location), "timezone")
    assert count(database, Location) == 0

    post(owner, "/staff/first-run/location", LOCATION)
    grid = {**hours(), "rows.0.start": "17:00", "rows.0.end": "09:00", "rows.1.end": "5pm"}
    unnamed = post(owner, "/staff/first-run/practitioner", {**PRACTITIONER, "last_name": "", **hours()})
    assert unnamed.status_code == 422
    assert field_error(text(unnamed), "last_name")
    practitioner = post(owner, "/staff/first-run/practitioner", {**PRACTITIONER, **grid})
    assert practitioner.status_code == 422
    body = text(practitioner)
    assert "after the start" in field_error(body, "rows.0.end")
    assert "HH:MM" in field_error(body, "rows.1.end")
    nobody_works = post(owner, "/staff/first-run/practitioner", {**PRACTITIONER, **hours(days=())})
    assert "at least one day" in text(nobody_works)
    assert count(database, Practitioner) == 0 and count(database, WorkingHours) == 0

    post(owner, "/staff/first-run/practitioner", {**PRACTITIONER, **hours()})
    service = post(owner, "/staff/first-run/service", {**SERVICE, "duration_minutes": "50", "price": "lots"})
    assert service.status_code == 422
    body = text(service)
    assert "steps of 15" in field_error(body, "duration_minutes")
    assert "95.50" in field_error(body, "price")
    assert count(database, Service) == 0


def test_a_finished_setup_sends_its_steps_to_the_summary(owner):
    set_up_the_clinic(owner)
    page = text(owner.get("/staff/first-run/service", follow_redirects=True))
    assert "Your clinic is ready" in page


def test_the_service_step_shows_the_warning_beside_the_name(owner):
    for path, data in (
        ("/staff/first-run/clinic", CLINIC),
        ("/staff/first-run/location", LOCATION),
        ("/staff/first-run/practitioner", {**PRACTITIONER, **hours()}),
    ):
        post(owner, path, data)
    page = text(owner.get("/staff/first-run/service"))
    assert "The name appears in texts and emails." in page
    assert "never a condition" in page
    assert 'aria-details="name-warning"' in page


def test_a_later_step_opened_too_early_sends_to_the_step_to_do(owner):
    answer = owner.get("/staff/first-run/service")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/staff/first-run/clinic")
    post(owner, "/staff/first-run/clinic", CLINIC)
    assert owner.get("/staff/first-run/practitioner").headers["Location"].endswith("/staff/first-run/location")


def test_the_setup_resumes_where_it_stopped_after_signing_in_again(owner, app):
    post(owner, "/staff/first-run/clinic", CLINIC)
    post(owner, "/staff/first-run/location", LOCATION)
    later = app.test_client()  # another browser: nothing of the setup rides in the cookie
    token = csrf(later, "/staff/login")
    later.post("/staff/login", data={"email": OWNER["email"], "password": OWNER["password"], "csrf_token": token})
    assert later.get("/staff/first-run").headers["Location"].endswith("/staff/first-run/practitioner")
    # An earlier step shows what was saved, and saving it again changes it, not adds one.
    page = text(later.get("/staff/first-run/location"))
    assert 'value="Waterfront"' in page
    assert post(later, "/staff/first-run/location", {**LOCATION, "name": "Harbourfront"}).status_code == 302
    assert 'value="Harbourfront"' in text(later.get("/staff/first-run/location"))


def test_going_back_to_the_practitioner_keeps_one_practitioner_and_replaces_the_hours(owner, database):
    for path, data in (
        ("/staff/first-run/clinic", CLINIC),
        ("/staff/first-run/location", LOCATION),
        ("/staff/first-run/practitioner", {**PRACTITIONER, **hours()}),
    ):
        post(owner, path, data)
    page = text(owner.get("/staff/first-run/practitioner"))
    assert 'value="Lee"' in page and 'name="rows.4.end" value="17:00"' in page
    again = post(owner, "/staff/first-run/practitioner", {**PRACTITIONER, **hours("08:00", "12:00", days=(0,))})
    assert again.status_code == 302
    with database.unit_of_work() as s:
        assert s.scalar(sql_select(func.count()).select_from(Practitioner)) == 1
        rows = s.scalars(sql_select(WorkingHours)).all()
        assert [(r.weekday, r.start_time.hour, r.end_time.hour) for r in rows] == [(0, 8, 12)]


# --- make run: the choice on an empty database --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(tmp_path, *args: str) -> tuple[subprocess.Popen, int]:
    """``python -m scripts.run_demo`` on a new, migrated SQLite database, stdin not a terminal."""
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    migrate.upgrade(url)
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "INSTANCE_DIR": str(tmp_path),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "PYTHONUNBUFFERED": "1",
        "SCHEDULER_POLL_SECONDS": "1",
    }
    env.pop("APP_ENV", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.run_demo", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return process, port


def _read_until(process: subprocess.Popen, marker: str, timeout: float = 90) -> str:
    """What the process printed up to the line with ``marker``. A thread reads the lines: a
    select() on the pipe misses lines already read into the file object's buffer."""
    seen: list[str] = []
    found = threading.Event()

    def pump() -> None:
        for line in process.stdout:
            seen.append(line)
            if marker in line:
                found.set()
                return

    threading.Thread(target=pump, daemon=True).start()
    if found.wait(timeout):
        return "".join(seen)
    raise AssertionError(f"{marker!r} not printed within {timeout} s:\n" + "".join(seen))


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    process.stdout.close()


def _get(port: int, path: str) -> tuple[int, str]:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.slow
def test_make_run_demo_0_prints_the_setup_address_and_offers_the_setup_page(tmp_path):
    process, port = _run(tmp_path, "--demo", "0")
    try:
        printed = _read_until(process, "Ctrl-C stops")
        assert f"http://127.0.0.1:{port}/setup" in printed
        assert "make run DEMO=1" in printed
        assert "Your choice" not in printed  # nobody was asked
        status, page = _get(port, "/setup")
        assert status == 200 and "Set up your clinic" in page
        assert "This clinic is not set up yet" in _get(port, "/")[1]
    finally:
        _stop(process)


@pytest.mark.slow
def test_make_run_without_a_terminal_never_waits_loads_the_demo_and_prints_its_logins(tmp_path):
    """The README's quick start: ``make run`` on a fresh machine, no terminal to ask, ends with
    the demo clinic, its address and its staff logins (and how to set up your own instead)."""
    process, port = _run(tmp_path)
    try:
        printed = _read_until(process, "Ctrl-C stops", timeout=180)
        assert "Your choice" not in printed  # nobody was asked
        assert "Demo clinic loaded" in printed
        assert "admin@demo.clinic / demo-admin-2026" in printed
        assert "make run DEMO=0" in printed
        assert _get(port, "/setup")[0] == 404
        assert "Initial assessment" in _get(port, "/")[1]
    finally:
        _stop(process)
