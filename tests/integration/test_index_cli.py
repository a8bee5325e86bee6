"""The linkage-key commands and the coordinator's re-keying secret, through the ``medfed`` CLI."""

from __future__ import annotations

import stat
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from medfed.cli import EXIT_CONFIG, app
from node.config import NodeSettings
from node.linkage.keyfile import key_path, read_key_file
from node.linkage.outbox import OUTBOX
from node.runtime import open_service
from tests.locator_data import patient

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


def _queued(data: Path) -> int:
    engine = open_service(NodeSettings(data_dir=data)).engine
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar_one())
    finally:
        engine.dispose()


def test_init_import_and_rotate_install_one_network_key_and_queue_every_patient(tmp_path: Path) -> None:
    """init makes a 0600 key and queues the node's patients; import installs it elsewhere; rotate keeps the old one."""
    first, second = tmp_path / "first", tmp_path / "second"
    for data in (first, second):
        assert _run("node", "init", "--data-dir", str(data))[0] == 0
    service = open_service(NodeSettings(data_dir=first))
    for given in ("Ada", "Grace"):
        service.create(patient(given=given))
    service.engine.dispose()

    code, out = _run("node", "linkage-key", "init", "--data-dir", str(first))
    assert code == 0, out
    key = read_key_file(key_path(first))
    assert key.key_id in out
    assert key.to_hex() not in out
    assert stat.S_IMODE(key_path(first).stat().st_mode) == 0o600
    assert _queued(first) == 2

    assert _run("node", "linkage-key", "import", str(key_path(first)), "--data-dir", str(second))[0] == 0
    assert read_key_file(key_path(second)) == key
    code, _ = _run("node", "linkage-key", "init", "--data-dir", str(second))
    assert code == EXIT_CONFIG, "a node with a key does not get a second one"

    code, out = _run("node", "linkage-key", "rotate", "--data-dir", str(first))
    assert code == 0, out
    assert read_key_file(key_path(first)) != key
    assert read_key_file(key_path(first).with_name("network.key.previous")) == key
    assert f"{key.key_id} -> " in out


def test_locate_without_enrolment_is_a_configuration_error(tmp_path: Path) -> None:
    """``medfed node locate`` on a node that is not enrolled exits 3."""
    data = tmp_path / "node"
    _run("node", "init", "--data-dir", str(data))
    code, _ = _run("node", "locate", "some-patient", "--data-dir", str(data))
    assert code == EXIT_CONFIG


def test_coordinator_init_creates_the_rekeying_secret_beside_its_keys(tmp_path: Path) -> None:
    """``medfed coordinator init`` writes identity/linkage_rekey.key, readable by its owner only."""
    data = tmp_path / "coordinator"
    code, out = _run("coordinator", "init", "--data-dir", str(data))
    assert code == 0, out
    secret = data / "identity" / "linkage_rekey.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(bytes.fromhex(secret.read_text().strip())) == 32
