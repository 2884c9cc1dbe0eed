"""Prometheus metrics (prometheus_client): what they are, where they move, how they are served.

Counted where the event happens (names as exposed):

- ``clinic_bookings_total{source}``: appointments booked (``online``, ``api``, ``staff``),
  counted when the booking's transaction commits (:func:`count_on_commit`);
- ``clinic_messages_total{kind, channel, status}``: every outcome the outbox records, by the
  status the row moved to: ``sent``, ``delivered``, ``failed``, ``skipped``, ``pending`` (a
  retry or a deferral) and ``sending`` (an uncertain send left to the reaper) from the worker,
  ``delivered``/``failed`` from Twilio's status callbacks in the web app, ``cancelled`` never
  (a booking change cancels rows, not the worker);
- ``clinic_dispatch_lateness_seconds{channel}``: from a message's ``due_at`` to the moment the
  worker recorded the provider's acceptance (quiet-hours deferrals and retries included);
- ``clinic_webhook_rejections_total{endpoint, reason}``: Twilio webhooks refused (``signature``:
  bad or missing signature; ``not_configured``: no ``TWILIO_AUTH_TOKEN``);
- ``clinic_retention_purged_total{table}``: rows whose content the retention job purged.

Read from the database at each scrape (:class:`DatabaseCollector`, one statement):
``clinic_outbox_due_messages`` (pending rows due now: the backlog), ``clinic_outbox_sending_messages``
(claimed, in flight), ``clinic_outbox_oldest_due_age_seconds`` (how long the oldest due row has
waited; 0 without a backlog), ``clinic_alerts_open`` and ``clinic_database_up`` (0 when that
statement failed; the others are then absent).

Serving: ``/metrics`` on the web app (:mod:`.web`) and, when ``WORKER_METRICS_PORT`` is set, on
the worker (:func:`serve`). Both answer only ``Authorization: Bearer $METRICS_TOKEN``
(:func:`refusal`: 404 while no token is configured, 401 without a bearer token, 403 for a
wrong one). Under gunicorn each worker process counts in its own files in
``PROMETHEUS_MULTIPROC_DIR`` (set up by gunicorn.conf.py) and a scrape adds them up
(prometheus_client's multiprocess mode); the web app then never exposes per-process gauges.
"""

from __future__ import annotations

import hmac
import logging
import socketserver
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import and_, event, func, select
from sqlalchemy.orm import Session

from booking_service.db import Database, utcnow

logger = logging.getLogger("booking_service.metrics")

BOOKINGS = Counter("clinic_bookings", "Appointments booked, by where they were booked.", ["source"])
MESSAGES = Counter(
    "clinic_messages",
    "Outcomes recorded on outbox messages, by the status each message moved to.",
    ["kind", "channel", "status"],
)
LATENESS = Histogram(
    "clinic_dispatch_lateness_seconds",
    "From a message's due time to its acceptance by the provider.",
    ["channel"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600),
)
WEBHOOK_REJECTIONS = Counter(
    "clinic_webhook_rejections", "Provider webhooks refused, by endpoint and reason.", ["endpoint", "reason"]
)
RETENTION_PURGED = Counter(
    "clinic_retention_purged", "Rows whose content the retention job purged, by table.", ["table"]
)

# Series that exist from the start (at 0), so a rate over them is defined before the first event.
for _source in ("online", "api", "staff"):
    BOOKINGS.labels(source=_source)

_PENDING = "metrics_on_commit"


# --------------------------------------------------------------------------- counting


def count_on_commit(session: Session, counter: Counter, amount: float = 1, **labels: str) -> None:
    """Increment ``counter`` once ``session``'s transaction commits; never if it rolls back."""
    session.info.setdefault(_PENDING, []).append((counter, labels, amount))


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for counter, labels, amount in session.info.pop(_PENDING, ()):
        counter.labels(**labels).inc(amount)


@event.listens_for(Session, "after_rollback")
def _drop_uncommitted(session: Session) -> None:
    session.info.pop(_PENDING, None)


