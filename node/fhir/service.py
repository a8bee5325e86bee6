"""The node's FHIR operations over the store: read, search, create, update, delete, $everything.

Framework-free: the HTTP routes, the bundle processor and the CLI ingest all call this, so a
resource written by any of them is validated, versioned and indexed the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from common.errors import ConflictError, ErrorCode, InputError, NotFoundError
from node.fhir.query import SearchQuery, parse_search
from node.fhir.resource_types import R4_RESOURCE_TYPES
from node.fhir.resources import PreparedResource, new_id, now_micros, prepare
from node.fhir.validation import validate_resource
from node.linkage.outbox import note_changes as note_linkage_changes
from node.store import resources as rows
from node.store import search as sql
from node.store.db import write_transaction
from node.store.resources import StoredResource
from node.views.materialise import refresh_views

__all__ = ["FhirService", "SearchResult", "WriteResult", "check_type"]

ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.")


def check_type(resource_type: str) -> None:
    """Raise UNKNOWN_RESOURCE_TYPE for anything that is not an R4 resource type."""
    if resource_type not in R4_RESOURCE_TYPES:
        raise InputError(ErrorCode.UNKNOWN_RESOURCE_TYPE)


def check_id(resource_id: str) -> None:
    """Raise for an id that R4 does not allow (``[A-Za-z0-9\\-\\.]{1,64}``)."""
    if not (0 < len(resource_id) <= 64 and ID_CHARS.issuperset(resource_id)):
        raise InputError(ErrorCode.INVALID_REQUEST, hints=["id: not a valid FHIR id"])


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One page of matches, the total when asked for, and the included resources."""

    total: int | None
    matches: list[StoredResource]
    included: list[StoredResource] = field(default_factory=list)
    next_offset: int | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write did: the stored version, and whether it created the resource."""

    stored: StoredResource
    created: bool


class FhirService:
    """FHIR semantics over one database engine."""

    def __init__(self, engine: Engine, *, default_count: int = 50, max_count: int = 1000) -> None:
        self.engine = engine
        self.default_count = default_count
        self.max_count = max_count

    # ----------------------------------------------------------------- reads

    def read(self, resource_type: str, resource_id: str, *, conn: Connection | None = None) -> StoredResource:
        """The current version; NOT_FOUND if it never existed, GONE if deleted."""
        check_type(resource_type)
        if conn is None:
            with self.engine.connect() as own:
                return self.read(resource_type, resource_id, conn=own)
        current = rows.get_current(conn, resource_type, resource_id)
        if current is None:
            raise NotFoundError()
        if current.deleted:
            raise NotFoundError(ErrorCode.GONE)
        return current

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> StoredResource:
        """One version of a resource."""
        check_type(resource_type)
        if not version_id.isdigit():
            raise NotFoundError()
        with self.engine.connect() as conn:
            found = rows.get_version(conn, resource_type, resource_id, int(version_id))
        if found is None:
            raise NotFoundError()
        if found.deleted:
            raise NotFoundError(ErrorCode.GONE)
        return found

    def history(self, resource_type: str, resource_id: str) -> list[StoredResource]:
        """Every version of a resource, newest first."""
        check_type(resource_type)
        with self.engine.connect() as conn:
            versions = rows.history(conn, resource_type, resource_id)
        if not versions:
            raise NotFoundError()
        return versions

    def parse(self, resource_type: str, params: Sequence[tuple[str, str]]) -> SearchQuery:
        """Parse search parameters with this node's page sizes."""
        check_type(resource_type)
        return parse_search(resource_type, params, default_count=self.default_count, max_count=self.max_count)

    def search(self, query: SearchQuery, *, conn: Connection | None = None) -> SearchResult:
        """Run a parsed search: total, the page, and its _include/_revinclude resources."""
        if conn is None:
            with self.engine.connect() as own:
                return self.search(query, conn=own)
        total = sql.count_matches(conn, query) if query.with_total else None
        ids = sql.find_ids(conn, query)
        found = rows.get_many(conn, ((query.resource_type, i) for i in ids))
        matches = [found[(query.resource_type, i)] for i in ids if (query.resource_type, i) in found]
        included_keys: list[tuple[str, str]] = []
        for include in query.includes:
            included_keys += sql.include_targets(conn, query.resource_type, ids, include)
        for include in query.revincludes:
            included_keys += sql.revinclude_sources(conn, query.resource_type, ids, include)
        page_keys = {(query.resource_type, i) for i in ids}
        wanted = [k for k in dict.fromkeys(included_keys) if k not in page_keys]
        included_found = rows.get_many(conn, wanted)
        included = [included_found[k] for k in wanted if k in included_found]
        # _count=0 asks for the total only: no next page (a link at the same offset would loop clients).
        has_more = query.count > 0 and len(ids) == query.count and (total is None or query.offset + len(ids) < total)
        return SearchResult(
            total=total,
            matches=matches,
            included=included,
            next_offset=query.offset + len(ids) if has_more else None,
        )

    def everything(self, patient_id: str, *, count: int, offset: int) -> SearchResult:
        """``Patient/{id}/$everything``: the patient and every resource that refers to them."""
        with self.engine.connect() as conn:
            patient = rows.get_current(conn, "Patient", patient_id)
            if patient is None:
                raise NotFoundError()
            if patient.deleted:
                raise NotFoundError(ErrorCode.GONE)
            keys = [("Patient", patient_id), *sql.compartment_ids(conn, "Patient", patient_id)]
            page = keys[offset : offset + count]
            found = rows.get_many(conn, page)
        matches = [found[k] for k in page if k in found]
        more = count > 0 and offset + count < len(keys)
        return SearchResult(total=len(keys), matches=matches, next_offset=offset + count if more else None)

    # ---------------------------------------------------------------- writes

    def create(
        self,
        resource: dict[str, Any],
        *,
        if_none_exist: Sequence[tuple[str, str]] | None = None,
    ) -> WriteResult:
        """Create with a server id; with ``if_none_exist``, return the one match instead (or 412)."""
        validate_resource(resource)
        with write_transaction(self.engine) as conn:
            if if_none_exist is not None:
                existing = self.match_condition(conn, resource["resourceType"], if_none_exist)
                if existing is not None:
                    return WriteResult(existing, created=False)
            prepared = prepare(resource, new_id(), 1, now_micros())
            self.insert_new(conn, [prepared])
        return WriteResult(prepared.stored, created=True)

    def match_condition(
        self, conn: Connection, resource_type: str, params: Sequence[tuple[str, str]]
    ) -> StoredResource | None:
        """The single resource matching a conditional-create query, None if none; 412 if several."""
        criteria = [(n, v) for n, v in params if not n.startswith("_") or n == "_id"]
        if not criteria:
            raise InputError(ErrorCode.INVALID_SEARCH, hints=["If-None-Exist: no search criteria"])
        if conn.dialect.name == "postgresql":
            # Serialise conditional creates of one type, so two racing requests cannot both create.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(resource_type))))
        query = parse_search(resource_type, [*criteria, ("_count", "2")], default_count=2, max_count=2)
        if not query.criteria:
            raise InputError(ErrorCode.INVALID_SEARCH, hints=["If-None-Exist: no supported criteria"])
        result = self.search(query, conn=conn)
        if not result.matches:
            return None
        if (result.total or 0) > 1:
            raise ConflictError(ErrorCode.PRECONDITION_FAILED)
        return result.matches[0]

    @staticmethod
    def insert_new(conn: Connection, prepared: Sequence[PreparedResource]) -> None:
        """Insert brand-new resources, their index rows and their view rows (bulk)."""
        rows.put_current(conn, [p.stored for p in prepared], replace=False)
        rows.insert_index(
            conn,
            ((p.stored.resource_type, p.stored.id, p.index) for p in prepared if p.index is not None),
        )
        refresh_views(conn, [p.stored for p in prepared], fresh=True)
        note_linkage_changes(conn, [p.stored for p in prepared])  # queues Patients for the patient index

    def update(
        self,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any],
        *,
        if_match: str | None = None,
    ) -> WriteResult:
        """Update (or create with a client id); ``if_match`` is an ETag and must be current (412)."""
        check_type(resource_type)
        check_id(resource_id)
        validate_resource(resource)
        if resource.get("resourceType") != resource_type:
            raise InputError(ErrorCode.INVALID_REQUEST, hints=["resourceType: does not match the URL"])
        if resource.get("id") != resource_id:
            raise InputError(ErrorCode.INVALID_REQUEST, hints=["id: missing or does not match the URL"])
        with write_transaction(self.engine) as conn:
            return self.update_in(conn, resource, if_match=if_match)

    def update_in(
        self,
        conn: Connection,
        resource: dict[str, Any],
        *,
        if_match: str | None = None,
        urns: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Update inside an open write transaction (validated resource with its id set)."""
        resource_type, resource_id = resource["resourceType"], resource["id"]
        current = rows.get_current(conn, resource_type, resource_id, for_update=True)
        if if_match is not None:
            expected = _etag_version(if_match)
            if current is None or current.deleted or current.version_id != expected:
                raise ConflictError(ErrorCode.VERSION_CONFLICT)
        version = 1 if current is None else current.version_id + 1
        prepared = prepare(resource, resource_id, version, now_micros(), urns)
        if current is None:
            self.insert_new(conn, [prepared])
            return WriteResult(prepared.stored, created=True)
        rows.move_to_history(conn, current)
        rows.put_current(conn, [prepared.stored], replace=True)
        rows.delete_index(conn, resource_type, resource_id)
        if prepared.index is not None:
            rows.insert_index(conn, [(resource_type, resource_id, prepared.index)])
        refresh_views(conn, [prepared.stored], fresh=False)
        note_linkage_changes(conn, [prepared.stored])
        return WriteResult(prepared.stored, created=current.deleted)

    def delete(self, resource_type: str, resource_id: str) -> None:
        """Soft delete: a deletion marker becomes current, history keeps every version."""
        check_type(resource_type)
        with write_transaction(self.engine) as conn:
            self.delete_in(conn, resource_type, resource_id)

    @staticmethod
    def delete_in(conn: Connection, resource_type: str, resource_id: str) -> None:
        """Delete inside an open write transaction; deleting a deleted resource is a no-op."""
        current = rows.get_current(conn, resource_type, resource_id, for_update=True)
        if current is None:
            raise NotFoundError()
        if current.deleted:
            return
        rows.move_to_history(conn, current)
        marker = StoredResource(resource_type, resource_id, current.version_id + 1, now_micros(), True, b"")
        rows.put_current(conn, [marker], replace=True)
        rows.delete_index(conn, resource_type, resource_id)
        refresh_views(conn, [marker], fresh=False)
        note_linkage_changes(conn, [marker])


def _etag_version(etag: str) -> int:
    value = etag.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not value.isdigit():
        raise InputError(ErrorCode.INVALID_REQUEST, hints=["If-Match: not a version ETag"])
    return int(value)
