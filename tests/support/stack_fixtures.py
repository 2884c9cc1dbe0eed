"""Fixtures for tests that run the stack's processes (``tests/support/stack.py``): a PostgreSQL
database of the test's own and this machine's Redis. Test modules load them with
``pytest_plugins = ["tests.support.stack_fixtures"]``.

PYTEST_DONT_REWRITE (imported as a plugin; its module has no asserts of its own).
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import PG_ADMIN_URL


@pytest.fixture(scope="module")
def stack_database() -> Iterator[str]:
    """A PostgreSQL database of the test module's own (the stack's ``postgres`` service): its URL."""
    import psycopg

    name = f"pbs_stack_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # no server: skip (a failure under REQUIRE_ALL)
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The stack's ``redis`` service: this machine's Redis, on a database number picked at
    random. Tests that count limits also use client addresses of their own
    (:func:`tests.support.stack.client_address`), so two runs sharing a number share no counter."""
    import redis

    url = f"redis://127.0.0.1:6379/{random.randint(1, 15)}"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        pytest.skip(f"Redis not reachable at 127.0.0.1:6379: {exc}")
    return url
