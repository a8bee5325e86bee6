"""Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import node.store.models  # noqa: F401  (registers the tables)
from node.store.db import make_engine
from node.store.migrate import current_revision, downgrade, head_revision, upgrade


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def test_upgrade_matches_models_and_round_trips(empty_database: str) -> None:
    """Upgrading an empty database reaches head with no schema drift; downgrade and re-upgrade work."""
    engine = make_engine(empty_database)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        assert diff == []
        upgrade(engine)  # idempotent
        downgrade(engine, "base")
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == ["alembic_version"]
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
