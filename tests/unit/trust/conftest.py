"""What the node-side trust tests share: a migrated node database (the trust state lives in its tables)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from node.store.db import make_engine
from node.store.migrate import upgrade


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated node database."""
    made = make_engine(f"sqlite:///{tmp_path / 'node.db'}")
    upgrade(made)
    yield made
    made.dispose()
