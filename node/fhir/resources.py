"""Preparing a resource for storage: server id, ``meta.versionId``/``lastUpdated``, index entries."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from node.fhir.extract import IndexEntries, extract_index
from node.store.resources import StoredResource

__all__ = ["PreparedResource", "format_instant", "new_id", "now_micros", "prepare"]


def now_micros() -> int:
    """The current time in epoch microseconds (the store's time unit)."""
    return time.time_ns() // 1_000


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


def prepare(resource: dict[str, Any], resource_id: str, version_id: int, now: int) -> PreparedResource:
    """Stamp id and meta onto ``resource`` (in place) and build its stored row and index entries."""
    resource["id"] = resource_id
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = format_instant(now)
    resource["meta"] = meta
    resource_type = resource["resourceType"]
    stored = StoredResource(resource_type, resource_id, version_id, now, False, orjson.dumps(resource))
    return PreparedResource(stored, extract_index(resource))
