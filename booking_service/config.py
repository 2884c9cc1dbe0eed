"""Configuration, read once and strictly from the environment.

Contract (see ../shared/DESIGN.md, "Configuration"): every variable of the table is read here and
nowhere else. A value that cannot be parsed is an error naming the variable; it is never silently
replaced by a default. ``SECRET_KEY`` is required outside development (``APP_ENV`` other than ``development``); in
development a random key is generated once and kept under ``instance/``.
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


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse the environment into :class:`Settings`.

    Raises :class:`ConfigError` naming the variable for any malformed value, and for a missing
    ``SECRET_KEY`` when ``APP_ENV=production``.
    """
    env = dict(os.environ if environ is None else environ)

    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value not in (None, "") else None

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
