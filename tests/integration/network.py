"""The coordinator the in-process network tests start from: over TLS on SQLite, its CA in a file for clients.

The job, policy, trust and revocation tests each build a network of in-process nodes around one such
coordinator; this is the part they all set up the same way (the task identity Flower needs, the
coordinator's own data directory, and its CA certificate written where researcher clients read it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from common.flower import ensure_task_identity
from tests.integration.test_enrolment import Coordinator, running_coordinator


@contextmanager
def tls_coordinator(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[tuple[Coordinator, Path, Path]]:
    """A coordinator on SQLite in a new directory named after ``name``: it, that directory and its CA file."""
    ensure_task_identity()
    data = tmp_path_factory.mktemp(name)
    with running_coordinator(data, f"sqlite:///{data / 'coordinator.db'}") as coordinator:
        ca_file = data / "ca.pem"
        ca_file.write_bytes(coordinator.identity.ca_pem)
        yield coordinator, data, ca_file
