"""Database plumbing shared by the web app, the worker, the CLI, the benchmarks and the tests.

- :class:`Base` gives every model one naming convention for constraints (Indico's habit), so
  migrations and error handling can refer to constraints by stable names.
- :class:`UTCDateTime` stores instants as UTC on both engines and refuses naive datetimes:
  SQLite would otherwise drop the offset of ``DateTime(timezone=True)`` without a word.
- :class:`Database` owns one engine and a session factory; nothing is built at import time.
- :func:`write_transaction` starts a transaction that holds the write lock from its first
  statement: ``BEGIN IMMEDIATE`` on SQLite, so a check-then-insert inside it cannot race.
- :func:`unavailable` tells an error of reaching the database (down, restarting, connection
  cut) from the database refusing a statement: the first is worth trying again.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    Insert,
    MetaData,
    Select,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
    select,
    union_all,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """The current instant, timezone-aware in UTC. The one clock of the code base."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """An instant. Python side: aware ``datetime`` (any zone in, UTC out). Naive values raise.

    Stored as naive UTC on SQLite (fixed-width text, so comparisons in SQL are correct) and as
    ``timestamptz`` on PostgreSQL.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(DateTime(timezone=False))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling begins lazily and cannot BEGIN IMMEDIATE: take it over
    # (SQLAlchemy's documented recipe), then choose the BEGIN per transaction.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if conn.get_execution_options().get("sqlite_immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """An engine for ``url`` configured for this application (SQLite pragmas, PG pooling)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"timeout": 30, "check_same_thread": False},
            poolclass=NullPool if ":memory:" not in url else None,
        )
        _configure_sqlite(engine)
        return engine
    # Sessions in UTC: timestamptz values come back already in UTC, so converting them is cheap
    # (measured: -20% on a 28-day availability load).
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"options": "-c timezone=UTC"},
    )


class Database:
    """One engine and its session factory. Created by ``create_app`` or by the worker."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo, pool_size=pool_size)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self.session_factory, "after_flush", _mark_wrote)
        event.listen(self.session_factory, "do_orm_execute", _mark_statement_wrote)
        event.listen(self.session_factory, "after_transaction_end", _clear_wrote)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self.session_factory()

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session committed on success and rolled back on error: one unit of work."""
        session = self.session_factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _mark_wrote(session: Session, _context) -> None:
    session.info["wrote"] = True


def _mark_statement_wrote(state) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info["wrote"] = True


def has_written(session: Session) -> bool:
    """Whether the session's transaction holds changes: flushed or executed through the session
    (INSERT, UPDATE, DELETE), or still pending. A use case that may fail half-way needs a
    savepoint only then (see ``scheduling.operations.book_slot``)."""
    return bool(session.info.get("wrote") or session.new or session.dirty or session.deleted)


def insert_with_children(
    session: Session, table: Table, row: dict, *, children: list[tuple[Table, tuple[str, ...], list[dict]]]
) -> int:
    """Insert ``row`` into ``table`` (with an integer ``id``) and, for each ``(child table,
    columns, rows)``, those rows with each of ``columns`` set to the new id; returns the id.

    PostgreSQL: ONE statement, the parent's ``INSERT ... RETURNING id`` feeding the children's
    inserts as data-modifying CTEs. SQLite: one statement per table that has rows. Each child
    list's dicts must share their keys. The statement of each shape (columns and row counts) is
    built once, with bound parameters.
    """
    filled = tuple((child, columns, rows) for child, columns, rows in children if rows)
    shape = (
        table,
        tuple(row),
        tuple(
            (child, columns, tuple(n for n in rows[0] if n not in columns), len(rows))
            for child, columns, rows in filled
        ),
    )
    if session.get_bind().dialect.name != "postgresql" or not filled:
        new_id = session.execute(_parent_insert(shape[:2]), row).scalar_one()
        for child, columns, rows in filled:
            session.execute(insert(child), [{**r, **dict.fromkeys(columns, new_id)} for r in rows])
        return new_id
    params = dict(row)
    for index, (_child, _columns, names, _count) in enumerate(shape[2]):
        for number, values in enumerate(filled[index][2]):
            params.update({f"c{index}_{number}_{name}": values[name] for name in names})
    return session.execute(_insert_with_children(shape), params).scalar_one()


