"""The web app's operational surface: ``/healthz``, ``/readyz``, ``/metrics`` and the request id.

- ``GET /healthz``: the process answers (no database).
- ``GET /readyz``: the database answers ``SELECT 1``; otherwise 503 with
  ``{"status": "unavailable", "reason": "database unreachable", "error": "<driver error class>"}``
  (a load balancer takes the process out of rotation until it recovers).
- ``GET /metrics``: Prometheus text, only with ``Authorization: Bearer $METRICS_TOKEN``
  (see :func:`.metrics.refusal`: 404 when no token is configured, 401, 403).
- Every request gets an id (:mod:`.request_id`): bound for its log records, answered in the
  ``X-Request-ID`` header. With ``LOG_FORMAT=json`` each request also logs one access line
  (method, route pattern, status, duration; never the path itself, which may hold a link's
  token) under ``booking_service.requests``.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, abort, g, jsonify, request
from sqlalchemy import text

from booking_service.observability import metrics, request_id

access_log = logging.getLogger("booking_service.requests")


def init_app(app: Flask) -> None:
    """Register the request-id hooks (first, so every later hook and log sees the id) and the
    three operational routes."""
    settings = app.extensions["settings"]
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request(_answer_id)
    app.teardown_request(_end)
    if settings.LOG_FORMAT == "json":
        app.after_request(_log_access)
        # The development server's own access lines are plain text: ours replace them.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        from booking_service.context import db_session

        try:
            db_session().execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not ready"
            logging.getLogger("booking_service.health").warning("readyz: database unreachable (%s)", exc)
            return jsonify(status="unavailable", reason="database unreachable", error=type(exc).__name__), 503
        return jsonify(status="ok")

    @app.get("/metrics")
    def metrics_view():
        refused = metrics.refusal(request.headers.get("Authorization"), settings.METRICS_TOKEN)
        if refused is not None:
            status, reason = refused
            if status == 404:
                abort(404)  # off: answered like any unknown path
            headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if status == 401 else {}
            return Response(reason + "\n", status=status, mimetype="text/plain", headers=headers)
        if "metrics_registry" not in app.extensions:
            app.extensions["metrics_registry"] = metrics.registry(
                app.extensions["database"], settings.PROMETHEUS_MULTIPROC_DIR
            )
        body, content_type = metrics.exposition(app.extensions["metrics_registry"])
        return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})


def _begin() -> None:
    g.request_started = time.perf_counter()
    g.request_id = request_id.accept(request.headers.get(request_id.HEADER))
    g.request_id_token = request_id.bind(g.request_id)


def _answer_id(response: Response) -> Response:
    rid = g.get("request_id")
    if rid:
        response.headers[request_id.HEADER] = rid
    return response


def _log_access(response: Response) -> Response:
    started = g.get("request_started")
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1) if started else None
    # The route, not the path: manage and program links carry their token in the path.
    route = request.url_rule.rule if request.url_rule is not None else "(no route)"
    access_log.info(
        "%s %s %s",
        request.method,
        route,
        response.status_code,
        extra={"method": request.method, "route": route, "status": response.status_code, "ms": elapsed_ms},
    )
    return response


def _end(_exc: BaseException | None = None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        request_id.unbind(token)
