"""The coordinator's migrations build exactly its models' schema, and live beside a node's in one database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import node.store.migrate as node_migrate
from coordinator.store import migrate
from coordinator.store.db import make_engine
from coordinator.store.models import METADATA


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def _drift(engine: sa.Engine) -> list[Any]:
    def ours(name: str | None, type_: str, _parent: Any) -> bool:
        return type_ != "table" or name in METADATA.tables

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": migrate.VERSION_TABLE, "include_name": ours})
        return list(compare_metadata(context, METADATA))


def _tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def test_upgrade_matches_models_and_round_trips(empty_database: str) -> None:
    """Upgrading an empty database reaches head with no drift; downgrade to base and upgrade again work."""
    engine = make_engine(empty_database)
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert _drift(engine) == []
        assert _tables(engine) == {*METADATA.tables, migrate.VERSION_TABLE}
        migrate.upgrade(engine)  # idempotent
        migrate.downgrade(engine, "base")
        assert _tables(engine) == {migrate.VERSION_TABLE}
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_node_and_coordinator_schemas_share_a_database_without_mixing(empty_database: str) -> None:
    """Each side keeps its revision in its own version table; migrating one never touches the other's tables."""
    engine = make_engine(empty_database)
    try:
        node_migrate.upgrade(engine)
        node_tables = _tables(engine)
        assert migrate.current_revision(engine) is None  # the node's alembic_version is not ours
        migrate.upgrade(engine)
        assert node_migrate.current_revision(engine) == node_migrate.head_revision()
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert _drift(engine) == []
        assert _tables(engine) == node_tables | set(METADATA.tables) | {migrate.VERSION_TABLE}
        migrate.downgrade(engine, "base")
        assert _tables(engine) == node_tables | {migrate.VERSION_TABLE}
        assert node_migrate.current_revision(engine) == node_migrate.head_revision()
    finally:
        engine.dispose()
