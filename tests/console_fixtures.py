"""Fixtures and helpers shared by the staff console's tests (``test_console.py``,
``test_console_settings.py``).

Time is frozen at Monday 2026-11-23 08:00 in Toronto (13:00 UTC) by ``frozen``. The clinic of
``make_clinic`` has two physiotherapists, Maya Chen and Daniel Okafor, working 09:00-17:00;
``users`` adds a front-desk login, an admin login and a practitioner login for Maya. Test modules
load them with ``pytest_plugins = ["tests.console_fixtures"]`` and import the helpers. The
module is imported before pytest loads it as a plugin, too late for assertion rewriting:
PYTEST_DONT_REWRITE (its few asserts are plain ones).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from booking_service.clinic.models import Practitioner
from booking_service.patients.operations import PatientDetails
from booking_service.scheduling.models import Appointment
from booking_service.staff.operations import create_user
from booking_service.usecases.booking import BookingRequest, book
from tests.conftest import SECRET, local

PASSWORD = "correct-horse-battery"
TUESDAY_10 = local("2026-11-24", "10:00")  # 15:00 UTC


# --- fixtures -------------------------------------------------------------------------------------


def _create_app(db_url, **config):
    from booking_service import create_app

    return create_app(
        {
            "DATABASE_URL": db_url,
            "SECRET_KEY": SECRET,
            "TESTING": True,
            "RATELIMIT_ENABLED": False,
            "PUBLIC_BASE_URL": "http://testserver.local",
            # /metrics on, so the role matrix sees it refuse every role (it answers only the token).
            "METRICS_TOKEN": "metrics-token-for-tests",
            **config,
        }
    )


@pytest.fixture
def console_app(db_url, database, clinic):
    """The app with CSRF checks off, for the tests of what actions do."""
    app = _create_app(db_url, WTF_CSRF_ENABLED=False)
    yield app
    app.extensions["database"].dispose()


@pytest.fixture
def users(database, clinic):
    """A front-desk login, an admin login and a practitioner login for Maya Chen (practitioner 0)."""
    with database.unit_of_work() as s:
        create_user(s, "desk@example.com", role="frontdesk", password=PASSWORD, name="Dana Desk")
        create_user(s, "admin@example.com", role="admin", password=PASSWORD, name="Ada Admin")
        physio, _ = create_user(s, "maya@example.com", role="practitioner", password=PASSWORD, name="Maya Chen")
        s.get(Practitioner, clinic.practitioner_ids[0]).user_id = physio.id


def login(client, email="desk@example.com", password=PASSWORD, **extra):
    return client.post("/staff/login", data={"email": email, "password": password, **extra})


@pytest.fixture
def desk(console_app, users):
    client = console_app.test_client()
    assert login(client).status_code == 302
    return client


@pytest.fixture
def admin(console_app, users):
    client = console_app.test_client()
    assert login(client, "admin@example.com").status_code == 302
    return client


@pytest.fixture
def physio(console_app, users):
    client = console_app.test_client()
    assert login(client, "maya@example.com").status_code == 302
    return client


@pytest.fixture
def booked(database, clinic):
    """``booked(start, practitioner=0, **patient)``: an online booking made now; returns its id."""

    def make(start=TUESDAY_10, *, practitioner=0, red_flags=None, service=None, **patient):
        details = {
            "first_name": "Ana",
            "last_name": "Silva",
            "email": "ana@example.com",
            "phone": "+14165550142",
            "sms_consent": True,
            "email_consent": True,
            **patient,
        }
        with database.unit_of_work() as s:
            result = book(
                s,
                BookingRequest(
                    service_id=service or clinic.initial_id,
                    location_id=clinic.location_id,
                    practitioner_id=clinic.practitioner_ids[practitioner],
                    start=start,
                    patient=PatientDetails(**details),
                    red_flags=red_flags or {},
                ),
                secret_key=SECRET,
                now=datetime.now(UTC),
            )
            return result.appointment.id

    return make


def appointment(database, appointment_id) -> Appointment:
    with database.unit_of_work() as s:
        return s.get(Appointment, appointment_id)


def text(response) -> str:
    return response.get_data(as_text=True)


def flashed(client) -> str:
    """The text of the page the last action redirected to (its flash messages included)."""
    return text(client.get("/staff/"))
