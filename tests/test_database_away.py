"""A request that meets a database that is away answers 503 with words, not a 500.

The database here is really away: a SQLite file in a folder that does not exist ("unable to
open"), or a PostgreSQL address where nothing listens (connection refused). Every surface says
nothing was saved and when to try again; ``/readyz`` says the same to a load balancer. The
stack-level outage (a TCP proxy cutting a live PostgreSQL) is in ``tests/test_faults.py``.
"""

from __future__ import annotations

import socket

import pytest

from booking_service import create_app
from booking_service.db import RETRY_AFTER_SECONDS
from tests.conftest import SECRET


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # free once closed: nothing listens there


@pytest.fixture(params=["sqlite", "postgresql"])
def away(request, tmp_path):
    """The app on a database that cannot be reached."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/no-such-folder/clinic.db"
    else:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/clinic"
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": SECRET,
            "PROPAGATE_EXCEPTIONS": False,  # as in production: an error becomes an answer
            "RATELIMIT_ENABLED": False,
            "WTF_CSRF_ENABLED": False,
            "PUBLIC_BASE_URL": "http://testserver.local",
        }
    )
    yield app.test_client()
    app.extensions["database"].dispose()


def test_the_api_answers_503_service_unavailable_in_json(away):
    response = away.get("/api/v1/services")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    error = response.get_json()["error"]
    assert error["code"] == "service_unavailable"
    assert "Nothing was saved" in error["message"]


def test_a_booking_posted_meanwhile_is_a_503_too(away):
    response = away.post(
        "/api/v1/appointments",
        json={
            "service_id": 1,
            "location_id": 1,
            "start": "2027-01-12T10:00:00-05:00",
            "patient": {
                "first_name": "Alex",
                "last_name": "Martin",
                "email": "alex@example.org",
                "sms_consent": False,
                "email_consent": True,
                "exercise_sms_consent": False,
            },
        },
    )

    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "service_unavailable"


@pytest.mark.parametrize(
    ("lang", "words"),
    [("en", "We cannot take bookings just now"), ("fr", "Nous ne pouvons pas prendre de rendez-vous")],
)
def test_the_patient_pages_say_nothing_was_saved_in_the_patients_language(away, lang, words):
    response = away.get(f"/?lang={lang}")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert words in page and f'<html lang="{lang}">' in page


def test_the_console_says_the_database_cannot_be_reached(away):
    response = away.post("/staff/login", data={"email": "desk@example.org", "password": "not-checked"})

    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "The database cannot be reached" in page and "Nothing was saved" in page


def test_readyz_says_so_to_the_load_balancer(away):
    response = away.get("/readyz")

    assert response.status_code == 503
