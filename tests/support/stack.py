"""The compose stack's own commands, run as processes on this machine (no Docker here).

``docker-compose.yml`` is the source: :func:`service_environment` resolves a service's
``environment`` the way ``docker compose`` does (``${NAME}``, ``${NAME:-default}``,
``${NAME:?error}``, nested) from a ``.env``-like mapping, and :func:`command` turns its
``command`` into one this checkout can run (``flask``, ``gunicorn`` and ``python`` from the
test's own virtual environment). :class:`Process` starts one with its output in a log file;
the tests then replace only what names another container (the database, Redis, the mail
catcher, the public address) by this machine's.

    web = Process.start("web-1", command(compose()["services"]["web"], "--bind", "127.0.0.1:8001"), env, tmp)
    wait_for_http("http://127.0.0.1:8001/readyz")
    web.stop()  # SIGTERM, then the exit status

:func:`stack_environment` is a service's environment with those few values replaced, and
:class:`Stack` runs any number of web and worker processes of one such stack (the scale-out and
fault tests: ``tests/test_scale_out.py``, ``tests/test_faults.py``). The fixtures that give a
stack its own PostgreSQL database and Redis are in ``tests/support/stack_fixtures.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import yaml

from booking_service.config import VARIABLES

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def app_services(spec: dict | None = None) -> dict[str, dict]:
    """The services built from this repository (the migration, web and worker)."""
    spec = spec or compose()
    return {name: service for name, service in spec["services"].items() if "build" in service}


def read_env_file(path: Path = ENV_EXAMPLE, *, commented: bool = False) -> dict[str, str]:
    """``NAME=value`` lines of a ``.env`` file; with ``commented``, also ``# NAME=value`` ones."""
    found: dict[str, str] = {}
    pattern = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")
    for line in path.read_text().splitlines():
        match = pattern.match(line.strip())
        if match and (commented or not match.group(1)):
            found.setdefault(match.group(2), match.group(3).strip())
    return found


def filled_example() -> dict[str, str]:
    """``.env.example`` as an operator fills it: every value it leaves empty given one."""
    values = read_env_file()
    return {name: value or f"filled-{name.lower()}-0123456789abcdef" for name, value in values.items()}


