"""Configuration is read strictly: junk is an error naming the variable."""

from __future__ import annotations

import pytest

from booking_service.config import ConfigError, load_settings


def base_env(tmp_path, **extra):
    return {"INSTANCE_DIR": str(tmp_path), **extra}


def test_defaults_give_a_sqlite_file_under_instance_and_console_transports(tmp_path):
    settings = load_settings(base_env(tmp_path))
    assert settings.DATABASE_URL == f"sqlite:///{tmp_path / 'clinic.db'}"
    assert settings.SMS_BACKEND == "console" and settings.EMAIL_BACKEND == "console"
    assert settings.PUBLIC_BASE_URL == "http://127.0.0.1:5000"
    assert settings.SCHEDULER_POLL_SECONDS == 5


def test_development_secret_key_is_generated_once_and_kept(tmp_path):
    first = load_settings(base_env(tmp_path)).SECRET_KEY
    assert len(first) >= 64
    assert load_settings(base_env(tmp_path)).SECRET_KEY == first


PRODUCTION = {"SMS_BACKEND": "console", "EMAIL_BACKEND": "console", "PUBLIC_BASE_URL": "https://clinic.example"}


@pytest.mark.parametrize("app_env", ["production", "test"])
def test_a_secret_key_is_required_outside_development(tmp_path, app_env):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings(base_env(tmp_path, APP_ENV=app_env, **PRODUCTION))
    settings = load_settings(base_env(tmp_path, APP_ENV=app_env, SECRET_KEY="k" * 32, **PRODUCTION))
    assert settings.SECRET_KEY == "k" * 32


@pytest.mark.parametrize("missing", ["SMS_BACKEND", "EMAIL_BACKEND"])
def test_production_needs_the_transports_chosen_explicitly(tmp_path, missing):
    env = {**PRODUCTION, "SECRET_KEY": "k" * 32}
    del env[missing]
    with pytest.raises(ConfigError, match=f"{missing} must be set explicitly"):
        load_settings(base_env(tmp_path, APP_ENV="production", **env))


def test_production_refuses_plain_http_unless_a_trusted_proxy_ends_tls(tmp_path):
    env = {**PRODUCTION, "SECRET_KEY": "k" * 32, "PUBLIC_BASE_URL": "http://clinic.example"}
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL must be https"):
        load_settings(base_env(tmp_path, APP_ENV="production", **env))
    settings = load_settings(base_env(tmp_path, APP_ENV="production", TRUSTED_PROXIES="1", **env))
    assert settings.TRUSTED_PROXIES == 1
    # Development keeps the plain-http default.
    assert load_settings(base_env(tmp_path)).PUBLIC_BASE_URL == "http://127.0.0.1:5000"


@pytest.mark.parametrize(
    "name, value",
    [
        ("SMTP_PORT", "twenty-five"),
        ("SMTP_PORT", "0"),
        ("SMTP_PORT", "65536"),
        ("SMTP_STARTTLS", "maybe"),
        ("SMTP_STARTTLS", "yes please"),
        ("SMS_BACKEND", "pigeon"),
        ("EMAIL_BACKEND", "fax"),
        ("SCHEDULER_POLL_SECONDS", "soon"),
        ("PUBLIC_BASE_URL", "clinic.example"),
        ("TWILIO_API_BASE_URL", "http://127.0.0.1:8765/2010-04-01"),
        ("TWILIO_API_BASE_URL", "127.0.0.1:8765"),
        ("TWILIO_API_BASE_URL", "ftp://x"),
        ("TWILIO_API_BASE_URL", "http://127.0.0.1:8765?region=ie1"),
        ("TWILIO_API_BASE_URL", "http://127.0.0.1:8765#top"),
        ("DATABASE_URL", "mysql://localhost/clinic"),
        ("APP_ENV", "staging"),
        ("TRUSTED_PROXIES", "-1"),
        ("TRUSTED_PROXIES", "all"),
    ],
)
def test_a_malformed_value_is_an_error_that_names_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings(base_env(tmp_path, **{name: value}))


def test_twilio_backend_needs_credentials_and_a_sender(tmp_path):
    with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID"):
        load_settings(base_env(tmp_path, SMS_BACKEND="twilio"))
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        load_settings(base_env(tmp_path, SMS_BACKEND="twilio", TWILIO_ACCOUNT_SID="AC1", TWILIO_FROM_NUMBER="+1"))
    with pytest.raises(ConfigError, match="TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"):
        load_settings(base_env(tmp_path, SMS_BACKEND="twilio", TWILIO_ACCOUNT_SID="AC1", TWILIO_AUTH_TOKEN="t"))


def test_twilio_api_base_url_is_kept_as_scheme_host_and_port(tmp_path):
    settings = load_settings(base_env(tmp_path, TWILIO_API_BASE_URL="http://127.0.0.1:8765/"))
    assert settings.TWILIO_API_BASE_URL == "http://127.0.0.1:8765"


def test_smtp_port_takes_any_port_number(tmp_path):
    assert load_settings(base_env(tmp_path, SMTP_PORT="65535")).SMTP_PORT == 65535


def test_plain_postgresql_urls_mean_psycopg_3(tmp_path):
    settings = load_settings(base_env(tmp_path, DATABASE_URL="postgresql://u@db/clinic"))
    assert settings.DATABASE_URL == "postgresql+psycopg://u@db/clinic"


def test_starttls_accepts_true_and_false(tmp_path):
    assert load_settings(base_env(tmp_path, SMTP_STARTTLS="true")).SMTP_STARTTLS is True
    assert load_settings(base_env(tmp_path, SMTP_STARTTLS="false")).SMTP_STARTTLS is False
