"""One logging set-up for the web app and the worker: ``LOG_FORMAT=text`` or ``json``.

``text`` (the default): ``time LEVEL logger: message``, with `` [request_id=...]`` appended
when the record has one. ``json``: one JSON object per line (python-json-logger) with
``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and ``request_id`` (null outside a
request), plus whatever the call site passed as ``extra`` (the worker adds ``message_id``,
``kind``, ``channel`` and ``status``); a traceback is the ``exc_info`` field of the same line.

:func:`configure` installs one handler on the root logger, marked as ours, and replaces its
formatter when called again (``create_app`` runs once per app; tests build many). When the
root logger already has someone else's handlers (pytest, an embedding program) and the format
is ``text``, it leaves logging alone, as ``logging.basicConfig`` would.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter

from booking_service.observability import request_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = ["asctime", "levelname", "name", "message", "request_id"]
JSON_RENAMES = {"asctime": "time", "levelname": "level", "name": "logger"}


class RequestIdFilter(logging.Filter):
    """Gives every record a ``request_id``: the one passed in ``extra``, else the bound one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.current()
        return True


class Handler(logging.StreamHandler):
    """The root logger's handler (stderr), with the request id filter; marked as ours."""

    booking_service = True

    def __init__(self, stream=None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self.addFilter(RequestIdFilter())


def _utc_iso(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        if rid:
            first, newline, rest = line.partition("\n")  # after the message, before a traceback
            line = f"{first} [request_id={rid}]{newline}{rest}"
        return line


class JsonLineFormatter(JsonFormatter):
    """python-json-logger's formatter with the field names of docs/operations.md ("Logs")."""

    def __init__(self) -> None:
        super().__init__(JSON_FIELDS, rename_fields=JSON_RENAMES)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_iso(record)


def formatter(log_format: str) -> logging.Formatter:
    return JsonLineFormatter() if log_format == "json" else TextFormatter()


def configure(log_format: str = "text", *, level: int = logging.INFO) -> None:
    """Send the root logger's records to stderr in ``log_format`` (``text`` or ``json``)."""
    root = logging.getLogger()
    ours = next((h for h in root.handlers if getattr(h, "booking_service", False)), None)
    if ours is None:
        if root.handlers and log_format == "text":
            return  # someone else set logging up (pytest, an embedding program): as basicConfig
        ours = Handler()
        root.addHandler(ours)
        if root.level == logging.WARNING or root.level == logging.NOTSET:
            root.setLevel(level)
    ours.setFormatter(formatter(log_format))


def gunicorn_logconfig(log_format: str) -> dict:
    """A ``logconfig_dict`` for gunicorn.conf.py: gunicorn's own lines and the app's through one
    :class:`Handler` on stderr, in ``log_format`` (:func:`configure` then finds it as ours)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonLineFormatter}, "text": {"()": TextFormatter}},
        "handlers": {"app": {"class": f"{__name__}.Handler", "formatter": log_format}},
        "root": {"level": "INFO", "handlers": ["app"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["app"], "propagate": False},
            # Off: its lines hold full paths, and manage links carry their token in the path. With
            # LOG_FORMAT=json the app logs one access line per request with the route instead.
            "gunicorn.access": {"level": "WARNING", "handlers": ["app"], "propagate": False},
        },
    }
