"""The coordinator commands: init, token create and enrol-code, with their exit codes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coordinator.config import CoordinatorSettings
from coordinator.runtime import open_engine
from coordinator.store.enrolment import CODE_PREFIX, consume_enrolment_code
from coordinator.store.tokens import TOKEN_PREFIX, Role, authenticate
from medfed.cli import EXIT_CONFIG, EXIT_RUNTIME, app

runner = CliRunner()


def _run(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"MEDFED_COORDINATOR_DATA_DIR": None, **(env or {})})
    return result.exit_code, result.stdout


def test_init_creates_a_private_data_dir_and_database(tmp_path: Path) -> None:
    """init creates the data dir with mode 0700 and a migrated database; running it again is fine."""
    data = tmp_path / "coord"
    assert _run("coordinator", "init", "--data-dir", str(data))[0] == 0
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert (data / "coordinator.db").is_file()
    assert _run("coordinator", "init", "--data-dir", str(data))[0] == 0
    open_engine(CoordinatorSettings(data_dir=data)).dispose()


@pytest.mark.parametrize("role", list(Role))
def test_token_create_prints_a_working_token_once(tmp_path: Path, role: Role) -> None:
    """token create prints one token on stdout, which authenticates with the role asked for."""
    data = str(tmp_path / "coord")
    _run("coordinator", "init", "--data-dir", data)
    code, out = _run("coordinator", "token", "create", "--data-dir", data, "--role", str(role), "--label", "ops")
    assert code == 0
    token = out.strip()
    assert token.startswith(TOKEN_PREFIX)
    assert "\n" not in token
    engine = open_engine(CoordinatorSettings(data_dir=Path(data)))
    assert authenticate(engine, token=token).role is role
    engine.dispose()


@pytest.mark.parametrize("role", ["root", "", "clinician"])
def test_unknown_roles_are_usage_errors(tmp_path: Path, role: str) -> None:
    """token create refuses roles other than admin, researcher and observer with exit code 2."""
    data = str(tmp_path / "coord")
    _run("coordinator", "init", "--data-dir", data)
    assert _run("coordinator", "token", "create", "--data-dir", data, "--role", role)[0] == 2


def test_enrol_code_prints_a_one_time_code_for_the_node(tmp_path: Path) -> None:
    """enrol-code prints an mfe_ code that enrols the named node once."""
    data = tmp_path / "coord"
    _run("coordinator", "init", "--data-dir", str(data))
    code, out = _run("coordinator", "enrol-code", "--data-dir", str(data), "--node", "Site A")
    assert code == 0
    enrolment_code = out.strip()
    assert enrolment_code.startswith(CODE_PREFIX)
    engine = open_engine(CoordinatorSettings(data_dir=data))
    assert consume_enrolment_code(engine, code=enrolment_code) == "Site A"
    engine.dispose()


def test_enrol_code_refuses_bad_names_and_taken_ids(tmp_path: Path) -> None:
    """A name without letters or digits is a usage error; a name of an enrolled node is a runtime error."""
    from coordinator.store.nodes import register_node
    from tests.integration.coordinator.conftest import new_public_key

    data = tmp_path / "coord"
    _run("coordinator", "init", "--data-dir", str(data))
    assert _run("coordinator", "enrol-code", "--data-dir", str(data), "--node", "***")[0] == 2
    engine = open_engine(CoordinatorSettings(data_dir=data))
    register_node(engine, name="Site B", public_key=new_public_key())
    engine.dispose()
    assert _run("coordinator", "enrol-code", "--data-dir", str(data), "--node", "Site B")[0] == EXIT_RUNTIME


def test_a_missing_or_uninitialised_data_dir_is_a_config_error(tmp_path: Path) -> None:
    """token create and enrol-code on a data dir never initialised, and init without a data dir, exit 3."""
    missing = str(tmp_path / "absent")
    assert _run("coordinator", "token", "create", "--data-dir", missing, "--role", "admin")[0] == EXIT_CONFIG
    assert _run("coordinator", "enrol-code", "--data-dir", missing, "--node", "Site A")[0] == EXIT_CONFIG
    assert _run("coordinator", "init")[0] == EXIT_CONFIG
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run("coordinator", "token", "create", "--data-dir", str(empty), "--role", "admin")[0] == EXIT_CONFIG


def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    """MEDFED_COORDINATOR_DATA_DIR stands in for --data-dir; an invalid setting is a config error."""
    env: dict[str, str | None] = {"MEDFED_COORDINATOR_DATA_DIR": str(tmp_path / "envcoord")}
    assert _run("coordinator", "init", env=env)[0] == 0
    assert (tmp_path / "envcoord" / "coordinator.db").is_file()
    bad = {**env, "MEDFED_COORDINATOR_NODE_OFFLINE_AFTER_S": "1"}
    assert _run("coordinator", "init", env=bad)[0] == EXIT_CONFIG
