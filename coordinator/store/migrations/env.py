"""Alembic environment: the connection is handed in by :func:`coordinator.store.migrate.upgrade`."""

from __future__ import annotations

from typing import Any

from alembic import context

from coordinator.store.migrate import VERSION_TABLE
from coordinator.store.models import METADATA


def _ours(name: str | None, type_: str, _parent: Any) -> bool:
    # Autogenerate on a database shared with a node compares only the coordinator's own tables.
    return type_ != "table" or name in METADATA.tables


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=METADATA,
    version_table=VERSION_TABLE,
    include_name=_ours,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
