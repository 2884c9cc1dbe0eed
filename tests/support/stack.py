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
"""

from __future__ import annotations

import contextlib
import json
import os
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
from pathlib import Path

import yaml

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

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, wait; SIGKILL if it does not stop in ``timeout``. Returns the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
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
