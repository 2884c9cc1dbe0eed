"""Start the web app and the worker side by side (``make run``).

On an empty database (no clinic, no staff user) it offers the choice: load the demo clinic (the
quick start's default), or set up your own clinic in the browser at ``/setup``. ``--demo yes``
(``make run DEMO=1``) loads the demo, ``--demo no`` (``make run DEMO=0``) goes straight to the
setup page; without either, a terminal is asked (Enter, or no answer within 60 seconds, means the
demo) and anything else, a script or a container without a terminal, never waits: the demo is
loaded and the way to set up your own clinic instead is printed. A database that holds a clinic
just starts.

Console transports by default, so every message is printed instead of sent. Ctrl-C stops both.
The port is ``--port``, else ``PORT``, else 5000 (``make run PORT=8080``); ``PUBLIC_BASE_URL``
follows it.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

from sqlalchemy import select as sql_select

from booking_service.config import DEFAULT_PORT
from booking_service.demo import DEMO_LOGINS

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

YES = ("1", "y", "yes", "true", "demo")
NO = ("0", "n", "no", "false", "setup")
PROMPT_SECONDS = 60
RULE = "=" * 68


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


def _database_state() -> tuple[bool, bool, bool]:
    """(whether this is a first run: no clinic and no staff user; whether the clinic's setup is
    complete: open for online booking; whether the demo admin exists)."""
    from booking_service import create_app
    from booking_service.staff.models import User
    from booking_service.usecases import first_run

    app = create_app()
    database = app.extensions["database"]
    try:
        with database.unit_of_work() as session:
            demo = session.scalar(sql_select(User.id).where(User.email == DEMO_LOGINS[0][0])) is not None
            return first_run.is_first_run(session), first_run.progress(session).complete, demo
    finally:
        database.dispose()


def _ask(base_url: str) -> bool:
    """Ask on the terminal whether to load the demo; True for the demo. Enter, end of input or
    no answer within PROMPT_SECONDS: the demo."""
    print(f"\n{RULE}")
    print("  This database is empty: no clinic yet. Choose how to start:")
    print("    1  Load the demo clinic (practitioners, services, appointments, staff logins)  (default)")
    print(f"    2  Set up your own clinic in the browser at {base_url}/setup")
    print(RULE)
    print(f"Your choice [1/2] (Enter or {PROMPT_SECONDS} s: 1): ", end="", flush=True)
    ready, _, _ = select.select([sys.stdin], [], [], PROMPT_SECONDS)
    answer = sys.stdin.readline().strip().lower() if ready else ""
    if not ready:
        print()
    return answer not in ("2", *NO)


def _load_demo() -> int:
    """``flask seed-demo --if-empty``, the same command as by hand; its output is shown."""
    return subprocess.call([sys.executable, "-m", "flask", "--app", "booking_service", "seed-demo", "--if-empty"])


def _banner(base_url: str, *, first_run: bool, complete: bool, demo: bool) -> None:
    print(f"\n{RULE}")
    if first_run:
        print("  No clinic yet. Set up your own clinic in the browser:")
        print(f"      {base_url}/setup")
        print("  Or load the demo clinic instead: Ctrl-C, then `make run DEMO=1`.")
    elif not complete:
        print("  The clinic's setup is not finished. Sign in and continue it at:")
        print(f"      {base_url}/staff/first-run")
    else:
        print(f"  Patient booking:  {base_url}/")
        print(f"  Staff console:    {base_url}/staff")
        print(f"  JSON API:         {base_url}/api/v1/openapi.json")
        if demo:
            for email, role, password in DEMO_LOGINS:
                print(f"  Staff login ({role}): {email} / {password}")
            print("  Your own clinic instead: Ctrl-C, then start from an empty database:")
            print("      rm -r instance && make run DEMO=0   (the guided setup at /setup)")
    print("  Messages are printed here by the worker (console transports).  Ctrl-C stops.")
    print(RULE + "\n", flush=True)


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or DEFAULT_PORT))
    parser.add_argument(
        "--demo",
        default="",
        help="On an empty database: yes (1) loads the demo clinic, no (0) offers the setup page; "
        "left out, a terminal is asked and anything else gets the setup page.",
    )
    args = parser.parse_args()
    choice = args.demo.strip().lower()
    if choice and choice not in YES + NO:
        parser.error(f"--demo takes yes (1) or no (0), not {args.demo!r}")
    env = demo_environment(args.port, dict(os.environ))
    base_url = env["PUBLIC_BASE_URL"].rstrip("/")

    first_run, complete, demo = _database_state()
    if first_run:
        wants_demo = choice in YES if choice else (not sys.stdin.isatty() or _ask(base_url))
        if wants_demo:
            if _load_demo() != 0:
                return 1
            first_run, complete, demo = _database_state()
    elif choice in YES:
        print("The database is not empty: the demo clinic is loaded only into an empty one.")

    web = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "booking_service", "run", "--port", str(args.port)], env=env
    )
    worker = subprocess.Popen([sys.executable, "-m", "scheduler"], env=env)
    time.sleep(1.5)
    _banner(base_url, first_run=first_run, complete=complete, demo=demo)
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
