"""Named datasets: registered as validated copies, listed, loaded; re-registration conflicts unless replaced."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from common.errors import ConfigError, ConflictError, ErrorCode, InputError, NotFoundError
from medfed.cli import EXIT_RUNTIME, app
from node.datasets.registry import list_datasets, load_dataset, register_dataset
from node.datasets.schema import load_schema

SCHEMAS = Path(__file__).resolve().parents[3] / "benchmarks" / "datasets"
HEART_SCHEMA = SCHEMAS / "fed_heart_disease.schema.yaml"
runner = CliRunner()


@pytest.fixture
def heart_files(shared_data: Path) -> dict[str, Path]:
    """The four hospital files."""
    folder = shared_data / "fed_heart_disease"
    return {c: folder / f"processed.{c}.data" for c in ("cleveland", "hungarian", "switzerland", "va")}


def test_register_list_and_load(tmp_path: Path, heart_files: dict[str, Path]) -> None:
    """A registered dataset is a copy with its schema and SHA-256, and loads typed like the file."""
    schema = load_schema(HEART_SCHEMA)
    info = register_dataset(tmp_path, "heart", heart_files["va"], schema)
    assert (info.rows, info.format, info.source_name) == (200, "csv", "processed.va.data")
    stored = tmp_path / "datasets" / "heart"
    assert (stored / "data.csv").read_bytes() == heart_files["va"].read_bytes()
    assert json.loads((stored / "manifest.json").read_text())["sha256"] == info.sha256
    assert list_datasets(tmp_path) == [info]
    table = load_dataset(tmp_path, "heart")
    assert len(table) == 200
    assert table["chol"].isna().sum() == 56


def test_same_file_again_is_a_no_op_and_another_file_conflicts(tmp_path: Path, heart_files: dict[str, Path]) -> None:
    """Registering the same bytes again changes nothing; another file needs replace=True."""
    schema = load_schema(HEART_SCHEMA)
    first = register_dataset(tmp_path, "heart", heart_files["va"], schema)
    assert register_dataset(tmp_path, "heart", heart_files["va"], schema) == first
    with pytest.raises(ConflictError) as caught:
        register_dataset(tmp_path, "heart", heart_files["cleveland"], schema)
    assert caught.value.code is ErrorCode.DATASET_EXISTS
    assert len(load_dataset(tmp_path, "heart")) == 200  # the old one is intact
    replaced = register_dataset(tmp_path, "heart", heart_files["cleveland"], schema, replace=True)
    assert replaced.rows == 303
    assert len(load_dataset(tmp_path, "heart")) == 303
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == ["heart"]  # no staging left behind


def test_an_invalid_file_is_never_registered(tmp_path: Path) -> None:
    """A file that breaks its schema is refused and leaves no trace."""
    schema = load_schema(HEART_SCHEMA)
    bad = tmp_path / "bad.data"
    bad.write_text("63,1,9,145,233,1,2,150,0,2.3,3,0,6,0\n", encoding="utf-8")  # cp = 9 is not a level
    with pytest.raises(InputError) as caught:
        register_dataset(tmp_path, "heart", bad, schema)
    assert caught.value.hints == ("cp: 1 value(s) outside the declared levels (first at row 1)",)
    assert list_datasets(tmp_path) == []


def test_a_tampered_copy_is_refused_on_load(tmp_path: Path, heart_files: dict[str, Path]) -> None:
    """If the stored copy changes after registration, loading it is refused."""
    register_dataset(tmp_path, "heart", heart_files["va"], load_schema(HEART_SCHEMA))
    copy = tmp_path / "datasets" / "heart" / "data.csv"
    copy.write_bytes(copy.read_bytes().replace(b"63,1,4,140", b"64,1,4,140", 1))
    with pytest.raises(ConfigError):
        load_dataset(tmp_path, "heart")


def test_names_are_checked_and_unknown_names_not_found(tmp_path: Path, heart_files: dict[str, Path]) -> None:
    """A name with path characters is refused; loading an unregistered name is NOT_FOUND."""
    with pytest.raises(InputError):
        register_dataset(tmp_path, "../heart", heart_files["va"], load_schema(HEART_SCHEMA))
    with pytest.raises(NotFoundError):
        load_dataset(tmp_path, "nothing")


def test_cli_dataset_add_and_list(tmp_path: Path, heart_files: dict[str, Path]) -> None:
    """medfed node dataset add registers the file and prints its manifest; list shows it; a clash fails."""
    data = str(tmp_path)
    result = runner.invoke(
        app,
        [
            "node",
            "dataset",
            "add",
            "heart",
            str(heart_files["hungarian"]),
            "--schema",
            str(HEART_SCHEMA),
            "--data-dir",
            data,
        ],
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["rows"] == 294
    listed = runner.invoke(app, ["node", "dataset", "list", "--data-dir", data])
    assert [d["name"] for d in orjson.loads(listed.stdout)] == ["heart"]
    clash = runner.invoke(
        app,
        ["node", "dataset", "add", "heart", str(heart_files["va"]), "--schema", str(HEART_SCHEMA), "--data-dir", data],
    )
    assert clash.exit_code == EXIT_RUNTIME
    replaced = runner.invoke(
        app,
        [
            "node",
            "dataset",
            "add",
            "heart",
            str(heart_files["va"]),
            "--schema",
            str(HEART_SCHEMA),
            "--data-dir",
            data,
            "--replace",
        ],
    )
    assert replaced.exit_code == 0, replaced.output
    assert orjson.loads(replaced.stdout)["rows"] == 200
