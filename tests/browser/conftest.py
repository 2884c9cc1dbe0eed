"""Browser tests: the app in a real HTTP server thread, driven by Debian's Chromium.

- The server is werkzeug's, on 127.0.0.1 and a free port, over a temporary SQLite database
  migrated with Alembic and loaded with the demo clinic (real time: the demo books around now);
  ``empty_server`` is the same over an empty database (a first run).
- Chromium is /usr/bin/chromium (``apt-get install chromium``); Playwright's own browser
  downloads are never used. A missing Chromium or axe-core FAILS the tests (CI treats skips as
  failures anyway): the message says how to install them.
- axe-core (tests/browser/node_modules, from package.json) is added to every page as an init
  script, which does not need the page's Content-Security-Policy to allow it; any CSP violation
  a page reports fails the test, so the policy is tested too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from werkzeug.serving import make_server

from booking_service import create_app, migrate
from booking_service.db import Database, utcnow
from booking_service.demo import DEMO_LOGINS, seed

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
SECRET = "browser-test-secret"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@contextlib.contextmanager
def serve(url: str, folder: Path) -> Iterator[SimpleNamespace]:
    """The app over the database at ``url``, in a werkzeug server thread on a free port."""
    database = Database(url)
    # Bind first, so the app knows its own address (PUBLIC_BASE_URL goes into manage links).
    holder: dict = {}
    server = make_server(
        "127.0.0.1", 0, lambda environ, start_response: holder["app"](environ, start_response), threaded=True
    )
    base = f"http://127.0.0.1:{server.server_port}"
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": SECRET,
            "PUBLIC_BASE_URL": base,
            "RATELIMIT_ENABLED": False,
            "INSTANCE_DIR": str(folder),
        }
    )
    holder["app"] = app
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=base, app=app, database=database, secret=SECRET)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        app.extensions["database"].dispose()
        database.dispose()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'clinic.db'}"
    migrate.upgrade(url)
    seeding = Database(url)
    with seeding.unit_of_work() as session:
        seed(session, secret_key=SECRET, now=utcnow())
    seeding.dispose()
    with serve(url, folder) as server:
        yield server


@pytest.fixture
def empty_server(tmp_path) -> Iterator[SimpleNamespace]:
    """The app over a new, migrated, empty database: no clinic, no staff (a first run)."""
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    migrate.upgrade(url)
    with serve(url, tmp_path) as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: install it with `apt-get update && apt-get install -y chromium` "
            "(Debian's browser, not one downloaded by Playwright).",
            pytrace=False,
        )
    if not AXE.exists():
        pytest.fail(f"axe-core is missing at {AXE}: run `npm ci` (or `npm install`) in tests/browser.", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Visit:
    """One browser context (a visitor) and helpers for the checks every page gets."""

    def __init__(self, browser, live_server, name: str, viewport: dict, **context_options):
        self.server = live_server
        self.name = name
        self.context = browser.new_context(viewport=viewport, **context_options)
        if context_options.get("java_script_enabled", True):
            self.context.add_init_script(path=str(AXE))
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.urls: list[str] = []
        self.shots = 0
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("request", lambda request: self.urls.append(request.url))
        self.page.on("response", self._response)

    def _console(self, message) -> None:
        text = message.text
        # Chromium logs every 4xx page as "Failed to load resource"; pages answering 409 or 422
        # are expected, and failed assets are caught by _response instead.
        if text.startswith("Failed to load resource"):
            return
        if message.type == "error" or "Content Security Policy" in text:
            self.problems.append(f"console {message.type}: {text} at {message.location} on {self.page.url}")

    def _response(self, response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            self.problems.append(f"{response.status} for {response.request.resource_type} {response.url}")

    def goto(self, path: str):
        response = self.page.goto(self.server.url + path)
        assert response is not None
        return response

    def shot(self, step: str, *, doc: str | None = None) -> Path:
        """A screenshot of the whole page under test-artifacts/screenshots/; with ``doc``, also
        the first screen alone under test-artifacts/screenshots/docs/ (what docs/screenshots/
        holds a copy of)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        path = SCREENSHOTS / f"{self.name}-{self.shots:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        if doc:
            (SCREENSHOTS / "docs").mkdir(exist_ok=True)
            self.page.screenshot(path=str(SCREENSHOTS / "docs" / doc), full_page=False)
        return path

    def check(self, step: str, *, shot: bool = True, doc: str | None = None) -> None:
        """axe-core finds no serious or critical violation; no script or CSP error so far."""
        if shot:
            self.shot(step, doc=doc)
        violations = self.page.evaluate(
            """async () => {
                const result = await axe.run(document, {
                    runOnly: {type: 'tag', values: [
                        'wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']},
                });
                return result.violations.map(v => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')),
                }));
            }"""
        )
        serious = [v for v in violations if v["impact"] in ("serious", "critical")]
        assert not serious, f"{self.name} / {step}: axe found\n" + json.dumps(serious, indent=2)
        assert not self.problems, f"{self.name} / {step}: " + "\n".join(self.problems)

    def close(self) -> None:
        self.context.close()


def sign_in(v) -> None:
    """Sign ``v`` in to the console as the demo's front desk."""
    email, _role, password = next(login for login in DEMO_LOGINS if login[1] == "frontdesk")
    v.goto("/staff/login")
    v.page.get_by_label("Email").fill(email)
    v.page.get_by_label("Password").fill(password)
    v.page.get_by_role("button", name="Log in").click()
    v.page.wait_for_url(re.compile(r"/staff/$"))


@pytest.fixture
def visit(browser, live_server, request):
    """``visit(viewport=PHONE, **context_options)``: a fresh visitor named after the test."""
    opened: list[Visit] = []

    def open_visit(viewport=PHONE, name: str | None = None, **options) -> Visit:
        options.setdefault("locale", "en-CA")
        options.setdefault("timezone_id", "America/Vancouver")  # not the clinic's: times must not follow it
        label = name or request.node.name.removeprefix("test_")
        v = Visit(browser, live_server, label, viewport, **options)
        opened.append(v)
        return v

    yield open_visit
    for v in opened:
        v.close()
