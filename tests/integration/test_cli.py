"""The node commands: init, token create, ingest (Bundles and NDJSON) with its data-quality summary."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from medfed.cli import EXIT_CONFIG, app
from node.config import NodeSettings
from node.runtime import open_service
from node.store.tokens import authenticate

runner = CliRunner()


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout


def test_init_token_and_ingest_synthea(tmp_path: Path, synthea_bundles: list[Path]) -> None:
    """init creates the node, token create prints a working token once, ingest loads every bundle."""
    data = str(tmp_path / "node")
    assert _run("node", "init", "--data-dir", data)[0] == 0
    assert _run("node", "init", "--data-dir", data)[0] == 0  # idempotent
    code, out = _run("node", "token", "create", "--data-dir", data, "--role", "clinician")
    assert code == 0
    token = out.strip().splitlines()[-1]
    service = open_service(NodeSettings(data_dir=Path(data)))
    assert authenticate(service.engine, token).role == "clinician"
    code, out = _run("node", "ingest", "--data-dir", data, str(synthea_bundles[0].parent))
    assert code == 0, out
    summary = orjson.loads(out[out.index("{") :])
    assert summary["files"] == 24
    assert summary["rejected"] == []
    assert summary["stored"]["Patient"] == 24
    assert summary["stored_total"] == summary["entries"]
    assert summary["codes"]["http://loinc.org"]["distinct"] > 10


def test_ndjson_ingest_reports_bad_lines_and_upserts(tmp_path: Path) -> None:
    """NDJSON lines are created or, when the id exists, updated; bad lines are reported by line and reason."""
    data = str(tmp_path / "node")
    _run("node", "init", "--data-dir", data)
    lines = [
        {"resourceType": "Patient", "id": "p1", "gender": "female"},
        {"resourceType": "Patient", "id": "p2", "gender": "nonsense-value"},
        {"resourceType": "Patient", "id": "p1", "gender": "male"},
    ]
    path = tmp_path / "Patient.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n{not json\n")
    code, out = _run("node", "ingest", "--data-dir", data, str(path))
    assert code == 0
    summary = orjson.loads(out[out.index("{") :])
    assert summary["stored"] == {"Patient": 2}
    assert [r["at"] for r in summary["rejected"]] == ["line 2", "line 4"]
    assert "nonsense-value" not in out
    service = open_service(NodeSettings(data_dir=Path(data)))
    stored = service.read("Patient", "p1")
    assert stored.version_id == 2
    assert orjson.loads(stored.content)["gender"] == "male"


def test_commands_on_a_missing_node_are_config_errors(tmp_path: Path) -> None:
    """ingest and token create on a data dir that was never initialised exit with the config code."""
    missing = str(tmp_path / "absent")
    assert _run("node", "token", "create", "--data-dir", missing, "--role", "admin")[0] == EXIT_CONFIG
    assert _run("node", "ingest", "--data-dir", missing, str(tmp_path))[0] == EXIT_CONFIG


def test_data_dir_from_environment(tmp_path: Path) -> None:
    """MEDFED_NODE_DATA_DIR stands in for --data-dir."""
    env = {"MEDFED_NODE_DATA_DIR": str(tmp_path / "envnode")}
    assert _run("node", "init", env=env)[0] == 0
    assert (tmp_path / "envnode" / "node.db").exists()


@pytest.mark.parametrize("role", ["root", ""])
def test_unknown_role_is_a_usage_error(tmp_path: Path, role: str) -> None:
    """token create refuses roles other than clinician and admin."""
    data = str(tmp_path / "node")
    _run("node", "init", "--data-dir", data)
    assert _run("node", "token", "create", "--data-dir", data, "--role", role)[0] == 2


def test_generate_then_ingest_round_trip(tmp_path: Path) -> None:
    """generate writes Bundles or NDJSON that ingest completely; a non-empty --out is refused."""
    data = str(tmp_path / "node")
    _run("node", "init", "--data-dir", data)
    for fmt in ("bundle", "ndjson"):
        out = tmp_path / fmt
        code, _ = _run("node", "generate", "--patients", "15", "--seed", "3", "--out", str(out), "--format", fmt)
        assert code == 0
        assert _run("node", "generate", "--patients", "1", "--out", str(out))[0] == 2
        code, printed = _run("node", "ingest", "--data-dir", data, str(out))
        assert code == 0
        summary = orjson.loads(printed[printed.index("{") :])
        assert summary["rejected"] == []
        assert summary["stored"]["Patient"] == 15
    service = open_service(NodeSettings(data_dir=Path(data)))
    assert service.search(service.parse("Patient", [("_count", "0")])).total == 30
