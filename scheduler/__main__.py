"""``python -m scheduler``: run one worker process until SIGTERM or SIGINT (exit status 0).

Reads the same environment as the web app (and ``.env`` in development). Run as many as you
like against PostgreSQL; they coordinate through row claims and an advisory lock only.
Exit status 2: a configuration error, named on stderr.
"""

from __future__ import annotations

import signal
import sys
import threading

# A stop that arrives while the process is still importing (a second or more on a busy
# machine) must not kill it with the default action: note it, and stop once the worker exists.
_early_stop = threading.Event()


def _note_stop(_signum, _frame) -> None:
    _early_stop.set()


def main() -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _note_stop)

    import logging
    import os

    from dotenv import load_dotenv

    from booking_service.config import PROJECT_ROOT, ConfigError, load_settings

    load_dotenv(PROJECT_ROOT / ".env", override=False)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    # The worker is one process: its metrics live in memory and it serves them itself
    # (WORKER_METRICS_PORT). prometheus_client's multiprocess mode is gunicorn's alone.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from booking_service.observability import logs

    logs.configure(settings.LOG_FORMAT)
    # APScheduler logs every run of every job, and the twilio SDK every request's headers, at
    # INFO: with a poll of a few seconds that drowns the one line per message that matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

    from scheduler.worker import Worker

    try:
        worker = Worker(settings)
    except ValueError as exc:  # a transport's missing setting, named
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return worker.run(stop_requested=_early_stop)


if __name__ == "__main__":
    sys.exit(main())
