"""Materialised views: registered views' rows, kept in step with every write to the store.

Storage is one generic table, ``view_row`` (view, resource type, resource id, ordinal -> the row as
JSON, plus the row's ``patient_id`` copied into an indexed ``patient_key`` for cohort joins), and a
registry, ``view_definition`` (name -> ViewDefinition JSON and its digest). One table rather than a
table per view: views are registered at run time without DDL or migrations, their column sets
differ, and both SQLite and PostgreSQL hold it alike; analyses decode rows with orjson.

Consistency: :func:`refresh_views` runs inside the transaction that writes resources (create,
update, delete, transaction Bundles, ingest), so a resource's rows are replaced, or removed on
delete, atomically with it. Only views of the written resources' types are evaluated. A view that
cannot be evaluated on one resource (e.g. a column with several values) does not fail the clinical
write: that resource gets no row in that view, the failure is counted in the registry and logged by
location and rule (never a value). :func:`rebuild` recomputes a view from the current resources.

The standard library is installed by ``medfed node init`` (and so at every ``node start``); a view
whose definition changed is rebuilt then.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Connection, Engine

from common.errors import ErrorCode, NotFoundError
from node.fhir.resources import now_micros
from node.store import view_rows as store
from node.store.db import write_transaction
from node.store.resources import StoredResource
from node.views.definition import ViewDefinition, parse_view
from node.views.errors import InvalidViewError
from node.views.evaluate import Row, evaluate_resource
from node.views.library import standard_views

__all__ = [
    "PATIENT_KEY_COLUMN",
    "RebuildReport",
    "install_standard_views",
    "install_views",
    "read_view",
    "rebuild",
    "refresh_views",
    "uninstall_view",
    "view_digest",
]

log = logging.getLogger("medfed.node.views")

PATIENT_KEY_COLUMN = "patient_id"
_INSERT_BATCH = 2000
_compiled: dict[str, ViewDefinition] = {}  # by digest: a definition is parsed once per process
_compiled_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What a rebuild did: rows written, resources the view could not evaluate."""

    view: str
    rows: int
    resources: int
    failures: int


