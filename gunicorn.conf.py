"""gunicorn's settings for the web app (the image's command):

    gunicorn --config gunicorn.conf.py 'booking_service:create_app()'

Read from the same environment as the app (booking_service.config, so a bad value stops the
master at once, naming the variable): ``WEB_CONCURRENCY`` worker processes, ``LOG_FORMAT`` for
gunicorn's own log lines too, and the metrics directory. Command-line options override these
(``--bind 127.0.0.1:8001``, ``--workers 4``).

Metrics under gunicorn (prometheus_client's multiprocess mode): every worker process writes its
counters to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds them up, whichever
process answers. The directory is ``PROMETHEUS_MULTIPROC_DIR`` when set (emptied when gunicorn
starts: stale files would add a previous run's counts), else a fresh temporary directory,
removed when gunicorn exits. It must be set before any worker imports prometheus_client, which
is why it is done here, in the master, at import.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dotenv import load_dotenv

from booking_service.config import PROJECT_ROOT, ConfigError, load_settings
from booking_service.observability.logs import gunicorn_logconfig

load_dotenv(PROJECT_ROOT / ".env", override=False)
try:
    _settings = load_settings()
except ConfigError as exc:
    raise SystemExit(f"configuration error: {exc}") from None

_made_metrics_dir = _settings.PROMETHEUS_MULTIPROC_DIR is None
_metrics_dir = Path(_settings.PROMETHEUS_MULTIPROC_DIR or tempfile.mkdtemp(prefix="clinic-metrics-"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)  # the workers inherit it

wsgi_app = "booking_service:create_app()"
bind = ["0.0.0.0:8000"]
workers = _settings.WEB_CONCURRENCY
# Heartbeat files in memory, not on a container's overlay filesystem (gunicorn's advice).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
timeout = 30
graceful_timeout = 30
logconfig_dict = gunicorn_logconfig(_settings.LOG_FORMAT)
# No gunicornc control socket: it is not used, and two gunicorns of one user on one machine (two
# web services, the scale-out test) would share its one default path ($HOME/.gunicorn/gunicorn.ctl).
control_socket_disable = True


def on_starting(server) -> None:
    """Once, in the master, before the first worker: an empty metrics directory."""
    _metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in _metrics_dir.glob("*.db"):
        stale.unlink()


def child_exit(server, worker) -> None:
    """A worker process ended: its live gauges stop counting (prometheus_client's rule)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, path=str(_metrics_dir))


def on_exit(server) -> None:
    if _made_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
