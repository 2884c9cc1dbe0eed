"""Start the web app and the worker side by side for the demo (``make run``).

Console transports by default, so every message is printed instead of sent. Ctrl-C stops both.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from booking_service.demo import DEMO_LOGINS


def _stop(_signum, _frame) -> None:
    raise KeyboardInterrupt  # SIGTERM stops both children the same way Ctrl-C does


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{args.port}")
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
