"""Reading and writing materialised view rows and the view registry on one connection.

No view logic here (definitions, evaluation and the write-path hook live in
:mod:`node.views.materialise`): these functions move rows, so replacing a resource's rows happens in
whatever transaction the caller has open, the one that writes the resource.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from node.store.models import Resource, ViewDefinitionRecord, ViewRow

__all__ = [
    "RegisteredView",
    "ViewRowValues",
    "current_resources",
    "definition_of",
    "delete_resource_rows",
    "delete_view_rows",
    "insert_view_rows",
    "mark_built",
    "note_failures",
    "read_view_rows",
    "register_view",
    "registered_views",
    "unregister_view",
]

REGISTRY = ViewDefinitionRecord.__table__  # type: ignore[attr-defined]
ROWS = ViewRow.__table__  # type: ignore[attr-defined]
RESOURCE = Resource.__table__  # type: ignore[attr-defined]
_ROW_COLUMNS = ("view_name", "resource_type", "resource_id", "ordinal", "patient_key", "row")
_LAST_ERROR_LENGTH = 500

# (view name, resource type, resource id, ordinal, patient key, row JSON)
ViewRowValues = tuple[str, str, str, int, str | None, bytes]


@dataclass(frozen=True, slots=True)
class RegisteredView:
    """A registry entry, without its definition bytes (see :func:`definition_of`)."""

    name: str
    resource_type: str
    digest: str
    built_at: int | None
    error_count: int
    last_error: str | None


def registered_views(conn: Connection) -> list[RegisteredView]:
    """Every registered view, by name."""
    c = REGISTRY.c
    stmt = sa.select(c.name, c.resource_type, c.digest, c.built_at, c.error_count, c.last_error).order_by(c.name)
    return [RegisteredView(*row) for row in conn.execute(stmt)]


def definition_of(conn: Connection, name: str) -> bytes | None:
    """The stored ViewDefinition JSON of a registered view, None if it is not registered."""
    value = conn.execute(sa.select(REGISTRY.c.definition).where(REGISTRY.c.name == name)).scalar()
    return None if value is None else bytes(value)


def register_view(conn: Connection, name: str, resource_type: str, definition: bytes, digest: str, now: int) -> None:
    """Insert or replace a registry entry; its rows are to be rebuilt (built_at cleared)."""
    conn.execute(REGISTRY.delete().where(REGISTRY.c.name == name))
    conn.execute(
        REGISTRY.insert().values(
            name=name,
            resource_type=resource_type,
            digest=digest,
            definition=definition,
            installed_at=now,
            built_at=None,
            error_count=0,
            last_error=None,
        )
    )


def unregister_view(conn: Connection, name: str) -> None:
    """Remove a view and all its rows."""
    delete_view_rows(conn, name)
    conn.execute(REGISTRY.delete().where(REGISTRY.c.name == name))


def mark_built(conn: Connection, name: str, now: int, failures: int, last_error: str | None) -> None:
    """Record a completed rebuild and how many resources it could not evaluate."""
    error = last_error[:_LAST_ERROR_LENGTH] if last_error else None
    conn.execute(
        REGISTRY.update().where(REGISTRY.c.name == name).values(built_at=now, error_count=failures, last_error=error)
    )


def note_failures(conn: Connection, name: str, count: int, last_error: str) -> None:
    """Add ``count`` resources that the view could not evaluate on a write."""
    conn.execute(
        REGISTRY.update()
        .where(REGISTRY.c.name == name)
        .values(error_count=REGISTRY.c.error_count + count, last_error=last_error[:_LAST_ERROR_LENGTH])
    )


def delete_view_rows(conn: Connection, name: str) -> None:
    """Remove every row of one view."""
    conn.execute(ROWS.delete().where(ROWS.c.view_name == name))


def delete_resource_rows(
    conn: Connection, names: Sequence[str], resource_type: str, resource_ids: Sequence[str]
) -> None:
    """Remove the rows that some resources (of one type) have in the named views."""
    if not names or not resource_ids:
        return
    for start in range(0, len(resource_ids), 500):
        conn.execute(
            ROWS.delete().where(
                ROWS.c.view_name.in_(names),
                ROWS.c.resource_type == resource_type,
                ROWS.c.resource_id.in_(resource_ids[start : start + 500]),
            )
        )


def insert_view_rows(conn: Connection, rows: Sequence[ViewRowValues]) -> None:
    """Bulk insert through the driver (the ingest hot path). Table and column names are ours."""
    if not rows:
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    marks = ", ".join([mark] * len(_ROW_COLUMNS))
    # Table and column names are this module's constants, never input; values are bound parameters.
    statement = f"INSERT INTO {ROWS.name} ({', '.join(_ROW_COLUMNS)}) VALUES ({marks})"  # noqa: S608
    conn.exec_driver_sql(statement, list(rows))


def current_resources(conn: Connection, resource_type: str, *, batch: int = 1000) -> Iterator[list[tuple[str, bytes]]]:
    """The (id, content) of every current, non-deleted resource of a type, in batches by id.

    Paged by key rather than held open as a cursor, so the caller may write between batches on the
    same connection.
    """
    last = ""
    c = RESOURCE.c
    while True:
        stmt = (
            sa.select(c.id, c.content)
            .where(c.resource_type == resource_type, c.deleted == sa.false(), c.id > last)
            .order_by(c.id)
            .limit(batch)
        )
        page = [(row[0], bytes(row[1])) for row in conn.execute(stmt)]
        if not page:
            return
        yield page
        last = page[-1][0]


def read_view_rows(conn: Connection, name: str, *, patient_keys: Sequence[str] | None = None) -> Iterator[bytes]:
    """The JSON rows of a view in a stable order (resource, then ordinal), optionally for some patients."""
    c = ROWS.c
    stmt = sa.select(c.row).where(c.view_name == name)
    if patient_keys is not None:
        stmt = stmt.where(c.patient_key.in_(list(patient_keys)))
    stmt = stmt.order_by(c.resource_type, c.resource_id, c.ordinal)
    for row in conn.execute(stmt):
        yield bytes(row[0])
