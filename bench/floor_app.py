"""The stack's floor for a booking: a request of the booking's shape that does nothing else.

Served by gunicorn with the app's settings (``python -m bench.booking --floor``), on a database of
its own on the same PostgreSQL:

* ``POST /api/v1/appointments`` reads the JSON body, then runs one transaction with the round
  trips of a booking (``bench/roundtrips.py``: the pool's pre-ping, ``BEGIN``, nine statements,
  ``COMMIT``) through the app's engine (``booking_service.db.make_engine``: SQLAlchemy and
  psycopg, the same pool settings), the statements being ``SELECT 1``; answers 201 with a small
  JSON body.
* ``GET /healthz`` answers ``{"status": "ok"}`` as the app's does.

No validation, ORM, writes, rate limit, logs or metrics: what any booking on Flask, SQLAlchemy and
gunicorn costs before it does any of its work. Its bookings/s over its own ``/healthz`` per
second is the highest ratio the booking could reach on this stack and machine; the booking's
ratio is read against it (docs/benchmarks.md, "Hot paths").
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, request
from sqlalchemy import text

from booking_service.db import make_engine

BOOKING_STATEMENTS = 9  # tests/test_statement_budget.py: a booking on PostgreSQL
_ONE = text("SELECT 1")


def create_floor_app() -> Flask:
    app = Flask(__name__)
    engine = make_engine(os.environ["DATABASE_URL"])

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/api/v1/appointments")
    def book():
        body = request.get_json()
        with engine.begin() as connection:
            for _ in range(BOOKING_STATEMENTS):
                connection.execute(_ONE)
        return jsonify(id=1, start=body["start"], status="booked"), 201

    return app
