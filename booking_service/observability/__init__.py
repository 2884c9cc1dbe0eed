"""Operating the service: request ids, logs (text or JSON), Prometheus metrics, health checks.

- :mod:`.request_id`: the id of the current request (or of the message the worker is sending),
  a context variable read by the log records and stamped on the outbox rows a request plans;
- :mod:`.logs`: one logging set-up for the web app and the worker (``LOG_FORMAT``);
- :mod:`.metrics`: the counters, histogram and scrape-time gauges, the ``METRICS_TOKEN`` rule,
  gunicorn's multiprocess mode, and the worker's own small metrics server;
- :mod:`.web`: ``/healthz``, ``/readyz``, ``/metrics`` and the per-request hooks.

See docs/operations.md ("Metrics", "Logs") for what an operator reads.
"""
