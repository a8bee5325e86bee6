"""Transaction and batch Bundles (``POST /fhir``) and the same path for file ingest.

A transaction is all-or-nothing: every entry is checked and every ``urn:uuid:`` reference resolved
before the first write, and all writes share one database transaction. A batch runs each entry on
its own and reports each outcome in the response Bundle.

Order of a transaction, as FHIR R4 asks: DELETE, then POST, then PUT, then GET.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from sqlalchemy.engine import Connection

from common.errors import ErrorCode, InputError, MedfedError
from node.fhir.extract import IndexEntries
from node.fhir.gc_pause import gc_paused
from node.fhir.outcome import operation_outcome
from node.fhir.resources import PreparedResource, format_instant, new_id, now_micros, prepare
from node.fhir.service import FhirService, WriteResult, check_id, check_type
from node.fhir.validation import validate_resource
from node.store.db import write_transaction
from node.store.resources import StoredResource

__all__ = ["BundleOutcome", "process_bundle"]

_METHOD_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}


@dataclass(slots=True)
class _Entry:
    index: int
    method: str
    resource_type: str
    resource_id: str | None
    query: list[tuple[str, str]]
    full_url: str | None
    resource: dict[str, Any] | None
    if_none_exist: list[tuple[str, str]] | None
    if_match: str | None


@dataclass(frozen=True, slots=True)
class BundleOutcome:
    """The response Bundle, and the index entries of what was written (for the ingest summary)."""

    response: dict[str, Any]
    written: list[tuple[str, IndexEntries | None]]
    rejected: list[tuple[int, MedfedError]]


def _entry_error(index: int, exc: MedfedError) -> MedfedError:
    hints = [f"entry[{index}]" + (f".{h}" if h else "") for h in (exc.hints or ("",))]
    return type(exc)(exc.code, detail=exc.detail, hints=hints)


def _parse_entry(index: int, raw: Any) -> _Entry:
    where = f"entry[{index}]"
    if not isinstance(raw, dict):
        raise InputError(ErrorCode.INVALID_BUNDLE, hints=[f"{where}: not an object"])
    request = raw.get("request")
    if not isinstance(request, dict):
        raise InputError(ErrorCode.INVALID_BUNDLE, hints=[f"{where}.request: missing"])
    method, url = request.get("method"), request.get("url")
    if method not in _METHOD_ORDER or not isinstance(url, str) or not url:
        raise InputError(ErrorCode.INVALID_BUNDLE, hints=[f"{where}.request: method or url missing or unsupported"])
    if "?" in url or ":" in url:
        parts = urlsplit(url)
        path, query = parts.path, parse_qsl(parts.query, keep_blank_values=True)
    else:  # the common case, "Type" or "Type/id": no URL parsing needed
        path, query = url, []
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise InputError(ErrorCode.INVALID_BUNDLE, hints=[f"{where}.request.url: no resource type"])
    resource_type, resource_id = segments[0], segments[1] if len(segments) > 1 else None
    try:
        check_type(resource_type)
        if resource_id is not None:
            check_id(resource_id)
    except MedfedError as exc:
        raise _entry_error(index, exc) from None
    resource = raw.get("resource")
    if method in ("POST", "PUT"):
        if not isinstance(resource, dict):
            raise InputError(ErrorCode.INVALID_BUNDLE, hints=[f"{where}.resource: missing"])
        if resource.get("resourceType") != resource_type:
            raise InputError(
                ErrorCode.INVALID_BUNDLE, hints=[f"{where}.resource.resourceType: does not match request.url"]
            )
        if method == "PUT" and resource_id is None:
            raise InputError(ErrorCode.INVALID_BUNDLE, hints=[f"{where}.request.url: PUT needs Type/id"])
        if method == "POST" and resource_id is not None:
            raise InputError(ErrorCode.INVALID_BUNDLE, hints=[f"{where}.request.url: POST takes a type only"])
    if method == "DELETE" and resource_id is None:
        raise InputError(ErrorCode.INVALID_BUNDLE, hints=[f"{where}.request.url: conditional delete is not supported"])
    if_none_exist_raw = request.get("ifNoneExist")
    if_none_exist = None
    if isinstance(if_none_exist_raw, str) and if_none_exist_raw:
        if_none_exist = parse_qsl(if_none_exist_raw.lstrip("?"), keep_blank_values=True)
    if_match = request.get("ifMatch") if isinstance(request.get("ifMatch"), str) else None
    full_url = raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None
    return _Entry(
        index,
        method,
        resource_type,
        resource_id,
        query,
        full_url,
        resource,
        if_none_exist,
        if_match,
    )


def _response_entry(stored: StoredResource, status: str) -> dict[str, Any]:
    return {
        "response": {
            "status": status,
            "location": f"{stored.resource_type}/{stored.id}/_history/{stored.version_id}",
            "etag": f'W/"{stored.version_id}"',
            "lastModified": format_instant(stored.last_updated),
        }
    }


def _check_bundle(bundle: Any, max_entries: int) -> tuple[str, list[Any]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InputError(ErrorCode.INVALID_BUNDLE, hints=["resourceType: expected Bundle"])
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise InputError(ErrorCode.INVALID_BUNDLE, hints=["type: expected transaction or batch"])
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise InputError(ErrorCode.INVALID_BUNDLE, hints=["entry: not a list"])
    if len(entries) > max_entries:
        raise InputError(ErrorCode.PAYLOAD_TOO_LARGE, hints=["entry: more entries than this server accepts"])
    return kind, entries


def process_bundle(
    service: FhirService,
    bundle: Any,
    *,
    max_entries: int,
    search_page: Callable[[str, list[tuple[str, str]]], dict[str, Any]] | None = None,
) -> BundleOutcome:
    """Run a transaction or batch Bundle; raises for a failed transaction, never for a batch entry."""
    kind, raw_entries = _check_bundle(bundle, max_entries)
    with gc_paused():
        if kind == "transaction":
            return _transaction(service, raw_entries, search_page)
        return _batch(service, raw_entries, search_page)


def _transaction(
    service: FhirService,
    raw_entries: list[Any],
    search_page: Callable[[str, list[tuple[str, str]]], dict[str, Any]] | None,
) -> BundleOutcome:
    entries = [_parse_entry(i, raw) for i, raw in enumerate(raw_entries)]
    for entry in entries:
        if entry.resource is not None:
            try:
                validate_resource(entry.resource)
            except MedfedError as exc:
                raise _entry_error(entry.index, exc) from None
    responses: dict[int, dict[str, Any]] = {}
    written: list[tuple[str, IndexEntries | None]] = []
    now = now_micros()
    with write_transaction(service.engine) as conn:
        # Resolve identities first: conditional creates that match, server ids for new resources.
        mapping: dict[str, str] = {}
        creates: list[_Entry] = []
        created_indexes: set[int] = set()
        for entry in entries:
            if entry.method == "POST":
                existing = (
                    service.match_condition(conn, entry.resource_type, entry.if_none_exist)
                    if entry.if_none_exist is not None
                    else None
                )
                if existing is not None:
                    responses[entry.index] = _response_entry(existing, "200 OK")
                    target = f"{existing.resource_type}/{existing.id}"
                else:
                    entry.resource_id = new_id()
                    creates.append(entry)
                    created_indexes.add(entry.index)
                    target = f"{entry.resource_type}/{entry.resource_id}"
                if entry.full_url:
                    mapping[entry.full_url] = target
            elif entry.method == "PUT" and entry.full_url:
                mapping[entry.full_url] = f"{entry.resource_type}/{entry.resource_id}"
        for entry in (e for e in entries if e.method == "DELETE"):
            assert entry.resource_id is not None
            try:
                service.delete_in(conn, entry.resource_type, entry.resource_id)
            except MedfedError as exc:
                raise _entry_error(entry.index, exc) from None
            responses[entry.index] = {"response": {"status": "204 No Content"}}
        prepared: list[PreparedResource] = []
        for entry in creates:  # all creates in one bulk insert
            assert entry.resource is not None
            assert entry.resource_id is not None
            try:
                prepared.append(prepare(entry.resource, entry.resource_id, 1, now, mapping))
            except MedfedError as exc:
                raise _entry_error(entry.index, exc) from None
        service.insert_new(conn, prepared)
        for entry, item in zip(creates, prepared, strict=True):
            responses[entry.index] = _response_entry(item.stored, "201 Created")
            written.append((entry.resource_type, item.index))
        for entry in sorted((e for e in entries if e.method in ("PUT", "GET")), key=lambda e: _METHOD_ORDER[e.method]):
            try:
                if entry.method == "PUT":
                    assert entry.resource is not None
                    entry.resource["id"] = entry.resource_id
                    result = service.update_in(conn, entry.resource, if_match=entry.if_match, urns=mapping)
                    responses[entry.index] = _response_entry(
                        result.stored, "201 Created" if result.created else "200 OK"
                    )
                    written.append((entry.resource_type, None))
                else:
                    responses[entry.index] = _get(service, entry, search_page, conn)
            except MedfedError as exc:
                raise _entry_error(entry.index, exc) from None
    response = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [responses[i] for i in range(len(entries))],
    }
    return BundleOutcome(response, written, [])


def _get(
    service: FhirService,
    entry: _Entry,
    search_page: Callable[[str, list[tuple[str, str]]], dict[str, Any]] | None,
    conn: Connection | None = None,
) -> dict[str, Any]:
    """A GET entry: a read (inside the transaction when ``conn`` is given) or a search (committed state)."""
    if entry.resource_id is not None:
        stored = service.read(entry.resource_type, entry.resource_id, conn=conn)
        return {"resource": orjson.loads(stored.content), **_response_entry(stored, "200 OK")}
    if search_page is None:
        raise InputError(ErrorCode.METHOD_NOT_ALLOWED)
    return {"resource": search_page(entry.resource_type, entry.query), "response": {"status": "200 OK"}}


def _batch(
    service: FhirService,
    raw_entries: list[Any],
    search_page: Callable[[str, list[tuple[str, str]]], dict[str, Any]] | None,
) -> BundleOutcome:
    responses: list[dict[str, Any]] = []
    written: list[tuple[str, IndexEntries | None]] = []
    rejected: list[tuple[int, MedfedError]] = []
    for index, raw in enumerate(raw_entries):
        try:
            entry = _parse_entry(index, raw)
            result: WriteResult | None = None
            if entry.method == "POST":
                assert entry.resource is not None
                result = service.create(entry.resource, if_none_exist=entry.if_none_exist)
            elif entry.method == "PUT":
                assert entry.resource is not None
                assert entry.resource_id is not None
                entry.resource.setdefault("id", entry.resource_id)
                result = service.update(entry.resource_type, entry.resource_id, entry.resource, if_match=entry.if_match)
            elif entry.method == "DELETE":
                assert entry.resource_id is not None
                service.delete(entry.resource_type, entry.resource_id)
                responses.append({"response": {"status": "204 No Content"}})
                continue
            else:
                responses.append(_get(service, entry, search_page))
                continue
            responses.append(_response_entry(result.stored, "201 Created" if result.created else "200 OK"))
            if result.created or entry.method == "PUT":
                written.append((entry.resource_type, None))
        except MedfedError as exc:
            error = _entry_error(index, exc)
            rejected.append((index, error))
            responses.append({"response": {"status": f"{error.status}", "outcome": operation_outcome(error)}})
    response = {"resourceType": "Bundle", "type": "batch-response", "entry": responses}
    return BundleOutcome(response, written, rejected)
