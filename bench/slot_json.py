"""Benchmark: writing the slot list of ``GET /api/v1/availability``, before and after orjson, in
one process (no database, no HTTP).

    .venv/bin/python -m bench.slot_json [--repeat 300]

Slots as the search returns them (UTC instants, 15-minute grid, 30-minute visits, weekdays
09:00-17:00 in Toronto) for 128 and 2254 slots: a practitioner's week and four practitioners'
month in the demo clinic. Two ways, interleaved within each repetition:

before   ``AvailabilitySchema().dump(serializers.availability(...))`` written by Flask's JSON
         provider (``jsonify``, compact), what the view did until issue 13;
after    ``serializers.availability_json(...)``: orjson straight from the aware datetimes.

Both must give the same bytes (checked first). CPU time per call, p50 and p95.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import load_average, percentile, table  # noqa: E402


def make_slots(count: int, practitioners: int) -> list:
    from booking_service.scheduling.availability import Slot

    slots: list[Slot] = []
    day = datetime(2026, 11, 30, 14, tzinfo=UTC)  # Monday 09:00 in Toronto
    while len(slots) < count:
        if day.weekday() < 5:
            for step in range(0, 8 * 60 - 30, 15):
                for p in range(1, practitioners + 1):
                    start = day + timedelta(minutes=step)
                    slots.append(Slot(start=start, end=start + timedelta(minutes=30), practitioner_id=p))
        day += timedelta(days=1)
    return slots[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slot_json", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args(argv)

    from flask import Flask, jsonify

    from booking_service.api import serializers
    from booking_service.api.schemas import AvailabilitySchema
    from booking_service.clinic.models import Location

    app = Flask(__name__)
    app.json.sort_keys = False  # as create_app sets it
    location = Location(name="Downtown", timezone="America/Toronto")
    schema = AvailabilitySchema()
    rows = []
    with app.app_context():
        for label, slots in (("128 slots", make_slots(128, 1)), ("2254 slots", make_slots(2254, 4))):
            ways = {
                "before: schema + Flask JSON": lambda s=slots: jsonify(
                    schema.dump(serializers.availability(s, location))
                ).get_data(),
                "after: orjson": lambda s=slots: serializers.availability_json(s, location),
            }
            bodies = {name: way() for name, way in ways.items()}
            if len(set(bodies.values())) != 1:
                print(f"bench.slot_json: the two bodies differ for {label}", file=sys.stderr)
                return 1
            samples: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(args.repeat):
                for name, way in ways.items():
                    started = time.process_time()
                    way()
                    samples[name].append((time.process_time() - started) * 1000)
            for name, ms in samples.items():
                rows.append((label, name, len(bodies[name]), percentile(ms, 50), percentile(ms, 95)))
    print(f"bench.slot_json: {args.repeat} repetitions, interleaved; load average {load_average()}")
    print(table(["slots", "way", "bytes", "CPU p50 ms", "CPU p95 ms"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
