"""A node initialised through the CLI with the policy table's ``policy.yaml``, for the CLI policy tests.

`medfed node policy check --data-dir` and the approval commands read what a running node's gate wrote;
these tests set that up the same way, so they share one helper.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from medfed.cli import app as cli
from node.audit import AuditLog
from node.policy.gate import PolicyGate
from node.store.db import make_engine
from tests.unit.policy.cases import POLICY


@dataclass(frozen=True, slots=True)
class CliNode:
    """The CLI's environment for the node, its store (dispose it at the end) and a gate on ``POLICY``."""

    env: dict[str, str]
    engine: sa.Engine
    gate: PolicyGate


def cli_node_with_policy(tmp_path: Path) -> CliNode:
    """`medfed node init` in ``tmp_path/node``, the table's ``policy.yaml`` written, and a gate opened on it."""
    data = tmp_path / "node"
    env = {"MEDFED_NODE_DATA_DIR": str(data)}
    assert CliRunner().invoke(cli, ["node", "init"], env=env).exit_code == 0
    (data / "policy.yaml").write_text(POLICY)
    engine = make_engine(f"sqlite:///{data / 'node.db'}")
    return CliNode(env, engine, PolicyGate(engine, AuditLog.open(engine, data), data / "policy.yaml"))
