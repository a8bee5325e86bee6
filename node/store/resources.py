"""Reading and writing resource rows and their search-index rows on one connection.

These functions do no FHIR logic (ids, versions, validation live in :mod:`node.fhir.service`); they
move prepared rows in and out, so a whole transaction Bundle or an ingest batch is one database
transaction that commits or rolls back as a unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from node.fhir.extract import IndexEntries
from node.store.models import (
    Resource,
    ResourceHistory,
    SearchDate,
    SearchReference,
    SearchString,
    SearchToken,
)

__all__ = [
    "StoredResource",
    "delete_index",
    "get_current",
    "get_many",
    "get_version",
    "history",
    "insert_index",
    "move_to_history",
    "put_current",
]

RESOURCE = Resource.__table__  # type: ignore[attr-defined]
HISTORY = ResourceHistory.__table__  # type: ignore[attr-defined]
TOKEN = SearchToken.__table__  # type: ignore[attr-defined]
STRING = SearchString.__table__  # type: ignore[attr-defined]
DATE = SearchDate.__table__  # type: ignore[attr-defined]
REFERENCE = SearchReference.__table__  # type: ignore[attr-defined]
_INDEX_TABLES = (TOKEN, STRING, DATE, REFERENCE)
_RESOURCE_COLUMNS = ("resource_type", "id", "version_id", "last_updated", "deleted", "content")


@dataclass(frozen=True, slots=True)
class StoredResource:
    """One version of a resource as stored."""

    resource_type: str
    id: str
    version_id: int
    last_updated: int
    deleted: bool
    content: bytes


def _row(row: Any) -> StoredResource:
    return StoredResource(row[0], row[1], row[2], row[3], bool(row[4]), bytes(row[5]))


def _columns(table: sa.Table) -> tuple[sa.ColumnElement[object], ...]:
    c = table.c
    return (c.resource_type, c.id, c.version_id, c.last_updated, c.deleted, c.content)


def get_current(
    conn: Connection, resource_type: str, resource_id: str, *, for_update: bool = False
) -> StoredResource | None:
    """The current version (possibly a deletion marker), or None if the id was never used."""
    stmt = sa.select(*_columns(RESOURCE)).where(RESOURCE.c.resource_type == resource_type, RESOURCE.c.id == resource_id)
    if for_update and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    return _row(row) if row is not None else None


def get_many(conn: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredResource]:
    """Current, non-deleted resources for the given (type, id) keys."""
    by_type: dict[str, list[str]] = {}
    for resource_type, resource_id in keys:
        by_type.setdefault(resource_type, []).append(resource_id)
    found: dict[tuple[str, str], StoredResource] = {}
    for resource_type, ids in by_type.items():
        for start in range(0, len(ids), 500):
            stmt = sa.select(*_columns(RESOURCE)).where(
                RESOURCE.c.resource_type == resource_type,
                RESOURCE.c.id.in_(ids[start : start + 500]),
                RESOURCE.c.deleted == sa.false(),
            )
            for row in conn.execute(stmt):
                stored = _row(row)
                found[(stored.resource_type, stored.id)] = stored
    return found


def get_version(conn: Connection, resource_type: str, resource_id: str, version_id: int) -> StoredResource | None:
    """One specific version, current or historical."""
    current = get_current(conn, resource_type, resource_id)
    if current is not None and current.version_id == version_id:
        return current
    row = conn.execute(
        sa.select(*_columns(HISTORY)).where(
            HISTORY.c.resource_type == resource_type,
            HISTORY.c.id == resource_id,
            HISTORY.c.version_id == version_id,
        )
    ).first()
    return _row(row) if row is not None else None


def history(conn: Connection, resource_type: str, resource_id: str) -> list[StoredResource]:
    """All versions, newest first."""
    versions = [
        _row(row)
        for row in conn.execute(
            sa.select(*_columns(HISTORY)).where(HISTORY.c.resource_type == resource_type, HISTORY.c.id == resource_id)
        )
    ]
    current = get_current(conn, resource_type, resource_id)
    if current is not None:
        versions.append(current)
    return sorted(versions, key=lambda v: v.version_id, reverse=True)


def _values(stored: StoredResource) -> dict[str, object]:
    return {
        "resource_type": stored.resource_type,
        "id": stored.id,
        "version_id": stored.version_id,
        "last_updated": stored.last_updated,
        "deleted": stored.deleted,
        "content": stored.content,
    }


def move_to_history(conn: Connection, current: StoredResource) -> None:
    """Copy the current version into the history table (before it is replaced)."""
    conn.execute(HISTORY.insert(), [_values(current)])


def put_current(conn: Connection, versions: Sequence[StoredResource], *, replace: bool) -> None:
    """Insert new current rows, or (``replace``) overwrite existing ones."""
    if not versions:
        return
    if not replace:
        rows = [(v.resource_type, v.id, v.version_id, v.last_updated, v.deleted, v.content) for v in versions]
        _insert_rows(conn, RESOURCE, _RESOURCE_COLUMNS, rows)
        return
    for v in versions:
        conn.execute(
            RESOURCE.update()
            .where(RESOURCE.c.resource_type == v.resource_type, RESOURCE.c.id == v.id)
            .values(
                version_id=v.version_id,
                last_updated=v.last_updated,
                deleted=v.deleted,
                content=v.content,
            )
        )


def delete_index(conn: Connection, resource_type: str, resource_id: str) -> None:
    """Remove every search-index row of one resource."""
    for table in _INDEX_TABLES:
        conn.execute(table.delete().where(table.c.resource_type == resource_type, table.c.resource_id == resource_id))


def _insert_rows(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[tuple[object, ...]],
    *,
    ignore_duplicates: bool = False,
) -> None:
    """Bulk insert through the driver: the ingest hot path, where SQLAlchemy's per-row parameter
    processing would cost more than SQLite's own work. Table and column names are ours, never input."""
    if not rows:
        return
    sqlite = conn.dialect.name == "sqlite"
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    verb = "INSERT OR IGNORE" if sqlite and ignore_duplicates else "INSERT"
    tail = " ON CONFLICT DO NOTHING" if ignore_duplicates and not sqlite else ""
    placeholders = ", ".join([mark] * len(columns))
    statement = f"{verb} INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders}){tail}"
    conn.exec_driver_sql(statement, rows)


