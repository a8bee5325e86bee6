"""The node's data for federated jobs: a tabular dataset or a materialised view, read as one snapshot.

A job names a source (``{"dataset": NAME}`` or ``{"view": NAME}``); :func:`node_source_loader` binds
the loading to this node's data directory (datasets) and store (views) and returns a
:class:`LoadedSource`: the rows as a typed DataFrame and a **snapshot id** that names exactly the data
read, so a job's result can say which data it saw and a node can tell when data changed under a job.

* dataset: the SHA-256 of the registered file, from its manifest, checked against the bytes on load
  (:func:`node.datasets.registry.load_dataset`); the manifest is read before and after loading, and a
  replacement in between is refused (the caller may ask again);
* view: SHA-256 over the view's definition digest and every row with its resource and ordinal, read
  in one transaction, so rows written by an ingest running meanwhile are either all in or all out.

The frame's index names each row's record, for disclosure control's record keys: the row number of a
dataset, ``Type/id#ordinal`` of a view row. View columns are typed from the view's declared column
types (numbers as nullable numbers, booleans as nullable booleans, everything else, dates included,
as text: cohort filters parse dates themselves).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from common.analytics.cohort import Source
from common.errors import ConflictError, ErrorCode, NotFoundError
from node.datasets.registry import list_datasets, load_dataset
from node.linkage.consent import research_excluded_patient_keys
from node.store import view_rows
from node.views.definition import parse_view
from node.views.library import NUMERIC_TYPES, column_info

__all__ = ["LoadedSource", "SourceLoader", "load_dataset_source", "load_view_source", "node_source_loader"]

_INTEGER_TYPES = frozenset(("integer", "positiveInt", "unsignedInt", "integer64"))


@dataclass(frozen=True, slots=True)
class LoadedSource:
    """The rows of one source as read once, and the id of that snapshot."""

    frame: pd.DataFrame
    snapshot: str


SourceLoader = Callable[[Source], LoadedSource]
"""``load(source) -> LoadedSource``; NotFoundError for a source the node does not have."""


def _not_here(location: str) -> NotFoundError:
    return NotFoundError(ErrorCode.NOT_FOUND, detail="no such source at this node", hints=[f"{location}: not here"])


def _manifest_sha256(data_dir: Path, name: str) -> str:
    for info in list_datasets(data_dir):
        if info.name == name:
            return info.sha256
    raise _not_here("source.dataset")


def load_dataset_source(data_dir: Path, name: str) -> LoadedSource:
    """A registered dataset, with its registered SHA-256 as the snapshot id."""
    before = _manifest_sha256(data_dir, name)
    try:
        frame = load_dataset(data_dir, name)
    except NotFoundError:
        raise _not_here("source.dataset") from None
    if _manifest_sha256(data_dir, name) != before:
        raise ConflictError(detail="the dataset was replaced while it was read", hints=["source.dataset: replaced"])
    return LoadedSource(frame.reset_index(drop=True), before)


def _typed(column: pd.Series, declared: str | None) -> pd.Series:
    if declared in NUMERIC_TYPES:
        numbers = pd.to_numeric(column, errors="coerce")
        return numbers.astype("Int64" if declared in _INTEGER_TYPES else "Float64")
    if declared == "boolean":
        return column.astype("boolean")
    return column.astype("string") if column.map(lambda v: v is None or isinstance(v, str)).all() else column


def load_view_source(engine: Engine, name: str) -> LoadedSource:
    """A registered view's materialised rows, typed by its declared columns, in one read transaction.

    Rows of patients who opted out of research (:func:`research_excluded_patient_keys`) are left out.
    """
    rows = view_rows.ROWS.c
    digest = hashlib.sha256()
    records: list[dict[str, object]] = []
    identities: list[str] = []
    with engine.connect() as conn, conn.begin():
        entry = next((view for view in view_rows.registered_views(conn) if view.name == name), None)
        definition = view_rows.definition_of(conn, name)
        if entry is None or definition is None:
            raise _not_here("source.view")
        columns = column_info(parse_view(orjson.loads(definition)))
        digest.update(entry.digest.encode() + b"\n")
        excluded = research_excluded_patient_keys(conn)
        statement = (
            sa.select(rows.resource_type, rows.resource_id, rows.ordinal, rows.row, rows.patient_key)
            .where(rows.view_name == name)
            .order_by(rows.resource_type, rows.resource_id, rows.ordinal)
        )
        for resource_type, resource_id, ordinal, raw, patient_key in conn.execute(statement):
            if patient_key is not None and patient_key in excluded:
                continue
            content = bytes(raw)
            identity = f"{resource_type}/{resource_id}#{ordinal}"
            digest.update(identity.encode() + b"\0" + content + b"\n")
            identities.append(identity)
            records.append(orjson.loads(content))
    names = [info.name for info in columns]
    frame = pd.DataFrame.from_records(records, columns=names) if records else pd.DataFrame(columns=names)
    for info in columns:
        frame[info.name] = _typed(frame[info.name], info.type)
    frame.index = pd.Index(identities, dtype="string")
    return LoadedSource(frame, digest.hexdigest())


def node_source_loader(*, data_dir: Path | None, engine: Engine | None) -> SourceLoader:
    """The node's loader: datasets under ``data_dir``, views in the store behind ``engine`` (None: none)."""

    def load(source: Source) -> LoadedSource:
        if source.dataset is not None:
            if data_dir is None:
                raise _not_here("source.dataset")
            return load_dataset_source(data_dir, source.dataset)
        if engine is None or source.view is None:
            raise _not_here("source.view")
        return load_view_source(engine, source.view)

    return load
