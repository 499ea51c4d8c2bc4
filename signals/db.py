"""Database plumbing: the declarative base, engines, sessions and the unit of work.

The outermost caller owns the transaction (a request, a job item, a CLI command): it uses
:func:`unit_of_work`, which commits once at the end or rolls back. Services only add and
flush.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC timestamp on every database (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC timestamp is required")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, decide when transactions begin (SAVEPOINT works then).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A writing unit of work takes the write lock at BEGIN: two processes writing at once then
    # wait for each other (busy_timeout) instead of failing with SQLITE_BUSY when a read turns
    # into a write. Readers begin deferred and, with WAL, never wait for a writer.
    if connection.get_execution_options().get("sqlite_begin") == "immediate":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite make the folder, turn on foreign keys and WAL."""
    # A database error's message would otherwise quote the statement's parameters (values
    # from a batch) into tracebacks and logs.
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # pysqlite keeps 128 prepared statements by SQL text; bulk inserts of varying row
        # counts (insertmanyvalues) each make a new, large text, and memory grew with every
        # chunk of a batch until the cache was full. A small cache keeps memory flat.
        engine = create_engine(url, connect_args={"cached_statements": 16}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def make_sessionmaker(engine: Engine, *, write: bool = True) -> sessionmaker[Session]:
    """Sessions for units of work that write (the default) or only read.

    The difference matters on SQLite only (see :func:`_sqlite_begin`).
    """
    if write:
        engine = engine.execution_options(sqlite_begin="immediate")
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit once when the block ends, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


_SQLITE_OUTAGES = ("locked", "busy", "unable to open", "disk I/O", "disk is full", "readonly")


def is_outage(error: BaseException | None) -> bool:
    """Whether ``error`` means the database is unreachable (not that a statement was wrong)."""
    if isinstance(error, sa_exc.TimeoutError):  # the pool had no connection to give
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated or isinstance(error, sa_exc.InterfaceError):
            return True
        if isinstance(error.orig, sqlite3.OperationalError):
            # SQLite reports a wrong statement ("no such table") as OperationalError too;
            # only a file it cannot use or a lock it cannot get is an outage.
            return any(sign in str(error.orig) for sign in _SQLITE_OUTAGES)
        return isinstance(error, sa_exc.OperationalError)
    return False
