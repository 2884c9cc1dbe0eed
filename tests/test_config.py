"""Configuration is read strictly: junk is an error naming the variable."""

from __future__ import annotations

import pytest

from booking_service.config import SECRET_VARIABLES, VARIABLES, ConfigError, load_settings


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
        ("WEB_CONCURRENCY", "0"),
        ("WEB_CONCURRENCY", "auto"),
        ("LOG_FORMAT", "xml"),
        ("METRICS_TOKEN", "short"),
        ("WORKER_METRICS_PORT", "metrics"),
        ("WORKER_METRICS_PORT", "70000"),
        ("MESSAGE_RETENTION_DAYS", "0"),
        ("MESSAGE_RETENTION_DAYS", "half a year"),
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


def test_operations_settings_have_defaults_and_parse(tmp_path):
    defaults = load_settings(base_env(tmp_path))
    assert (defaults.LOG_FORMAT, defaults.METRICS_TOKEN, defaults.WORKER_METRICS_PORT) == ("text", None, None)
    assert (defaults.MESSAGE_RETENTION_DAYS, defaults.WEB_CONCURRENCY) == (180, 2)
    assert defaults.PROMETHEUS_MULTIPROC_DIR is None
    given = load_settings(
        base_env(
            tmp_path,
            LOG_FORMAT="JSON",
            METRICS_TOKEN="m" * 24,
            WORKER_METRICS_PORT="9100",
            MESSAGE_RETENTION_DAYS="30",
            WEB_CONCURRENCY="4",
            PROMETHEUS_MULTIPROC_DIR="/run/metrics",
        )
    )
    assert (given.LOG_FORMAT, given.METRICS_TOKEN, given.WORKER_METRICS_PORT) == ("json", "m" * 24, 9100)
    assert (given.MESSAGE_RETENTION_DAYS, given.WEB_CONCURRENCY, given.PROMETHEUS_MULTIPROC_DIR) == (
        30,
        4,
        "/run/metrics",
    )


# --- secrets from files (Docker secrets) ---------------------------------------------------------


@pytest.mark.parametrize("name", SECRET_VARIABLES)
def test_every_secret_can_be_read_from_a_file(tmp_path, name):
    values = {
        "DATABASE_URL": "postgresql://clinic:s3cret@db/clinic",
        "RATELIMIT_STORAGE_URI": "redis://:s3cret@redis:6379/0",
        "METRICS_TOKEN": "a-metrics-token-of-some-length",
    }
    value = values.get(name, f"{name.lower()}-from-a-file")
    secret = tmp_path / "secret"
    secret.write_text(value + "\n")  # as `echo ... > file` writes it
    settings = load_settings(base_env(tmp_path, **{f"{name}_FILE": str(secret)}))
    expected = "postgresql+psycopg://clinic:s3cret@db/clinic" if name == "DATABASE_URL" else value
    assert getattr(settings, name) == expected


def test_a_secret_key_from_a_file_satisfies_production(tmp_path):
    secret = tmp_path / "secret_key"
    secret.write_text("k" * 64)
    settings = load_settings(base_env(tmp_path, APP_ENV="production", SECRET_KEY_FILE=str(secret), **PRODUCTION))
    assert settings.SECRET_KEY == "k" * 64


def test_a_secret_given_both_ways_must_agree(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("twilio-token\n")
    same = load_settings(base_env(tmp_path, TWILIO_AUTH_TOKEN="twilio-token", TWILIO_AUTH_TOKEN_FILE=str(secret)))
    assert same.TWILIO_AUTH_TOKEN == "twilio-token"
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN and TWILIO_AUTH_TOKEN_FILE are both set and differ"):
        load_settings(base_env(tmp_path, TWILIO_AUTH_TOKEN="another", TWILIO_AUTH_TOKEN_FILE=str(secret)))


def test_a_secret_file_that_cannot_be_read_or_is_empty_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="SMTP_PASSWORD_FILE names a file that cannot be read"):
        load_settings(base_env(tmp_path, SMTP_PASSWORD_FILE=str(tmp_path / "missing")))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="SMTP_PASSWORD_FILE names an empty file"):
        load_settings(base_env(tmp_path, SMTP_PASSWORD_FILE=str(empty)))


def test_only_secrets_have_a_file_form(tmp_path):
    not_secret = tmp_path / "url"
    not_secret.write_text("https://clinic.example")
    settings = load_settings(base_env(tmp_path, PUBLIC_BASE_URL_FILE=str(not_secret)))
    assert settings.PUBLIC_BASE_URL == "http://127.0.0.1:5000"  # PUBLIC_BASE_URL is not a secret: no _FILE
    assert set(SECRET_VARIABLES) <= set(VARIABLES)