def view_digest(source: Mapping[str, Any]) -> str:
    """SHA-256 of the view's canonical JSON (sorted keys): equal definitions, equal digests."""
    return hashlib.sha256(orjson.dumps(source, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _definition(conn: Connection, name: str, digest: str) -> ViewDefinition:
    with _compiled_lock:
        cached = _compiled.get(digest)
    if cached is not None:
        return cached
    raw = store.definition_of(conn, name)
    if raw is None:
        raise NotFoundError(ErrorCode.NOT_FOUND, detail="view not registered", hints=["view: unknown"])
    definition = parse_view(orjson.loads(raw))
    with _compiled_lock:
        _compiled[digest] = definition
    return definition


def _views_by_type(conn: Connection) -> dict[str, list[tuple[str, ViewDefinition]]]:
    by_type: dict[str, list[tuple[str, ViewDefinition]]] = {}
    for entry in store.registered_views(conn):
        by_type.setdefault(entry.resource_type, []).append((entry.name, _definition(conn, entry.name, entry.digest)))
    return by_type


def _values(view: str, resource_type: str, resource_id: str, rows: Sequence[Row]) -> Iterator[store.ViewRowValues]:
    for ordinal, row in enumerate(rows):
        key = row.get(PATIENT_KEY_COLUMN)
        patient_key = key if isinstance(key, str) and len(key) <= 64 else None
        yield (view, resource_type, resource_id, ordinal, patient_key, orjson.dumps(row))


class _Failures:
    """Per-view count and last hint of resources a view could not evaluate."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.last: dict[str, str] = {}

    def add(self, view: str, exc: InvalidViewError) -> None:
        self.counts[view] = self.counts.get(view, 0) + 1
        self.last[view] = "; ".join(exc.hints) or exc.public_message


def _evaluate(
    view_name: str, definition: ViewDefinition, stored_id: str, resource: Mapping[str, Any], failures: _Failures
) -> list[store.ViewRowValues]:
    try:
        rows = evaluate_resource(definition, resource)
    except InvalidViewError as exc:
        failures.add(view_name, exc)
        return []
    return list(_values(view_name, definition.resource, stored_id, rows))


def refresh_views(conn: Connection, written: Sequence[StoredResource], *, fresh: bool) -> None:
    """Replace the view rows of resources just written on ``conn`` (deleted ones lose their rows).

    ``fresh`` says the resources are new (no rows to remove first), as for bulk inserts.
    """
    if not written:
        return
    by_type = _views_by_type(conn)
    if not by_type:
        return
    groups: dict[str, list[StoredResource]] = {}
    for stored in written:
        if stored.resource_type in by_type:
            groups.setdefault(stored.resource_type, []).append(stored)
    failures = _Failures()
    values: list[store.ViewRowValues] = []
    for resource_type, items in groups.items():
        views = by_type[resource_type]
        if not fresh:
            store.delete_resource_rows(conn, [name for name, _ in views], resource_type, [s.id for s in items])
        for stored in items:
            if stored.deleted:
                continue
            resource = orjson.loads(stored.content)
            for name, definition in views:
                values += _evaluate(name, definition, stored.id, resource, failures)
    store.insert_view_rows(conn, values)
    for name, count in failures.counts.items():
        store.note_failures(conn, name, count, failures.last[name])
        log.warning("view skipped resources it cannot evaluate: %s (%s)", name, failures.last[name])


def _rebuild_in(conn: Connection, name: str, definition: ViewDefinition) -> RebuildReport:
    store.delete_view_rows(conn, name)
    failures = _Failures()
    rows = resources = 0
    pending: list[store.ViewRowValues] = []
    for page in store.current_resources(conn, definition.resource):
        for resource_id, content in page:
            resources += 1
            pending += _evaluate(name, definition, resource_id, orjson.loads(content), failures)
            if len(pending) >= _INSERT_BATCH:
                store.insert_view_rows(conn, pending)
                rows += len(pending)
                pending = []
    store.insert_view_rows(conn, pending)
    rows += len(pending)
    failed = failures.counts.get(name, 0)
    store.mark_built(conn, name, now_micros(), failed, failures.last.get(name))
    if failed:
        log.warning("view rebuilt without resources it cannot evaluate: %s (%s)", name, failures.last[name])
    return RebuildReport(name, rows, resources, failed)


def rebuild(engine: Engine, name: str) -> RebuildReport:
    """Recompute a registered view's rows from the current resources, in one transaction."""
    with write_transaction(engine) as conn:
        entry = next((v for v in store.registered_views(conn) if v.name == name), None)
        if entry is None:
            raise NotFoundError(ErrorCode.NOT_FOUND, detail="view not registered", hints=["view: unknown"])
        return _rebuild_in(conn, name, _definition(conn, name, entry.digest))


def install_views(engine: Engine, sources: Iterable[Mapping[str, Any]]) -> list[RebuildReport]:
    """Register views (validated; each needs a ``name``) and build those that are new or changed.

    A view whose digest is unchanged is left alone, so this is cheap to run at every start.
    """
    parsed = []
    for source in sources:
        definition = parse_view(source)
        if definition.name is None:
            raise InvalidViewError(hints=["name: a registered view needs a name"])
        parsed.append((definition.name, definition, source, view_digest(source)))
    reports = []
    with write_transaction(engine) as conn:
        current = {entry.name: entry.digest for entry in store.registered_views(conn)}
        for name, definition, source, digest in parsed:
            if current.get(name) == digest:
                continue
            with _compiled_lock:
                _compiled[digest] = definition
            store.register_view(conn, name, definition.resource, orjson.dumps(source), digest, now_micros())
            reports.append(_rebuild_in(conn, name, definition))
    return reports


def install_standard_views(engine: Engine) -> list[RebuildReport]:
    """Register (and build, when new or changed) every view of the node's standard library."""
    return install_views(engine, [view.source for view in standard_views()])


def uninstall_view(engine: Engine, name: str) -> None:
    """Remove a registered view and its rows."""
    with write_transaction(engine) as conn:
        store.unregister_view(conn, name)


def read_view(conn: Connection, name: str, *, patient_keys: Sequence[str] | None = None) -> Iterator[Row]:
    """A registered view's rows (dicts in column order), optionally only for some patients' keys."""
    if name not in {entry.name for entry in store.registered_views(conn)}:
        raise NotFoundError(ErrorCode.NOT_FOUND, detail="view not registered", hints=["view: unknown"])
    for raw in store.read_view_rows(conn, name, patient_keys=patient_keys):
        row: Row = orjson.loads(raw)
        yield row
