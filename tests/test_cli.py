"""The command-line contract: db upgrade, seed-demo, create-user, create-api-token."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from booking_service import create_app
from booking_service.clinic.models import Location, Practitioner
from booking_service.scheduling.models import Appointment
from booking_service.staff.models import User
from booking_service.staff.operations import user_for_token
from tests.conftest import NOW, SECRET


@pytest.fixture
def runner(db_url, database):
    app = create_app({"DATABASE_URL": db_url, "SECRET_KEY": SECRET})
    yield app.test_cli_runner()
    app.extensions["database"].dispose()


def test_db_upgrade_is_idempotent(runner):
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "head" in result.output


def test_seed_demo_loads_a_believable_clinic_and_prints_the_logins(runner, database):
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "admin@demo.clinic" in result.output and "frontdesk@demo.clinic" in result.output
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Location)) == 2
        professions = [p.profession for p in s.scalars(select(Practitioner))]
        assert len(professions) == 5 and "Registered Massage Therapist" in professions
        assert s.scalar(select(func.count()).select_from(Appointment)) >= 8
    again = runner.invoke(args=["seed-demo"])
    assert again.exit_code == 1 and "already has data" in again.output
    assert runner.invoke(args=["seed-demo", "--if-empty"]).exit_code == 0


def test_create_user_refuses_an_existing_email_unless_update(runner, database):
    first = runner.invoke(
        args=["create-user", "desk@clinic.example", "--role", "frontdesk", "--password", "long-enough-pw"]
    )
    assert first.exit_code == 0, first.output
    again = runner.invoke(
        args=["create-user", "desk@clinic.example", "--role", "admin", "--password", "long-enough-pw"]
    )
    assert again.exit_code == 1 and "already exists" in again.output
    updated = runner.invoke(
        args=["create-user", "desk@clinic.example", "--role", "admin", "--update", "--password", "another-long-pw"]
    )
    assert updated.exit_code == 0, updated.output
    with database.session() as s:
        assert s.scalars(select(User)).one().role == "admin"


def test_create_user_generates_and_prints_a_password_when_none_is_given(runner):
    result = runner.invoke(args=["create-user", "pt@clinic.example", "--role", "practitioner"])
    assert result.exit_code == 0 and "Password: " in result.output


def test_create_user_rejects_a_short_password_with_a_clear_message(runner):
    result = runner.invoke(args=["create-user", "pt@clinic.example", "--role", "admin", "--password", "short"])
    assert result.exit_code == 1 and "at least 10 characters" in result.output


def test_create_api_token_prints_a_working_token_alone_on_the_last_line(runner, database):
    runner.invoke(args=["create-user", "desk@clinic.example", "--role", "frontdesk", "--password", "long-enough-pw"])
    result = runner.invoke(args=["create-api-token", "desk@clinic.example"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert " " not in token and len(token) > 30
    with database.session() as s:
        assert user_for_token(s, token, now=NOW).email == "desk@clinic.example"


def test_create_api_token_for_an_unknown_user_fails_clearly(runner):
    result = runner.invoke(args=["create-api-token", "nobody@clinic.example"])
    assert result.exit_code == 1 and "no staff user" in result.output
