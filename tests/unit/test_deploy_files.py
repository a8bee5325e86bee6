"""The deployment files are well-formed and name commands and settings that exist."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from medfed.cli import app
from node.config import NodeSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_compose_file_is_valid_and_builds_from_the_repo() -> None:
    """The compose file parses, its node service builds with the shipped Dockerfile and waits for the database."""
    compose = yaml.safe_load((DEPLOY / "compose" / "node.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "node"}
    build = services["node"]["build"]
    context = (DEPLOY / "compose" / build["context"]).resolve()
    assert (context / build["dockerfile"]).is_file()
    assert services["node"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert "medfed node start" in " ".join(services["node"]["command"])
    for port in services["node"]["ports"]:
        assert port.startswith("127.0.0.1:"), "the node is published on loopback only; a proxy adds TLS"


def test_systemd_unit_runs_a_real_command() -> None:
    """The unit's ExecStart is `medfed node start` with options the CLI accepts; config errors don't restart."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(DEPLOY / "systemd" / "medfed-node.service")
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[0].endswith("/medfed")
    assert argv[1:3] == ["node", "start"]
    result = CliRunner().invoke(app, [*argv[1:], "--help"])
    assert result.exit_code == 0
    assert "3" in unit["Service"]["RestartPreventExitStatus"].split()


def test_example_env_names_real_settings() -> None:
    """Every variable in the example env file is a NodeSettings field."""
    fields = {f"MEDFED_NODE_{name.upper()}" for name in NodeSettings.model_fields}
    lines = (DEPLOY / "config" / "node.env.example").read_text().splitlines()
    names = {line.lstrip("# ").split("=", 1)[0] for line in lines if "=" in line}
    assert names
    assert names <= fields