_TOKEN_COLUMNS = ("resource_type", "resource_id", "param", "system", "code", "date_low", "date_high")
_STRING_COLUMNS = ("resource_type", "resource_id", "param", "value_norm", "value_exact")
_DATE_COLUMNS = ("resource_type", "resource_id", "param", "low", "high")
_REFERENCE_COLUMNS = ("resource_type", "resource_id", "param", "target_type", "target_id")


def insert_index(conn: Connection, entries: Iterable[tuple[str, str, IndexEntries]]) -> None:
    """Insert index rows for many resources at once: (type, id, entries) each."""
    tokens: list[tuple[object, ...]] = []
    strings: list[tuple[object, ...]] = []
    dates: list[tuple[object, ...]] = []
    references: list[tuple[object, ...]] = []
    for resource_type, resource_id, index in entries:
        low, high = index.primary_date if index.primary_date is not None else (None, None)
        tokens += [(resource_type, resource_id, p, system, code, low, high) for p, system, code in index.tokens]
        strings += [(resource_type, resource_id, p, norm, exact) for p, norm, exact in index.strings]
        dates += [(resource_type, resource_id, p, d_low, d_high) for p, d_low, d_high in index.dates]
        references += [(resource_type, resource_id, p, tt, ti) for p, tt, ti in index.references]
    # Index keys are unique by construction; a duplicate would be harmless, so it is never an error.
    _insert_rows(conn, TOKEN, _TOKEN_COLUMNS, tokens, ignore_duplicates=True)
    _insert_rows(conn, STRING, _STRING_COLUMNS, strings, ignore_duplicates=True)
    _insert_rows(conn, DATE, _DATE_COLUMNS, dates, ignore_duplicates=True)
    _insert_rows(conn, REFERENCE, _REFERENCE_COLUMNS, references, ignore_duplicates=True)
