"""Shared fixtures: databases (SQLite and a real PostgreSQL), test data, node apps with tokens.

``MEDFED_REQUIRE_POSTGRES=1`` turns "PostgreSQL is not reachable" from a skip into a failure, and
``MEDFED_TEST_DATA`` (set by CI) turns "test data is absent" into a failure: CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from node.store.db import make_engine
from node.store.migrate import upgrade

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get("MEDFED_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def shared_data_dir() -> Path:
    """The third-party test data folder; skip when absent, fail when CI said it is there."""
    configured = os.environ.get("MEDFED_TEST_DATA")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        if configured:
            pytest.fail(f"MEDFED_TEST_DATA points at {path}, which is not a folder")
        pytest.skip(f"test data not found at {path} (set MEDFED_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder that holds synthea_fhir_r4/, febrl/, fed_*/."""
    return shared_data_dir()


@pytest.fixture(scope="session")
def synthea_bundles(shared_data: Path) -> list[Path]:
    """The 24 Synthea transaction Bundles."""
    bundles = sorted((shared_data / "synthea_fhir_r4" / "bundles").glob("*.json"))
    if len(bundles) != 24:
        pytest.fail(f"expected 24 Synthea bundles, found {len(bundles)}")
    return bundles


def _postgres_available() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _require_postgres() -> None:
    if not _postgres_available():
        if os.environ.get("MEDFED_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but not reachable at {POSTGRES_ADMIN_URL}")
        pytest.skip("PostgreSQL is not reachable (set MEDFED_REQUIRE_POSTGRES=1 to make this a failure)")


def _swap_database(url: str, name: str) -> str:
    base = url.rsplit("/", 1)[0]
    return f"{base}/{name}"


@contextmanager
def temporary_postgres_database(prefix: str = "medfed_test") -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards; skips or fails as above."""
    _require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _swap_database(POSTGRES_ADMIN_URL, name)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    with temporary_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def _session_postgres_url() -> Iterator[str]:
    with temporary_postgres_database() as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


def truncate_postgres_tables(url: str, *, version_table: str = "alembic_version") -> None:
    """Empty every table of a PostgreSQL database but its migration version table (fast per-test reset)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        tables = [
            row[0]
            for row in conn.execute(
                sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> :version"),
                {"version": version_table},
            )
        ]
        conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a SQLite file, or the session's PostgreSQL database truncated."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'node.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return url
    postgres_url: str = request.getfixturevalue("_session_postgres_url")
    truncate_postgres_tables(postgres_url)
    return postgres_url
