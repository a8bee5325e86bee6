"""Coordinator fixtures: a migrated coordinator database on SQLite and on PostgreSQL, and an app with tokens.

Same pattern as ``tests/conftest.py``'s ``database_url`` (one PostgreSQL database per session,
truncated per test), but migrated with the coordinator's schema.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from coordinator.app import create_app
from coordinator.config import CoordinatorSettings
from coordinator.store.db import make_engine
from coordinator.store.migrate import VERSION_TABLE, upgrade
from coordinator.store.tokens import Role, create_token
from tests.conftest import temporary_postgres_database, truncate_postgres_tables


@pytest.fixture(scope="session")
def _coordinator_postgres_url() -> Iterator[str]:
    with temporary_postgres_database("medfed_coord_test") as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def coordinator_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database migrated to the coordinator's schema, empty: a SQLite file, or the session's PostgreSQL one."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'coordinator.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return url
    postgres_url: str = request.getfixturevalue("_coordinator_postgres_url")
    truncate_postgres_tables(postgres_url, version_table=VERSION_TABLE)
    return postgres_url


@pytest.fixture
def engine(coordinator_database_url: str) -> Iterator[sa.Engine]:
    """An engine on the migrated coordinator database, disposed afterwards."""
    made = make_engine(coordinator_database_url)
    yield made
    made.dispose()


@dataclass
class CoordinatorClient:
    """A TestClient on the coordinator app, with a bearer header per role and the app's engine."""

    client: TestClient
    engine: sa.Engine
    settings: CoordinatorSettings
    admin: dict[str, str]
    researcher: dict[str, str]
    observer: dict[str, str]


def make_coordinator_client(database_url: str, data_dir: Path, **settings: object) -> CoordinatorClient:
    """Build the app and one token per role on an already migrated database."""
    coordinator_settings = CoordinatorSettings(data_dir=data_dir, database_url=database_url, **settings)  # type: ignore[arg-type]
    app = create_app(coordinator_settings)
    app_engine: sa.Engine = app.state.engine
    headers = {}
    for role in Role:
        _, token = create_token(app_engine, role=role, label=f"test {role}")
        headers[role] = {"Authorization": f"Bearer {token}"}
    return CoordinatorClient(
        client=TestClient(app, base_url="http://testserver"),
        engine=app_engine,
        settings=coordinator_settings,
        admin=headers[Role.ADMIN],
        researcher=headers[Role.RESEARCHER],
        observer=headers[Role.OBSERVER],
    )


@pytest.fixture
def coordinator(coordinator_database_url: str, tmp_path: Path) -> Iterator[CoordinatorClient]:
    """A coordinator app on SQLite and on PostgreSQL."""
    made = make_coordinator_client(coordinator_database_url, tmp_path)
    with made.client:
        yield made
    made.engine.dispose()


def new_public_key() -> str:
    """A random 32-byte public key in base64url without padding (the shape of Ed25519 and X25519 keys)."""
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
