"""The clinic booking service: ``create_app`` builds the Flask application; importing builds nothing."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask

from booking_service.config import PROJECT_ROOT, load_settings


def create_app(config: Mapping[str, object] | None = None) -> Flask:
    """Build the application from the environment, with ``config`` overriding any setting.

    Raises ``ConfigError`` (naming the variable) for a malformed environment.
    """
    from dotenv import load_dotenv

    load_dotenv(PROJECT_ROOT / ".env", override=False)
    settings = load_settings()
    if config:
        settings = settings.with_overrides(config)

    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "booking_service" / "static"),
        instance_path=settings.INSTANCE_DIR,
    )
    app.config.update(
        SECRET_KEY=settings.SECRET_KEY,
        RATELIMIT_STORAGE_URI=settings.RATELIMIT_STORAGE_URI,
        RATELIMIT_ENABLED=settings.RATELIMIT_ENABLED,
        RATELIMIT_HEADERS_ENABLED=True,
    )
    from booking_service import security

    security.install(app, settings)
    app.config.update(dict(settings.extra))
    app.json.sort_keys = False  # keep the contract's field order in JSON answers
    from booking_service.observability import logs

    logs.configure(settings.LOG_FORMAT)

    from booking_service.context import close_session, finish_request
    from booking_service.db import Database
    from booking_service.observability import web as observability_web

    app.extensions["settings"] = settings
    app.extensions["database"] = Database(settings.DATABASE_URL)
    # Request ids, /healthz, /readyz, /metrics; its after_request hooks run after the commit.
    observability_web.init_app(app)
    app.after_request(finish_request)  # the request's one commit (or rollback): see context.py
    app.teardown_appcontext(close_session)
    from booking_service.audit import web as audit_web

    audit_web.init_app(app)  # who is acting, for the audit trail: see audit/web.py

    _init_extensions(app)
    _register_blueprints(app)

    from booking_service.cli import register_commands

    register_commands(app)
    return app


def _init_extensions(app: Flask) -> None:
    from booking_service.extensions import csrf, limiter

    limiter.init_app(app)
    csrf.init_app(app)


def _register_blueprints(app: Flask) -> None:
    from booking_service.api.blueprint import register_api
    from booking_service.console.blueprint import register_console
    from booking_service.integrations.twilio.blueprint import register_webhooks
    from booking_service.web.blueprint import register_web

    register_api(app)
    register_web(app)
    register_webhooks(app)
    register_console(app)
