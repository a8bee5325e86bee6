"""Named tabular datasets of a node: register, list, load.

Layout, under the node's data directory::

    datasets/<name>/data.csv | data.parquet   a copy of the registered file, byte for byte
    datasets/<name>/schema.yaml               its declared schema
    datasets/<name>/manifest.json             format, SHA-256 of the copy, rows, columns, when

Why a copy and not a reference to the admin's file: a job reads one data snapshot pinned at its start,
and the admin's file can be edited, moved or deleted under a running job; the copy lives with the rest
of the node's state (backed up and removed with it), and its SHA-256 in the manifest lets the node
show which bytes an analysis read (a copy that no longer matches is refused on load). The file is
validated against the schema before anything is written, so a dataset that is registered always loads.

Registering a name again with the same bytes and the same schema changes nothing. With a different file
or schema it is a conflict (``DATASET_EXISTS``) unless ``replace`` is set; the new copy is written
next to the old one and swapped in by renames, so a failed replacement leaves the old dataset intact.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from common.errors import ConfigError, ConflictError, ErrorCode, InputError, NotFoundError
from node.datasets.loader import file_format, load_table
from node.datasets.schema import DatasetSchema, dump_schema, load_schema

__all__ = ["DatasetInfo", "dataset_schema", "list_datasets", "load_dataset", "register_dataset"]

DATASETS_DIR = "datasets"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """What the node records about a registered dataset (no values from it)."""

    name: str
    format: str
    file: str
    sha256: str
    rows: int
    columns: list[str]
    source_name: str
    registered_at: str

    def as_dict(self) -> dict[str, object]:
        """The manifest as a JSON-ready mapping."""
        return asdict(self)


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InputError(
            ErrorCode.INVALID_REQUEST,
            detail="invalid dataset name",
            hints=["name: 1-63 of a-z, 0-9, _ and -, starting with a letter"],
        )


def _root(data_dir: Path) -> Path:
    if not data_dir.is_dir():
        raise ConfigError(detail="the node data directory does not exist (run 'medfed node init')")
    return data_dir / DATASETS_DIR


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_manifest(folder: Path) -> DatasetInfo:
    try:
        return DatasetInfo(**json.loads((folder / "manifest.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        raise ConfigError(detail=f"dataset manifest unreadable in {folder.name}") from None


def register_dataset(
    data_dir: Path, name: str, source: Path, schema: DatasetSchema, *, replace: bool = False
) -> DatasetInfo:
    """Validate ``source`` against ``schema`` and store a copy under ``name``."""
    _check_name(name)
    root = _root(data_dir)
    fmt = file_format(source, schema)
    frame = load_table(source, schema)  # refuses before anything is written
    digest = _sha256(source)
    schema_text = dump_schema(schema)
    target = root / name
    if target.exists():
        current = _read_manifest(target)
        same_schema = (target / "schema.yaml").read_text(encoding="utf-8") == schema_text
        if current.sha256 == digest and same_schema:
            return current
        if not replace:
            raise ConflictError(
                ErrorCode.DATASET_EXISTS,
                detail="dataset name already registered with another file or schema",
                hints=[f"{name}: registered; use --replace to replace it"],
            )
    info = DatasetInfo(
        name=name,
        format=fmt,
        file=f"data.{fmt}",
        sha256=digest,
        rows=len(frame),
        columns=[spec.name for spec in schema.columns],
        source_name=source.name,
        registered_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    staging = root / f".staging-{name}-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        shutil.copyfile(source, staging / info.file)
        if _sha256(staging / info.file) != digest:
            raise InputError(ErrorCode.INVALID_DATASET, detail="file changed while copied", hints=["file: changed"])
        (staging / "schema.yaml").write_text(schema_text, encoding="utf-8")
        (staging / "manifest.json").write_text(json.dumps(info.as_dict(), indent=2) + "\n", encoding="utf-8")
        if target.exists():
            retired = root / f".retired-{name}-{uuid.uuid4().hex}"
            target.rename(retired)
            staging.rename(target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return info


def list_datasets(data_dir: Path) -> list[DatasetInfo]:
    """Every registered dataset, by name."""
    root = _root(data_dir)
    if not root.is_dir():
        return []
    return [
        _read_manifest(folder)
        for folder in sorted(root.iterdir())
        if folder.is_dir() and not folder.name.startswith(".") and (folder / "manifest.json").is_file()
    ]


def _folder(data_dir: Path, name: str) -> Path:
    _check_name(name)
    folder = _root(data_dir) / name
    if not (folder / "manifest.json").is_file():
        raise NotFoundError(detail="no such dataset", hints=[f"{name}: not registered"])
    return folder


def dataset_schema(data_dir: Path, name: str) -> DatasetSchema:
    """The declared schema of a registered dataset."""
    return load_schema(_folder(data_dir, name) / "schema.yaml")


def load_dataset(data_dir: Path, name: str) -> pd.DataFrame:
    """The rows of a registered dataset, typed as declared; refused if its copy has changed."""
    folder = _folder(data_dir, name)
    info = _read_manifest(folder)
    path = folder / info.file
    if not path.is_file() or _sha256(path) != info.sha256:
        raise ConfigError(detail=f"dataset {name} no longer matches its registration (SHA-256)")
    return load_table(path, load_schema(folder / "schema.yaml"))
