"""The statement budget of the hot paths: a test fails when a request sends more statements to
the database than it did when the budget was set (bench/roundtrips.py prints them all).

Counted like bench/roundtrips.py's ``Traffic``: every statement the application executes
(``before_cursor_execute``), after warm-up requests, so per-process caches are as in production.
SQLite's explicit ``BEGIN`` (db.py sends it through the cursor) is left out: it is the
transaction, as psycopg's implicit one is on PostgreSQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, timedelta

from sqlalchemy import event
from sqlalchemy.engine import Engine

# Availability: the catalogue's version (clinic.cache) and the calendar's busy time.
AVAILABILITY_STATEMENTS = 2


@contextlib.contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The statements the application sends through ``engine`` inside the block."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        if statement.strip().upper() not in ("BEGIN", "BEGIN IMMEDIATE"):
            sent.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_an_availability_request_sends_the_version_and_the_busy_query_only(make_clinic, app):
    clinic = make_clinic()
    client = app.test_client()
    monday = date.today() + timedelta(days=14 - date.today().weekday())
    query = (
        f"/api/v1/availability?service_id={clinic.follow_up_id}&location_id={clinic.location_id}"
        f"&practitioner_id={clinic.practitioner_ids[0]}&start={monday}&end={monday + timedelta(days=6)}"
    )
    assert client.get(query).status_code == 200  # warm-up: the catalogue is loaded

    with statements(app.extensions["database"].engine) as sent:
        response = client.get(query)

    assert response.status_code == 200 and response.get_json()["slots"]
    assert len(sent) <= AVAILABILITY_STATEMENTS, "\n".join(sent)
    assert "catalogue_version" in sent[0] and "appointments" in sent[1]
