"""Engines for the node's database: SQLite (WAL, one file) by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from common.errors import ConfigError

__all__ = ["is_sqlite", "make_engine", "write_transaction"]


def _normalise_url(url: str) -> str:
    # psycopg 3 is the driver medfed ships; plain postgresql:// would ask for psycopg2.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # medfed emits BEGIN itself (see _begin_sqlite)
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the FHIR API) run while an ingest writes; NORMAL is durable at checkpoints
    # and the usual pairing with WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-131072")  # 128 MiB
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


def is_sqlite(engine: Engine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


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
