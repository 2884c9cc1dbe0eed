"""Start the web app and the worker side by side for the demo (``make run``).

Console transports by default, so every message is printed instead of sent. Ctrl-C stops both.
The port is ``--port``, else ``PORT``, else 5000 (``make run PORT=8080``); ``PUBLIC_BASE_URL``
follows it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

from booking_service.config import DEFAULT_PORT
from booking_service.demo import DEMO_LOGINS

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _stop(_signum, _frame) -> None:
    raise KeyboardInterrupt  # SIGTERM stops both children the same way Ctrl-C does


def demo_environment(port: int, environ: dict[str, str]) -> dict[str, str]:
    """The web app's and the worker's environment for a demo on ``port``: ``PORT`` set, and
    ``PUBLIC_BASE_URL`` (the address in every link sent) on that port unless given. A given
    local ``PUBLIC_BASE_URL`` on another port is refused (SystemExit with the fix): its links
    would lead nowhere."""
    env = dict(environ, PORT=str(port))
    given = env.get("PUBLIC_BASE_URL")
    if not given:
        env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        return env
    parts = urlsplit(given)
    if parts.hostname in LOCAL_HOSTS and (parts.port or 80) != port:
        raise SystemExit(
            f"PUBLIC_BASE_URL is {given} but the demo listens on port {port}: links in messages would "
            f"lead nowhere. Unset PUBLIC_BASE_URL, or set it to http://127.0.0.1:{port}."
        )
    return env


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or DEFAULT_PORT))
    args = parser.parse_args()
    env = demo_environment(args.port, dict(os.environ))
    web = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "booking_service", "run", "--port", str(args.port)], env=env
    )
    worker = subprocess.Popen([sys.executable, "-m", "scheduler"], env=env)
    time.sleep(1.5)
    print("\n" + "=" * 64)
    print(f"  Patient booking:  {env['PUBLIC_BASE_URL']}/")
    print(f"  JSON API:         {env['PUBLIC_BASE_URL']}/api/v1/openapi.json")
    for email, role, password in DEMO_LOGINS:
        print(f"  Staff login ({role}): {email} / {password}")
    print("  Messages are printed here by the worker (console transports).  Ctrl-C stops.")
    print("=" * 64 + "\n", flush=True)
    processes = (web, worker)
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    return max((p.returncode or 0) for p in processes)


if __name__ == "__main__":
    sys.exit(main())
