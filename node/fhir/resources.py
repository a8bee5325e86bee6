"""Preparing a resource for storage: server id, ``meta.versionId``/``lastUpdated``, index entries."""

from __future__ import annotations

import functools
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from common.errors import ErrorCode, InputError
from node.fhir.extract import IndexEntries, extract_index
from node.store.resources import StoredResource

__all__ = ["PreparedResource", "format_instant", "new_id", "now_micros", "prepare", "rewrite_urn_references"]


def now_micros() -> int:
    """The current time in epoch microseconds (the store's time unit)."""
    return time.time_ns() // 1_000


@functools.lru_cache(maxsize=256)  # a Bundle stamps thousands of resources with one time
def format_instant(micros: int) -> str:
    """An R4 ``instant`` for a time in epoch microseconds."""
    moment = datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    """A server-assigned logical id."""
    return str(uuid.uuid4())


class PreparedResource:
    """A resource ready to be written: its stored row and its index entries."""

    __slots__ = ("index", "stored")

    def __init__(self, stored: StoredResource, index: IndexEntries | None) -> None:
        self.stored = stored
        self.index = index


_URN_REFERENCE = re.compile(rb'"reference":"(urn:(?:uuid|oid):[^"\\]*)"')


def rewrite_urn_references(raw: bytes, urns: Mapping[str, str]) -> bytes:
    """Serialised JSON with ``"reference":"urn:…"`` values replaced by ``Type/id`` from ``urns``.

    Works on bytes (orjson writes ``"reference":"…"`` without spaces): an order of magnitude faster
    than walking large resources such as Claims in Python. A urn the Bundle does not define is an error.
    """
    if b'"urn:' not in raw:
        return raw
    unresolved = False

    def replace(match: re.Match[bytes]) -> bytes:
        nonlocal unresolved
        target = urns.get(match.group(1).decode())
        if target is None:
            unresolved = True
            return match.group(0)
        return b'"reference":' + orjson.dumps(target)

    rewritten = _URN_REFERENCE.sub(replace, raw)
    if unresolved:
        raise InputError(ErrorCode.INVALID_BUNDLE, hints=["resource: reference to a urn not in this Bundle"])
    return rewritten


def prepare(
    resource: dict[str, Any],
    resource_id: str,
    version_id: int,
    now: int,
    urns: Mapping[str, str] | None = None,
) -> PreparedResource:
    """Stamp id and meta onto ``resource`` (in place) and build its stored row and index entries.

    With ``urns`` (a Bundle's fullUrl -> ``Type/id``), the stored JSON and the index carry the
    resolved references; the dict itself keeps the urns.
    """
    resource["id"] = resource_id
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = format_instant(now)
    resource["meta"] = meta
    resource_type = resource["resourceType"]
    content = orjson.dumps(resource)
    if urns:
        content = rewrite_urn_references(content, urns)
    stored = StoredResource(resource_type, resource_id, version_id, now, False, content)
    return PreparedResource(stored, extract_index(resource, urns))
