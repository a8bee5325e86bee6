"""A node app over a real database (SQLite or PostgreSQL), driven through Starlette's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from node.app import create_app
from node.config import NodeSettings
from node.store.tokens import Role, create_token


@dataclass
class NodeClient:
    """A TestClient with an admin and a clinician token, and the app's engine for row counts."""

    client: TestClient
    engine: sa.Engine
    admin: dict[str, str]
    clinician: dict[str, str]

    def row_counts(self) -> dict[str, int]:
        """Rows per table (except the audit, which grows with every call)."""
        counts: dict[str, int] = {}
        with self.engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                if table not in ("access_audit", "audit_entry", "audit_chain_head", "alembic_version"):
                    counts[table] = int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
        return counts


def token_lookups(engine: sa.Engine) -> list[int]:
    """A counter, kept up to date, of the SQL statements that read the token table (node or coordinator)."""
    seen = [0]

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "api_token" in statement:
            seen[0] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    return seen


def make_node_client(database_url: str, data_dir: Path, **settings: object) -> NodeClient:
    """Build the app and two tokens on an already migrated database."""
    node_settings = NodeSettings(data_dir=data_dir, database_url=database_url, **settings)  # type: ignore[arg-type]
    app = create_app(node_settings)
    engine: sa.Engine = app.state.engine
    _, admin = create_token(engine, Role.ADMIN, "test admin")
    _, clinician = create_token(engine, Role.CLINICIAN, "test clinician")
    client = TestClient(app, base_url="http://testserver")
    return NodeClient(
        client=client,
        engine=engine,
        admin={"Authorization": f"Bearer {admin}"},
        clinician={"Authorization": f"Bearer {clinician}"},
    )


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[NodeClient]:
    """A node app on SQLite and on PostgreSQL."""
    made = make_node_client(database_url, tmp_path)
    with made.client:
        yield made
    made.engine.dispose()
