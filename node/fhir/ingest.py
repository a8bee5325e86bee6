"""Bulk ingest of files: FHIR Bundles (``*.json``) and NDJSON (``*.ndjson``), with a data-quality summary.

A transaction Bundle file is all-or-nothing, exactly as over the API. NDJSON lines are independent:
each valid line is created or, when its id exists, updated; invalid lines are reported and skipped.
The summary counts what was stored per type, lists rejections by location and reason (never values),
and counts the codings seen per code system.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from common.errors import ErrorCode, InputError, MedfedError
from node.fhir.bundles import process_bundle
from node.fhir.extract import IndexEntries
from node.fhir.gc_pause import gc_paused
from node.fhir.resources import PreparedResource, new_id, now_micros, prepare
from node.fhir.service import FhirService
from node.fhir.validation import validate_resource
from node.store.db import write_transaction
from node.store.models import IngestReport, Resource

__all__ = ["IngestSummary", "ingest_paths"]

NDJSON_BATCH = 2_000
_NOT_CODES = frozenset({"identifier", "telecom", "phone", "email"})
RESOURCE = Resource.__table__  # type: ignore[attr-defined]
INGEST_REPORT = IngestReport.__table__  # type: ignore[attr-defined]


@dataclass
class IngestSummary:
    """What one ingest did, per type and per code system; rejections by location and reason."""

    files: int = 0
    entries: int = 0
    stored: Counter[str] = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    codings: Counter[str] = field(default_factory=Counter)
    distinct_codes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def note_written(self, resource_type: str, index: IndexEntries | None) -> None:
        self.stored[resource_type] += 1
        if index is None:
            return
        for param, system, code in index.tokens:
            if system and param not in _NOT_CODES:
                self.codings[system] += 1
                self.distinct_codes[system].add(code)

    def note_rejected(self, file_number: int, where: str, error: MedfedError) -> None:
        self.rejected.append({"file": file_number, "at": where, "code": str(error.code), "reasons": list(error.hints)})

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, also stored in the ingest_report table."""
        return {
            "files": self.files,
            "entries": self.entries,
            "stored": dict(sorted(self.stored.items())),
            "stored_total": sum(self.stored.values()),
            "rejected": self.rejected,
            "codes": {
                system: {"codings": self.codings[system], "distinct": len(self.distinct_codes[system])}
                for system in sorted(self.codings)
            },
        }


def _expand(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson") and p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(ErrorCode.INVALID_REQUEST, hints=["path: not found"])
    return files


def ingest_paths(
    service: FhirService,
    paths: Iterable[Path],
    *,
    max_bundle_entries: int,
    progress: Callable[[int], None] | None = None,
    on_file: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Ingest files and folders (recursively: ``*.json`` Bundles and ``*.ndjson``)."""
    files = _expand(paths)
    if on_file is not None:
        on_file(len(files))
    summary = IngestSummary()
    with gc_paused():
        for number, path in enumerate(files, start=1):
            summary.files += 1
            if path.suffix == ".ndjson":
                _ingest_ndjson(service, path, number, summary, progress)
            else:
                _ingest_bundle(service, path, number, summary, max_bundle_entries, progress)
    with write_transaction(service.engine) as conn:
        conn.execute(
            INGEST_REPORT.insert().values(at=now_micros(), source="cli", summary=orjson.dumps(summary.as_dict()))
        )
    if service.engine.dialect.name == "sqlite":
        # A bulk load changes the tables' shape: refresh the planner's statistics (sampled, so this
        # takes milliseconds even on a large database).
        with service.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA analysis_limit=1000")
            conn.exec_driver_sql("ANALYZE")
    return summary


def _ingest_bundle(
    service: FhirService,
    path: Path,
    number: int,
    summary: IngestSummary,
    max_entries: int,
    progress: Callable[[int], None] | None,
) -> None:
    try:
        bundle = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        summary.note_rejected(number, "file", InputError(ErrorCode.MALFORMED_JSON))
        return
    entries = bundle.get("entry", []) if isinstance(bundle, dict) else []
    summary.entries += len(entries) if isinstance(entries, list) else 0
    try:
        outcome = process_bundle(service, bundle, max_entries=max_entries)
    except MedfedError as exc:
        summary.note_rejected(number, "bundle", exc)
    else:
        for resource_type, index in outcome.written:
            summary.note_written(resource_type, index)
        for entry_index, error in outcome.rejected:
            summary.note_rejected(number, f"entry[{entry_index}]", error)
    if progress is not None:
        progress(len(entries) if isinstance(entries, list) else 0)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                yield line_number, line


def _ingest_ndjson(
    service: FhirService,
    path: Path,
    number: int,
    summary: IngestSummary,
    progress: Callable[[int], None] | None,
) -> None:
    batch: list[tuple[int, dict[str, Any]]] = []
    for line_number, line in _lines(path):
        summary.entries += 1
        try:
            resource = orjson.loads(line)
            if not isinstance(resource, dict):
                raise InputError(ErrorCode.INVALID_RESOURCE, hints=["line: not a JSON object"])
            validate_resource(resource)
        except orjson.JSONDecodeError:
            summary.note_rejected(number, f"line {line_number}", InputError(ErrorCode.MALFORMED_JSON))
            continue
        except MedfedError as exc:
            summary.note_rejected(number, f"line {line_number}", exc)
            continue
        batch.append((line_number, resource))
        if len(batch) >= NDJSON_BATCH:
            _write_ndjson_batch(service, batch, summary)
            if progress is not None:
                progress(len(batch))
            batch = []
    if batch:
        _write_ndjson_batch(service, batch, summary)
        if progress is not None:
            progress(len(batch))


def _write_ndjson_batch(service: FhirService, batch: list[tuple[int, dict[str, Any]]], summary: IngestSummary) -> None:
    now = now_micros()
    with write_transaction(service.engine) as conn:
        existing: set[tuple[str, str]] = set()
        by_type: dict[str, list[str]] = defaultdict(list)
        for _, resource in batch:
            if isinstance(resource.get("id"), str):
                by_type[resource["resourceType"]].append(resource["id"])
        for resource_type, ids in by_type.items():
            for start in range(0, len(ids), 500):
                found = conn.execute(
                    sa.select(RESOURCE.c.id).where(
                        RESOURCE.c.resource_type == resource_type, RESOURCE.c.id.in_(ids[start : start + 500])
                    )
                )
                existing.update((resource_type, row[0]) for row in found)
        fresh: list[PreparedResource] = []
        seen: set[tuple[str, str]] = set()
        for _, resource in batch:
            key = (resource["resourceType"], resource.get("id") or "")
            if key in seen:  # the same id twice in one batch: write what is pending first
                _insert_fresh(service, conn, fresh, summary)
                fresh = []
                seen.clear()
                existing.add(key)
            if key in existing:
                service.update_in(conn, resource)
                summary.note_written(key[0], None)
                continue
            resource_id = resource["id"] if isinstance(resource.get("id"), str) else new_id()
            seen.add((key[0], resource_id))
            fresh.append(prepare(resource, resource_id, 1, now))
        _insert_fresh(service, conn, fresh, summary)


def _insert_fresh(
    service: FhirService, conn: Connection, fresh: list[PreparedResource], summary: IngestSummary
) -> None:
    service.insert_new(conn, fresh)
    for item in fresh:
        summary.note_written(item.stored.resource_type, item.index)
