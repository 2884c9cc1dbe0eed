"""The compose stack against the code's configuration contract, and its commands really run.

Docker does not run here. The static tests read ``docker-compose.yml``, ``.env.example``, the
``Dockerfile`` and ``gunicorn.conf.py`` and hold them to ``booking_service.config``: every
variable the stack sets is one the code reads, every variable the code reads is documented in
``.env.example``, and the stack's environment is one production accepts. The integration test
runs the services' own commands (the migration, gunicorn, ``python -m scheduler``) as
processes on this machine's PostgreSQL (a database of its own) and Redis, books through HTTP
and sees the worker's e-mail arrive at a local SMTP server (Mailpit's role), with the request
id of the booking on the worker's log line for that message.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import pytest

from booking_service.config import SECRET_VARIABLES, VARIABLES, ConfigError, load_settings
from tests.support import stack
from tests.support.stack import (
    COMPOSE_FILE,
    REPO,
    Process,
    app_services,
    command,
    compose,
    filled_example,
    first_slot,
    free_port,
    http,
    read_env_file,
    service_environment,
    stack_environment,
    variables_used,
    wait_for_http,
    wait_until,
)

# The stack's own database and Redis (fixtures stack_database, redis_url).
pytest_plugins = ["tests.support.stack_fixtures"]

# Read by docker-compose.yml itself (and the postgres image), never by the app.
COMPOSE_ONLY = {"POSTGRES_PASSWORD"}
FILE_FORMS = {f"{name}_FILE" for name in SECRET_VARIABLES}


# --- the files against the contract -------------------------------------------------------------


def test_every_variable_the_stack_gives_the_app_is_one_the_code_reads():
    for name, service in app_services().items():
        given = set((service.get("environment") or {}).keys())
        assert given <= set(VARIABLES), (name, given - set(VARIABLES))
    used = variables_used(COMPOSE_FILE.read_text())
    assert used - set(VARIABLES) - COMPOSE_ONLY == set(), "compose interpolates variables nobody reads"


def test_env_example_lists_every_variable_the_code_reads_and_nothing_else():
    listed = read_env_file(commented=True)
    assert set(VARIABLES) - set(listed) == set(), "variables missing from .env.example"
    assert set(listed) - set(VARIABLES) - COMPOSE_ONLY - FILE_FORMS == set(), "unknown variables in .env.example"
    # Every variable the compose file interpolates is explained there too.
    assert variables_used(COMPOSE_FILE.read_text()) <= set(listed)


def test_the_code_reads_only_the_variables_it_declares():
    source = (REPO / "booking_service" / "config.py").read_text()
    assert set(re.findall(r'get\("([A-Z_]+)"\)', source)) <= set(VARIABLES)
    # (load_settings refuses at run time to read a name missing from VARIABLES.)
    # Nothing else reads the environment: config.py is the one place (gunicorn.conf.py sets
    # PROMETHEUS_MULTIPROC_DIR for its workers; the worker drops it and checks for gunicorn).
    readers = {
        str(path.relative_to(REPO))
        for path in [*REPO.glob("booking_service/**/*.py"), *REPO.glob("scheduler/*.py")]
        if re.search(r"os\.environ|getenv\(", path.read_text())
    }
    assert readers == {"booking_service/config.py", "scheduler/__main__.py", "scheduler/worker.py"}


@pytest.mark.parametrize("service", ["migrate", "web", "worker"])
def test_each_app_service_gets_an_environment_production_accepts(service):
    env = service_environment(app_services()[service], filled_example())
    assert env["APP_ENV"] == "production"
    settings = load_settings(env)
    assert settings.is_production
    assert settings.DATABASE_URL.startswith("postgresql+psycopg://clinic:filled-postgres_password")
    assert settings.DATABASE_URL.endswith("@postgres:5432/clinic")
    assert settings.RATELIMIT_STORAGE_URI == "redis://redis:6379/0"  # limits shared by every web process
    assert (settings.EMAIL_BACKEND, settings.SMTP_HOST, settings.SMTP_PORT) == ("smtp", "mailpit", 1025)
    assert settings.LOG_FORMAT == "json"
    # SECRET_KEY comes from .env alone: without it production refuses to start.
    without = {k: v for k, v in filled_example().items() if k != "SECRET_KEY"}
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings(service_environment(app_services()[service], without))


def test_the_database_password_must_be_set():
    values = {k: v for k, v in filled_example().items() if k != "POSTGRES_PASSWORD"}
    with pytest.raises(stack.InterpolationError, match="POSTGRES_PASSWORD"):
        service_environment(app_services()["web"], values)


def test_services_commands_and_start_order():
    spec = compose()
    services = spec["services"]
    assert services["postgres"]["image"] == "postgres:16"
    volume = services["postgres"]["volumes"][0].split(":")[0]
    assert volume in spec["volumes"], "the database lives in a named volume"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["image"].startswith("redis:")
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    assert any(str(port).endswith(":8025") for port in services["mailpit"]["ports"])

    apps = app_services(spec)
    assert apps["migrate"]["command"] == ["flask", "--app", "booking_service", "db", "upgrade"]
    assert apps["migrate"]["restart"] == "no"
    assert apps["web"]["command"][:3] == ["gunicorn", "--config", "gunicorn.conf.py"]
    assert apps["web"]["command"][-1] == "booking_service:create_app()"
    assert "WEB_CONCURRENCY" in apps["web"]["environment"]
    assert apps["worker"]["command"] == ["python", "-m", "scheduler"]
    assert apps["worker"]["deploy"]["replicas"] >= 2

    assert apps["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        assert apps[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert apps["web"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_image_is_slim_non_root_with_zones_and_a_health_check():
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert stages and all(image == "python:3.11-slim" for image in stages)
    final = dockerfile.rsplit("\nFROM ", 1)[1]
    user = re.findall(r"^USER (\S+)", final, re.M)
    assert user and user[-1] not in ("root", "0")
    assert "tzdata" in final
    assert "--no-cache-dir" in dockerfile and "rm -rf /var/lib/apt/lists" in final
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", final, re.M)
    assert "COPY gunicorn.conf.py" in final
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", final, re.M).group(1))
    assert cmd == compose()["services"]["web"]["command"]


def test_gunicorn_takes_its_worker_count_and_metrics_directory_from_the_environment(tmp_path):
    probe = (
        "import json, runpy, os; ns = runpy.run_path('gunicorn.conf.py'); "
        "print(json.dumps({'workers': ns['workers'], 'dir': os.environ['PROMETHEUS_MULTIPROC_DIR'], "
        "'bind': ns['bind'], 'json': ns['logconfig_dict']['handlers']['app']['formatter']}))"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "INSTANCE_DIR": str(tmp_path),
        "WEB_CONCURRENCY": "5",
        "LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    found = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == {
        "workers": 5,
        "dir": str(tmp_path / "metrics"),
        "bind": ["0.0.0.0:8000"],
        "json": "json",
    }
    env["WEB_CONCURRENCY"] = "many"
    refused = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "WEB_CONCURRENCY must be a whole number" in refused.stderr


# --- the same commands, run -------------------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None when absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        found_name, _, found_labels = head.partition("{")
        if found_name != name:
            continue
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', found_labels))
        if pairs == labels:
            return float(value)
    return None


@pytest.mark.postgres
@pytest.mark.slow
def test_the_stacks_commands_book_through_http_and_the_worker_sends_the_email(
    stack_database, redis_url, smtp, tmp_path
):
    web_port = free_port()
    options = {
        "database_url": stack_database,
        "redis_url": redis_url,
        "smtp_port": smtp.port,
        "web_port": web_port,
        "tmp_path": tmp_path,
    }
    envs = {name: stack_environment(name, **options) for name in ("migrate", "web", "worker")}
    services = app_services()

    migrated = stack.run(command(services["migrate"]), envs["migrate"])
    assert migrated.returncode == 0, migrated.stderr
    seeded = stack.run([*command(services["migrate"])[:3], "seed-demo"], envs["migrate"])
    assert seeded.returncode == 0, seeded.stderr

    web = Process.start("web", command(services["web"], "--bind", f"127.0.0.1:{web_port}"), envs["web"], tmp_path)
    worker = Process.start("worker", command(services["worker"]), envs["worker"], tmp_path)
    base = f"http://127.0.0.1:{web_port}"
    try:
        assert wait_for_http(f"{base}/readyz", web), web.text()[-3000:]
        assert wait_until(lambda: " started: " in worker.text() or not worker.alive(), 60)
        assert worker.alive(), worker.text()[-3000:]

        slot, service_id, location_id = first_slot(base)
        request_id = f"stack-{uuid.uuid4().hex[:12]}"
        email = f"stack-{uuid.uuid4().hex[:6]}@example.com"
        status, headers, body = http(
            f"{base}/api/v1/appointments",
            method="POST",
            body={
                "service_id": service_id,
                "location_id": location_id,
                "practitioner_id": slot["practitioner_id"],
                "start": slot["start"],
                "patient": {
                    "first_name": "Ana",
                    "last_name": "Silva",
                    "email": email,
                    "sms_consent": False,
                    "email_consent": True,
                },
            },
            headers={"X-Request-ID": request_id},
        )
        assert status == 201, body
        assert headers["X-Request-ID"] == request_id

        received = wait_until(lambda: [m for m in smtp.messages if email in m.rcpt_tos], 30)
        assert len(received) == 1, worker.text()[-3000:]

        # The worker's JSON line for that message carries the booking's request id.
        line = wait_until(
            lambda: [r for r in worker.json_lines() if r.get("request_id") == request_id and r.get("status") == "sent"],
            10,
        )
        assert line, worker.text()[-3000:]
        assert line[0]["kind"] == "confirmation" and line[0]["logger"] == "scheduler" and line[0]["message_id"]
        assert all({"time", "level", "logger", "message", "request_id"} <= set(r) for r in worker.json_lines())
        web_lines = web.json_lines()
        assert any(r.get("request_id") == request_id and r.get("route") == "/api/v1/appointments" for r in web_lines)

        # Metrics: the web's (every gunicorn process added up) and the worker's own.
        token = {"Authorization": f"Bearer {envs['web']['METRICS_TOKEN']}"}
        assert http(f"{base}/metrics")[0] == 401
        assert http(f"{base}/metrics", headers={"Authorization": "Bearer wrong-token"})[0] == 403
        status, _, scraped = http(f"{base}/metrics", headers=token)
        assert status == 200
        assert metric(scraped.decode(), "clinic_bookings_total", source="api") == 1.0
        assert metric(scraped.decode(), "clinic_database_up") == 1.0
        worker_metrics = f"http://127.0.0.1:{envs['worker']['WORKER_METRICS_PORT']}/metrics"
        status, _, scraped = http(worker_metrics, headers=token)
        assert status == 200
        sent = metric(scraped.decode(), "clinic_messages_total", kind="confirmation", channel="email", status="sent")
        assert sent == 1.0
        assert metric(scraped.decode(), "clinic_dispatch_lateness_seconds_count", channel="email") == 1.0
    finally:
        codes = {process.name: process.stop() for process in (worker, web)}
    assert codes == {"worker": 0, "web": 0}, (worker.text()[-2000:], web.text()[-2000:])