def message_outcome(kind: str, channel: str, status: str, *, due_at: datetime | None = None, now: datetime) -> None:
    """An outcome the worker recorded (already committed)."""
    if status == "lost" or not kind or not channel:
        return  # nothing was written, or not a row's outcome
    MESSAGES.labels(kind=kind, channel=channel, status=status).inc()
    if status in ("sent", "delivered") and due_at is not None:
        LATENESS.labels(channel=channel).observe(max(0.0, (now - due_at).total_seconds()))


# --------------------------------------------------------------------------- read at scrape time


class DatabaseCollector(Collector):
    """The gauges read from the database at each scrape, in one statement."""

    def __init__(self, database: Database, now_fn: Callable[[], datetime] = utcnow) -> None:
        self.database = database
        self.now_fn = now_fn

    def collect(self) -> Iterable[Metric]:
        from booking_service.exercises.models import Alert
        from booking_service.outbox.models import OutboxMessage as m

        now = self.now_fn()
        due = and_(m.status == "pending", m.next_attempt_at <= now)
        statement = select(
            select(func.count()).select_from(m).where(due).scalar_subquery(),
            select(func.min(m.next_attempt_at)).where(due).scalar_subquery(),
            select(func.count()).select_from(m).where(m.status == "sending").scalar_subquery(),
            select(func.count()).select_from(Alert).where(Alert.status == "open").scalar_subquery(),
        )
        up = GaugeMetricFamily("clinic_database_up", "1 when the scrape's database statement succeeded.")
        try:
            with self.database.engine.connect() as conn:
                due_count, oldest, sending, alerts = conn.execute(statement).one()
        except Exception as exc:  # any driver error: the scrape still answers, saying so
            logger.warning("metrics: database unavailable (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        if isinstance(oldest, str):  # SQLite may hand back an aggregate's text as is
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            from datetime import UTC

            oldest = oldest.replace(tzinfo=UTC)
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        yield GaugeMetricFamily("clinic_outbox_due_messages", "Pending messages due now (the backlog).", due_count)
        yield GaugeMetricFamily("clinic_outbox_sending_messages", "Messages claimed by a worker.", sending)
        yield GaugeMetricFamily(
            "clinic_outbox_oldest_due_age_seconds", "How long the oldest due message has waited.", age
        )
        yield GaugeMetricFamily("clinic_alerts_open", "Patient alerts not yet acknowledged.", alerts)


class _Forward(Collector):
    """The process's own default registry, inside another registry."""

    def collect(self) -> Iterable[Metric]:
        yield from REGISTRY.collect()


def registry(database: Database | None, multiprocess_dir: str | None) -> CollectorRegistry:
    """What a scrape exposes: this process's metrics (or, under gunicorn, every process's,
    from ``multiprocess_dir``), plus the database gauges when ``database`` is given."""
    found = CollectorRegistry(auto_describe=False)
    if multiprocess_dir:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(found, path=multiprocess_dir)
    else:
        found.register(_Forward())
    if database is not None:
        found.register(DatabaseCollector(database))
    return found


# --------------------------------------------------------------------------- serving


def refusal(authorization: str | None, token: str | None) -> tuple[int, str] | None:
    """Why a scrape is refused, as (status, reason), or None when it may have the metrics.

    404 while no ``METRICS_TOKEN`` is set (the endpoint is off), 401 without a bearer token,
    403 for a wrong one (compared in constant time)."""
    if not token:
        return 404, "not found"
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return 401, "send Authorization: Bearer <METRICS_TOKEN>"
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return 403, "wrong metrics token"
    return None


def exposition(collectors: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(collectors), CONTENT_TYPE_LATEST


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def serve(port: int, token: str | None, *, host: str = "0.0.0.0") -> WSGIServer:
    """Serve this process's metrics at ``http://host:port/metrics`` on a daemon thread (the
    worker). Same token rule as the web app. Returns the server (``shutdown()`` stops it)."""

    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        refused = refusal(environ.get("HTTP_AUTHORIZATION"), token)
        if refused is not None:
            status, reason = refused
            headers = [("Content-Type", "text/plain; charset=utf-8")]
            if status == 401:
                headers.append(("WWW-Authenticate", 'Bearer realm="metrics"'))
            start_response(f"{status} {_REASONS[status]}", headers)
            return [reason.encode() + b"\n"]
        body, content_type = exposition(registry(None, None))
        start_response("200 OK", [("Content-Type", content_type)])
        return [body]

    server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


_REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
