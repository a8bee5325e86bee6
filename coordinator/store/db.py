"""Engines for the coordinator's database: SQLite (WAL, one file) by default, PostgreSQL by URL.

The engine recipe is a copy of ``node/store/db.py`` (node and coordinator never import each other;
the recipe is too small to earn a place in ``common``, which imports no ORM). Keep the two in step.

Every repository function of the coordinator's store takes ``db``: an :class:`Engine`, in which case
the function runs in its own transaction, or a :class:`Connection` inside a transaction the caller
owns, so several calls can commit together (``with write_transaction(engine) as conn: ...``).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from common.errors import ConfigError

__all__ = [
    "Db",
    "insert_ignoring_duplicates",
    "is_sqlite",
    "make_engine",
    "now_micros",
    "reading",
    "write_transaction",
    "writing",
]

Db = Engine | Connection


def now_micros() -> int:
    """The current time as integer epoch microseconds (UTC), the store's one time format."""
    return time.time_ns() // 1000


def _normalise_url(url: str) -> str:
    # psycopg 3 is the driver medfed ships; plain postgresql:// would ask for psycopg2.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # medfed emits BEGIN itself (see _begin_sqlite)
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while the channel writes; NORMAL is durable at checkpoints and the usual
    # pairing with WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create the engine for ``url``; raises ConfigError for a URL SQLAlchemy cannot use."""
    try:
        # A server connection can die between uses (a restart, an idle timeout), so it is pinged on
        # checkout; a SQLite file cannot, and the ping would cost a statement per transaction.
        normalised = _normalise_url(url)
        engine = sa.create_engine(normalised, pool_pre_ping=not normalised.startswith("sqlite"))
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise ConfigError(detail=f"unusable database URL ({type(exc).__name__})") from exc
    if is_sqlite(engine):
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _begin_sqlite)
    return engine


def is_sqlite(db: Db) -> bool:
    """True when the engine (or connection) talks to SQLite."""
    return db.dialect.name == "sqlite"


def _begin_sqlite(conn: Connection) -> None:
    # pysqlite's own transaction handling is off (see make_engine); a write transaction takes the
    # write lock up front, so two writers queue on busy_timeout instead of failing to upgrade.
    write = conn.get_execution_options().get("medfed_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(engine: Engine) -> threading.RLock | None:
    """One lock per SQLite engine: writers of this process queue on it, not on SQLite's busy handler.

    SQLite's busy handler retries a locked database by sleeping 1, 2, 5, 10, ... ms, so concurrent
    writers in one process (a node's poll and its reply, several nodes' replies at the coordinator)
    would each lose several milliseconds; a lock hands over at once. Other processes still meet the
    busy handler, as before.
    """
    if not is_sqlite(engine):
        return None
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(engine)
        if lock is None:
            lock = _WRITE_LOCKS[engine] = threading.RLock()
        return lock


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction meant to write: commits on success, rolls back on any exception."""
    lock = _write_lock(engine)
    with contextlib.ExitStack() as stack:
        if lock is not None:
            stack.enter_context(lock)
        conn = stack.enter_context(engine.connect().execution_options(medfed_write=True))
        stack.enter_context(conn.begin())
        yield conn


@contextmanager
def writing(db: Db) -> Iterator[Connection]:
    """A connection to write on: the caller's (its transaction, its commit) or a new write transaction."""
    if isinstance(db, Connection):
        yield db
    else:
        with write_transaction(db) as conn:
            yield conn


@contextmanager
def reading(db: Db) -> Iterator[Connection]:
    """A connection to read on: the caller's, or a new one closed afterwards."""
    if isinstance(db, Connection):
        yield db
    else:
        with db.connect() as conn:
            yield conn


def insert_ignoring_duplicates(conn: Connection, table: sa.Table, values: Mapping[str, Any]) -> bool:
    """Insert one row unless its primary or unique key exists; True when the row was inserted.

    ``ON CONFLICT DO NOTHING`` on both databases, so a duplicate neither raises nor aborts the
    caller's PostgreSQL transaction.
    """
    result = conn.execute(_insert_ignoring(table, conn.dialect.name), dict(values))
    return bool(result.rowcount)


@functools.cache
def _insert_ignoring(table: sa.Table, dialect: str) -> sa.Insert:
    # Built once per table: a statement object reused with parameters skips SQLAlchemy's expression
    # building and cache-key work, which dominate a one-row insert on the channel's hot path.
    # rowcount of an INSERT is kept only when asked for (SQLAlchemy 2.1; UPDATE and DELETE always keep it).
    insert = sqlite.insert(table) if dialect == "sqlite" else postgresql.insert(table)
    return insert.on_conflict_do_nothing().execution_options(preserve_rowcount=True)
