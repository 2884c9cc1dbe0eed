"""Configuration, read once and strictly from the environment.

Contract (see ../shared/DESIGN.md, "Configuration"): every variable of the table is read here and
nowhere else. A value that cannot be parsed is an error naming the variable; it is never silently
replaced by a default. ``SECRET_KEY`` is required outside development (``APP_ENV`` other than ``development``); in
development a random key is generated once and kept under ``instance/``.

:data:`VARIABLES` names every variable read here (``tests/test_compose.py`` checks
``.env.example`` and ``docker-compose.yml`` against it). Each of :data:`SECRET_VARIABLES` may
instead be given as a file, ``NAME_FILE`` (Docker secrets): its content, less the trailing
newline, is the value; both forms at once must agree.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE_DIR = PROJECT_ROOT / "instance"


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


# Every variable load_settings() reads (the contract of .env.example and docker-compose.yml).
VARIABLES = (
    "APP_ENV",
    "INSTANCE_DIR",
    "DATABASE_URL",
    "SECRET_KEY",
    "PORT",
    "PUBLIC_BASE_URL",
    "TRUSTED_PROXIES",
    "SMS_BACKEND",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL",
    "EMAIL_BACKEND",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_STARTTLS",
    "EMAIL_FROM",
    "SCHEDULER_POLL_SECONDS",
    "SCHEDULER_THREADS",
    "SCHEDULER_LEASE_SECONDS",
    "RATELIMIT_STORAGE_URI",
    "RATELIMIT_ENABLED",
    "WEB_CONCURRENCY",
    "LOG_FORMAT",
    "METRICS_TOKEN",
    "WORKER_METRICS_PORT",
    "PROMETHEUS_MULTIPROC_DIR",
    "MESSAGE_RETENTION_DAYS",
)
# Variables that may hold a credential: each may come from NAME_FILE instead (Docker secrets).
SECRET_VARIABLES = (
    "DATABASE_URL",
    "SECRET_KEY",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "RATELIMIT_STORAGE_URI",
    "METRICS_TOKEN",
)


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"true", "1", "yes", "on"}:
        return True
    if value in {"false", "0", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be 'true' or 'false', not {raw!r}")


def _parse_int(name: str, raw: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, not {value}")
    return value


def _parse_float(name: str, raw: str, *, minimum: float) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value


def _parse_choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return value


def _parse_base_url(name: str, raw: str, *, path_allowed: bool) -> str:
    value = raw.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL such as https://clinic.example, not {raw!r}")
    if not path_allowed and (parts.path or parts.query or parts.fragment):
        raise ConfigError(f"{name} must be a scheme, host and port only, not {raw!r}")
    return value


def normalise_database_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (``postgresql+psycopg://``)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


DEFAULT_PORT = 5000


@dataclass(frozen=True)
class Settings:
    """The parsed environment. Attribute names are the variable names."""

    ENV: str = "development"
    DATABASE_URL: str = ""
    SECRET_KEY: str = ""
    # The port the development server listens on (`make run PORT=8080`); the default
    # PUBLIC_BASE_URL follows it, so links in messages point at the same server.
    PORT: int = DEFAULT_PORT
    PUBLIC_BASE_URL: str = f"http://127.0.0.1:{DEFAULT_PORT}"
    SMS_BACKEND: str = "console"
    TWILIO_ACCOUNT_SID: str | None = None
    TWILIO_AUTH_TOKEN: str | None = None
    TWILIO_FROM_NUMBER: str | None = None
    TWILIO_MESSAGING_SERVICE_SID: str | None = None
    TWILIO_API_BASE_URL: str | None = None
    EMAIL_BACKEND: str = "console"
    SMTP_HOST: str = "localhost"
    SMTP_PORT: int = 25
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_STARTTLS: bool = False
    EMAIL_FROM: str = "clinic@localhost"
    SCHEDULER_POLL_SECONDS: float = 5.0
    SCHEDULER_THREADS: int = 8
    # How long a claimed message stays reserved for its worker; a dead worker's messages are
    # recovered once it expires (plus one reaper sweep), so keep it well under 60 s.
    SCHEDULER_LEASE_SECONDS: float = 30.0
    RATELIMIT_STORAGE_URI: str = "memory://"
    RATELIMIT_ENABLED: bool = True
    # How many reverse proxies stand in front of the web app (ProxyFix trusts that many
    # X-Forwarded-* hops); more than 0 also says TLS ends at the proxy.
    TRUSTED_PROXIES: int = 0
    # gunicorn's worker processes (gunicorn.conf.py); the Flask development server ignores it.
    WEB_CONCURRENCY: int = 2
    # "text" (one readable line per record) or "json" (one JSON object per line, with request_id).
    LOG_FORMAT: str = "text"
    # /metrics answers only "Authorization: Bearer <METRICS_TOKEN>"; unset: the endpoint is off (404).
    METRICS_TOKEN: str | None = None
    # The worker serves its own /metrics on this port (same token rule); unset: not served.
    WORKER_METRICS_PORT: int | None = None
    # gunicorn's per-process metric files (prometheus_client's multiprocess mode); unset: a fresh
    # temporary directory made when gunicorn starts (gunicorn.conf.py).
    PROMETHEUS_MULTIPROC_DIR: str | None = None
    # Message bodies and subjects, and the text of patients' replies, are purged after this many
    # days (status and times stay): see docs/operations.md, "Data kept".
    MESSAGE_RETENTION_DAYS: int = 180
    INSTANCE_DIR: str = str(DEFAULT_INSTANCE_DIR)
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.ENV == "production"

    def with_overrides(self, overrides: Mapping[str, object]) -> Settings:
        """A copy with attributes replaced; unknown keys go to ``extra`` (Flask config)."""
        known = {f.name for f in fields(self)}
        mine = {k: v for k, v in overrides.items() if k in known}
        other = {k: v for k, v in overrides.items() if k not in known}
        result = replace(self, **mine)
        if "DATABASE_URL" in mine:
            result = replace(result, DATABASE_URL=normalise_database_url(str(mine["DATABASE_URL"])))
        if other:
            result = replace(result, extra={**self.extra, **other})
        return result


def _dev_secret_key(instance_dir: Path) -> str:
    path = instance_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _check_production(settings: Settings, *, explicit: set[str]) -> None:
    """What production refuses to start without: transports chosen on purpose (the console
    backends would only log patients' messages and call them delivered), and TLS in front of
    the app (an ``https`` ``PUBLIC_BASE_URL``, or ``TRUSTED_PROXIES`` saying a proxy ends TLS)."""
    for name in ("SMS_BACKEND", "EMAIL_BACKEND"):
        if name not in explicit:
            raise ConfigError(
                f"{name} must be set explicitly when APP_ENV=production "
                "(console only logs messages; choose twilio/smtp, or console on purpose)"
            )
    if not settings.PUBLIC_BASE_URL.startswith("https://") and settings.TRUSTED_PROXIES == 0:
        raise ConfigError(
            "PUBLIC_BASE_URL must be https:// when APP_ENV=production "
            "(or set TRUSTED_PROXIES to the number of proxies in front when TLS ends at a proxy)"
        )


def _read_secret_file(name: str, env: Mapping[str, str]) -> str | None:
    """The value in the file ``NAME_FILE`` names (less trailing newlines), or None when unset."""
    path = env.get(f"{name}_FILE")
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{name}_FILE names a file that cannot be read ({path}): {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name}_FILE names a file that is not UTF-8 text ({path})") from None
    if not value.strip():
        raise ConfigError(f"{name}_FILE names an empty file ({path})")
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse the environment into :class:`Settings`.

    Raises :class:`ConfigError` naming the variable for any malformed value, and for a missing
    ``SECRET_KEY`` when ``APP_ENV=production``.
    """
    env = dict(os.environ if environ is None else environ)
    secrets_from_files = {name: _read_secret_file(name, env) for name in SECRET_VARIABLES}

    def get(name: str) -> str | None:
        if name not in VARIABLES:
            raise AssertionError(f"{name} is read but not listed in config.VARIABLES")
        value = env.get(name)
        value = value if value not in (None, "") else None
        from_file = secrets_from_files.get(name)
        if from_file is not None:
            if value is not None and value != from_file:
                raise ConfigError(f"{name} and {name}_FILE are both set and differ: set only one")
            return from_file
        return value

    app_env = _parse_choice("APP_ENV", get("APP_ENV") or "development", ("development", "production", "test"))
    instance_dir = Path(get("INSTANCE_DIR") or DEFAULT_INSTANCE_DIR)
    values: dict[str, object] = {"ENV": app_env, "INSTANCE_DIR": str(instance_dir)}

    url = get("DATABASE_URL")
    values["DATABASE_URL"] = normalise_database_url(url) if url else f"sqlite:///{instance_dir / 'clinic.db'}"
    if url and not values["DATABASE_URL"].startswith(("sqlite", "postgresql+psycopg")):
        raise ConfigError(f"DATABASE_URL must be a sqlite:/// or postgresql:// URL, not {url!r}")

    secret = get("SECRET_KEY")
    if secret is None:
        if app_env != "development":
            raise ConfigError(f"SECRET_KEY is required outside development (APP_ENV={app_env})")
        secret = _dev_secret_key(instance_dir)
    values["SECRET_KEY"] = secret

    if (raw := get("PORT")) is not None:
        values["PORT"] = _parse_int("PORT", raw, minimum=1, maximum=65535)
    if (raw := get("PUBLIC_BASE_URL")) is not None:
        values["PUBLIC_BASE_URL"] = _parse_base_url("PUBLIC_BASE_URL", raw, path_allowed=True)
    else:
        values["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{values.get('PORT', DEFAULT_PORT)}"
    if (raw := get("TWILIO_API_BASE_URL")) is not None:
        values["TWILIO_API_BASE_URL"] = _parse_base_url("TWILIO_API_BASE_URL", raw, path_allowed=False)
    if (raw := get("SMS_BACKEND")) is not None:
        values["SMS_BACKEND"] = _parse_choice("SMS_BACKEND", raw, ("console", "twilio"))
    if (raw := get("EMAIL_BACKEND")) is not None:
        values["EMAIL_BACKEND"] = _parse_choice("EMAIL_BACKEND", raw, ("console", "smtp"))
    if (raw := get("SMTP_PORT")) is not None:
        values["SMTP_PORT"] = _parse_int("SMTP_PORT", raw, minimum=1, maximum=65535)
    if (raw := get("SMTP_STARTTLS")) is not None:
        values["SMTP_STARTTLS"] = _parse_bool("SMTP_STARTTLS", raw)
    if (raw := get("SCHEDULER_POLL_SECONDS")) is not None:
        values["SCHEDULER_POLL_SECONDS"] = _parse_float("SCHEDULER_POLL_SECONDS", raw, minimum=0.1)
    if (raw := get("SCHEDULER_LEASE_SECONDS")) is not None:
        values["SCHEDULER_LEASE_SECONDS"] = _parse_float("SCHEDULER_LEASE_SECONDS", raw, minimum=1.0)
    if (raw := get("SCHEDULER_THREADS")) is not None:
        values["SCHEDULER_THREADS"] = _parse_int("SCHEDULER_THREADS", raw, minimum=1)
    if (raw := get("RATELIMIT_ENABLED")) is not None:
        values["RATELIMIT_ENABLED"] = _parse_bool("RATELIMIT_ENABLED", raw)
    if (raw := get("TRUSTED_PROXIES")) is not None:
        values["TRUSTED_PROXIES"] = _parse_int("TRUSTED_PROXIES", raw, minimum=0)
    if (raw := get("WEB_CONCURRENCY")) is not None:
        values["WEB_CONCURRENCY"] = _parse_int("WEB_CONCURRENCY", raw, minimum=1, maximum=64)
    if (raw := get("LOG_FORMAT")) is not None:
        values["LOG_FORMAT"] = _parse_choice("LOG_FORMAT", raw, ("text", "json"))
    if (raw := get("WORKER_METRICS_PORT")) is not None:
        values["WORKER_METRICS_PORT"] = _parse_int("WORKER_METRICS_PORT", raw, minimum=1, maximum=65535)
    if (raw := get("MESSAGE_RETENTION_DAYS")) is not None:
        values["MESSAGE_RETENTION_DAYS"] = _parse_int("MESSAGE_RETENTION_DAYS", raw, minimum=1)
    if (raw := get("METRICS_TOKEN")) is not None:
        if len(raw.strip()) < 16:
            raise ConfigError("METRICS_TOKEN must be at least 16 characters (see .env.example to make one)")
        values["METRICS_TOKEN"] = raw.strip()
    if (raw := get("PROMETHEUS_MULTIPROC_DIR")) is not None:
        values["PROMETHEUS_MULTIPROC_DIR"] = raw.strip()
    for name in (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_FROM_NUMBER",
        "TWILIO_MESSAGING_SERVICE_SID",
        "SMTP_HOST",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "EMAIL_FROM",
        "RATELIMIT_STORAGE_URI",
    ):
        if (raw := get(name)) is not None:
            values[name] = raw.strip()

    settings = Settings(**values)
    if settings.is_production:
        _check_production(settings, explicit={name for name in ("SMS_BACKEND", "EMAIL_BACKEND") if get(name)})
    if settings.SMS_BACKEND == "twilio":
        for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
            if not getattr(settings, name):
                raise ConfigError(f"{name} is required when SMS_BACKEND=twilio")
        if not (settings.TWILIO_FROM_NUMBER or settings.TWILIO_MESSAGING_SERVICE_SID):
            raise ConfigError("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID is required when SMS_BACKEND=twilio")
    return settings