class InterpolationError(ValueError):
    pass


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation of one string."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("${", i):
            depth, j = 1, i + 2
            while depth:
                if j >= len(value):
                    raise InterpolationError(f"unclosed ${{ in {value!r}")
                if value.startswith("${", j):
                    depth, j = depth + 1, j + 2
                elif value[j] == "}":
                    depth, j = depth - 1, j + 1
                else:
                    j += 1
            out.append(_expand(value[i + 2 : j - 1], env))
            i = j
        elif value[i] == "$" and (match := _NAME.match(value, i + 1)):
            out.append(env.get(match.group(0), ""))
            i = match.end()
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _expand(inner: str, env: Mapping[str, str]) -> str:
    match = _NAME.match(inner)
    if not match:
        raise InterpolationError(f"bad variable {inner!r}")
    name, rest = match.group(0), inner[match.end() :]
    value = env.get(name)
    if not rest:
        return value or ""
    for operator in (":-", "-", ":?", "?"):
        if rest.startswith(operator):
            argument = rest[len(operator) :]
            unset = value is None or (operator.startswith(":") and value == "")
            if operator.endswith("-"):
                return interpolate(argument, env) if unset else value
            if unset:
                raise InterpolationError(f"{name}: {interpolate(argument, env)}")
            return value
    raise InterpolationError(f"unsupported interpolation ${{{inner}}}")


def variables_used(text: str) -> set[str]:
    """Every variable name a compose file interpolates."""
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def service_environment(service: dict, dotenv: Mapping[str, str]) -> dict[str, str]:
    """What a container of ``service`` gets: its ``env_file`` (``dotenv`` stands for ``.env``),
    then its ``environment`` interpolated from ``dotenv``, as ``docker compose`` does."""
    env = dict(dotenv) if service.get("env_file") else {}
    for name, value in (service.get("environment") or {}).items():
        env[name] = interpolate(str(value), dotenv)
    return env


def command(service: dict, *extra: str) -> list[str]:
    """The service's command with this checkout's executables (the test's virtual environment)."""
    argv = [str(part) for part in service["command"]]
    bin_dir = Path(sys.executable).parent
    if argv[0] == "python":
        argv[0] = sys.executable
    elif (bin_dir / argv[0]).exists():
        argv[0] = str(bin_dir / argv[0])
    return [*argv, *extra]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(argv: list[str], env: Mapping[str, str], *, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, env=dict(env), capture_output=True, text=True, timeout=timeout)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path
    terminated: bool = False

    @classmethod
    def start(cls, name: str, argv: list[str], env: Mapping[str, str], directory: Path) -> Process:
        log = directory / f"{name}.log"
        with log.open("w") as out:
            popen = subprocess.Popen(argv, cwd=REPO, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
        return cls(name, popen, log)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def json_lines(self) -> list[dict]:
        """The log's lines that are JSON objects (``LOG_FORMAT=json``)."""
        found = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    found.append(json.loads(line))
        return found

    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self) -> None:
        """SIGTERM, once; :meth:`stop` then waits."""
        if self.popen.poll() is None and not self.terminated:
            self.popen.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, wait; SIGKILL if it does not stop in ``timeout``. Returns the exit status."""
        if self.popen.poll() is None:
            self.terminate()
            try:
                return self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait()


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


def http(
    url: str, *, method: str = "GET", body: dict | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request; (status, headers, body) whatever the status."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_for_http(url: str, process: Process | None = None, timeout: float = 60) -> bool:
    def ready() -> bool:
        if process is not None and not process.alive():
            raise AssertionError(f"{process.name} exited:\n{process.text()[-3000:]}")
        try:
            return http(url)[0] == 200
        except OSError:
            return False

    return bool(wait_until(ready, timeout, interval=0.2))


def environ_without(*prefixes: str) -> dict[str, str]:
    """This process's environment less the variables a test must not leak into the stack."""
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


# --- a stack of the compose file's services, run here ----------------------------------------------


def stack_environment(
    service: str,
    *,
    database_url: str,
    redis_url: str,
    smtp_port: int,
    web_port: int,
    tmp_path: Path,
    **overrides: str,
) -> dict[str, str]:
    """A service's environment from docker-compose.yml and a filled .env.example, with only
    what names another container (or this machine's paths) replaced, then ``overrides``."""
    env = service_environment(app_services()[service], filled_example())
    local = {
        "DATABASE_URL": database_url,  # postgres:5432
        "RATELIMIT_STORAGE_URI": redis_url,  # redis:6379
        "SMTP_HOST": "127.0.0.1",  # mailpit
        "SMTP_PORT": str(smtp_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
        "INSTANCE_DIR": str(tmp_path),
        "METRICS_TOKEN": "stack-metrics-token-0123456789",
        "SCHEDULER_POLL_SECONDS": "0.5",
    }
    if service == "web":
        local["WEB_CONCURRENCY"] = "2"
    if service == "worker":
        local["WORKER_METRICS_PORT"] = str(free_port())
    local.update(overrides)
    assert set(local) <= set(VARIABLES), set(local) - set(VARIABLES)
    return {"PATH": os.environ.get("PATH", ""), **env, **local}


class Stack:
    """Web (gunicorn) and worker (``python -m scheduler``) processes of one stack on this machine,
    as many of each as asked: they share the database, Redis and the mail catcher given.

        with Stack(tmp_path, database_url=..., redis_url=..., smtp_port=...) as stack:
            stack.migrate()
            a, b = stack.start_web(), stack.start_web()
            stack.start_worker(); stack.start_worker()
            stack.wait_ready()
            http(f"{a.base}/readyz")
        # every process got SIGTERM; stack.exit_codes holds their exit statuses

    ``overrides`` (variables of the configuration contract) apply to every process.
    """

    def __init__(self, tmp_path: Path, *, database_url: str, redis_url: str, smtp_port: int, **overrides: str) -> None:
        self.tmp_path = tmp_path
        self.web_ports: list[int] = []
        self.webs: list[Web] = []
        self.workers: list[Process] = []
        self.exit_codes: dict[str, int] = {}
        self._options = {
            "database_url": database_url,
            "redis_url": redis_url,
            "smtp_port": smtp_port,
            "tmp_path": tmp_path,
            **overrides,
        }
        self._public_port = free_port()  # PUBLIC_BASE_URL: the first web process's address

    def environment(self, service: str) -> dict[str, str]:
        return stack_environment(service, web_port=self._public_port, **self._options)

    def migrate(self) -> None:
        """The ``migrate`` service: ``flask db upgrade``."""
        migrated = run(command(app_services()["migrate"]), self.environment("migrate"))
        assert migrated.returncode == 0, migrated.stderr

    def start_web(self, **overrides: str) -> Web:
        """One more ``web`` service: a gunicorn (its ``WEB_CONCURRENCY`` processes) on a port of its own."""
        port = self._public_port if not self.webs else free_port()
        env = {**self.environment("web"), **overrides}
        name = f"web-{len(self.webs) + 1}"
        process = Process.start(name, command(app_services()["web"], "--bind", f"127.0.0.1:{port}"), env, self.tmp_path)
        web = Web(name, process.popen, process.log, base=f"http://127.0.0.1:{port}")
        self.webs.append(web)
        return web

    def start_worker(self, **overrides: str) -> Process:
        """One more ``worker`` replica (its own metrics port)."""
        env = {**self.environment("worker"), **overrides}
        worker = Process.start(f"worker-{len(self.workers) + 1}", command(app_services()["worker"]), env, self.tmp_path)
        self.workers.append(worker)
        return worker

    def wait_ready(self, timeout: float = 90) -> None:
        """Every web answers ``/readyz`` and every worker has logged its start."""
        for web in self.webs:
            assert wait_for_http(f"{web.base}/readyz", web, timeout), web.text()[-3000:]
        for worker in self.workers:
            assert wait_until(lambda w=worker: " started: " in w.text() or not w.alive(), timeout)
            assert worker.alive(), worker.text()[-3000:]

    def logs(self) -> str:
        """The tail of every process's log, for an assertion message."""
        return "\n".join(f"--- {p.name}\n{p.text()[-2500:]}" for p in [*self.webs, *self.workers])

    def stop(self) -> dict[str, int]:
        """SIGTERM to every process, the workers first (their in-flight sends finish), then the
        web services; their exit statuses by name."""
        for group in (self.workers, self.webs):
            running = [p for p in group if p.name not in self.exit_codes]
            for process in running:
                process.terminate()
            for process in running:
                self.exit_codes[process.name] = process.stop()
        return self.exit_codes

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class Web(Process):
    base: str = ""


def first_slot(base: str) -> tuple[dict, int, int]:
    """The first free slot of the first service at the first location, from two days ahead:
    (slot, service id, location id), through the public API."""
    services = json.loads(http(f"{base}/api/v1/services")[2])["services"]
    locations = json.loads(http(f"{base}/api/v1/locations")[2])["locations"]
    service_id, location_id = services[0]["id"], locations[0]["id"]
    slots = free_slots(base, service_id, location_id)
    assert slots, "the demo clinic has free slots"
    return slots[0], service_id, location_id


def free_slots(base: str, service_id: int, location_id: int, *, days_ahead: int = 2, days: int = 10) -> list[dict]:
    """``GET /api/v1/availability`` for ``days`` days from ``days_ahead`` days ahead."""
    start = date.today() + timedelta(days=days_ahead)
    status, _, body = http(
        f"{base}/api/v1/availability?service_id={service_id}&location_id={location_id}"
        f"&start={start.isoformat()}&end={(start + timedelta(days=days)).isoformat()}"
    )
    assert status == 200, body
    return json.loads(body)["slots"]


def client_address() -> str:
    """A random address in 10.0.0.0/8 to send as ``X-Forwarded-For`` (the stack trusts one
    proxy): a client of the test's own, whose rate-limit counters no other run shares."""
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def non_overlapping(slots: list[dict], minutes: int, count: int, *, avoid: list[dict] = ()) -> list[dict]:
    """``count`` of ``slots`` (from :func:`free_slots`) that no two of which, nor any of ``avoid``,
    hold one practitioner at once (visits of ``minutes``), in the order given."""
    length = timedelta(minutes=minutes)
    chosen: list[dict] = []
    for slot in slots:
        start = datetime.fromisoformat(slot["start"])
        busy = [s for s in [*avoid, *chosen] if s["practitioner_id"] == slot["practitioner_id"]]
        if all(abs(start - datetime.fromisoformat(s["start"])) >= length for s in busy):
            chosen.append(slot)
            if len(chosen) == count:
                return chosen
    raise AssertionError(f"fewer than {count} free slots that do not overlap")


class Console:
    """A staff member's browser on a web service's console, as the stack's TLS proxy passes it
    on: plain HTTP with ``X-Forwarded-Proto: https`` (the stack trusts one proxy), the
    ``Secure`` session cookie sent back, forms posted with their CSRF token."""

    def __init__(self, base: str) -> None:
        import requests

        self.base = base
        self.session = requests.Session()
        self.session.headers.update({"X-Forwarded-Proto": "https"})

    def get(self, path: str):
        return self._keep_cookies(self.session.get(self.base + path, timeout=15, allow_redirects=False))

    def post(self, path: str, data: dict[str, str]):
        token = re.search(r'name="csrf_token" value="([^"]+)"', self.get(path).text)
        assert token, f"no form with a CSRF token at {path}"
        referer = {"Referer": "https://" + self.base.split("://", 1)[1] + path}
        answer = self.session.post(
            self.base + path, data={**data, "csrf_token": token.group(1)}, headers=referer, timeout=15,
            allow_redirects=False,
        )  # fmt: skip
        return self._keep_cookies(answer)

    def login(self, email: str, password: str) -> None:
        answer = self.post("/staff/login", {"email": email, "password": password})
        assert answer.status_code == 302, answer.text[-2000:]

    def _keep_cookies(self, answer):
        for cookie in self.session.cookies:
            cookie.secure = False  # the browser's side of TLS is the proxy's; here it is plain HTTP
        return answer