def insert_instance(session: Session, model: type[Base], row: dict) -> Base:
    """Insert ``row`` (column values; not the id) into ``model``'s table with one plain
    ``INSERT ... RETURNING`` of every column, and return the persistent instance made of what was
    written (defaults included), in ``session`` without a query or a flush.

    For a hot path's single new row: no unit of work, and a refused insert raises here, at the
    statement, rather than at a later flush. Relationships are not set: see
    :func:`attach_written` and ``set_committed_value`` for related instances at hand.
    """
    written = session.execute(_returning_insert(model.__table__, tuple(row)), row).one()
    return attach_written(session, model, written._asdict())


def attach_written(session: Session, model: type[Base], values: dict) -> Base:
    """The persistent ``model`` instance of a row just written with ``values`` (every column,
    the id included; the model's attributes are named as its columns), added to ``session`` as
    loaded: reading it sends no query."""
    instance = model(**values)
    make_transient_to_detached(instance)
    session.add(instance)
    return instance


def _bound_insert(table: Table, names: tuple[str, ...]) -> Insert:
    """An INSERT of ``names`` into ``table``, each value a parameter of the same name."""
    return insert(table).values({name: bindparam(name, type_=table.c[name].type) for name in names})


@functools.cache
def _returning_insert(table: Table, names: tuple[str, ...]) -> Insert:
    return _bound_insert(table, names).returning(*table.c)


@functools.cache
def _parent_insert(shape: tuple) -> Insert:
    table, names = shape
    return _bound_insert(table, names).returning(table.c.id)


@functools.cache
def _insert_with_children(shape: tuple) -> Select:
    """The one statement of :func:`insert_with_children` on PostgreSQL, for one shape."""
    table, _names, children = shape
    new = _parent_insert(shape[:2]).cte(f"new_{table.name}")
    statement = select(new.c.id)
    for index, (child, columns, names, count) in enumerate(children):
        picks = [
            select(
                *(new.c.id.label(column) for column in columns),
                *(bindparam(f"c{index}_{number}_{name}", type_=child.c[name].type).label(name) for name in names),
            )
            for number in range(count)
        ]
        source = picks[0] if count == 1 else union_all(*picks)
        statement = statement.add_cte(insert(child).from_select([*columns, *names], source).cte(f"new_{child.name}"))
    return statement


def _clear_wrote(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop("wrote", None)
        session.info.pop("immediate", None)


def write_transaction(session: Session) -> None:
    """Begin ``session``'s transaction holding the database write lock from the first statement.

    SQLite: ``BEGIN IMMEDIATE`` (concurrent writers wait, up to the busy timeout). PostgreSQL:
    an ordinary transaction; races there are settled by constraints and row locks. Must be called
    before the session has changed anything in the current transaction, and before any savepoint
    (``session.begin_nested()``); calling it again in the same transaction does nothing.
    """
    if session.in_transaction():
        if session.get_bind().dialect.name != "sqlite" or session.info.get("wrote") or session.info.get("immediate"):
            return  # PostgreSQL needs nothing; a SQLite transaction begun IMMEDIATE, or that wrote, holds the lock
        if session.new or session.dirty or session.deleted or session.in_nested_transaction():
            raise RuntimeError("write_transaction() must come before any change or savepoint in the session")
        # Only reads ran in a deferred transaction: restart it as IMMEDIATE.
        session.rollback()
    session.connection(execution_options={"sqlite_immediate": True})
    session.info["immediate"] = True


def is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be used just now, rather than that it refused
    a statement: the connection was refused, reset or closed (a restart, a network cut), the
    server is shutting down or starting (SQLSTATE classes 08 and 57P), or SQLite stayed locked
    past its busy timeout. The same work can succeed once it is back; nothing was committed."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    if isinstance(exc.orig, sqlite3.Error):  # SQLite says it in words only
        words = str(exc.orig).lower()
        return "database is locked" in words or "unable to open" in words or "disk i/o error" in words
    state = getattr(exc.orig, "sqlstate", None)  # psycopg: None for a connection that failed or broke
    return state is None or state.startswith(("08", "57P"))


# How long a client is told to wait when the database is away (the ``Retry-After`` of a 503).
RETRY_AFTER_SECONDS = 30


def server_error_was_unavailable(error: BaseException) -> bool:
    """Whether a 500 (``InternalServerError``) came from the database being away
    (:func:`unavailable`): each surface then answers 503 with ``Retry-After`` and words that say
    nothing was saved, instead of "something went wrong"."""
    original = getattr(error, "original_exception", None)
    return original is not None and unavailable(original)


def describe_unavailable(exc: BaseException) -> str:
    """One line for a log: the driver's error class and the first line of its message."""
    cause = getattr(exc, "orig", None) or exc
    first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {first_line}" if first_line else type(cause).__name__
