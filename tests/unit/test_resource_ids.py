"""Server-assigned ids and resource stamping."""

from __future__ import annotations

import uuid

import orjson
import pytest

from common.errors import ErrorCode, InputError
from node.fhir.resources import new_id, prepare, rewrite_urn_references


def test_new_ids_are_uuid7_unique_and_time_ordered() -> None:
    """Ids are RFC 9562 version-7 UUIDs, unique, and sort in the order they were made."""
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_prepare_stamps_id_meta_and_resolves_urns() -> None:
    """prepare sets id and meta, rewrites urn references in the stored JSON and indexes the target."""
    resource = {
        "resourceType": "Observation",
        "id": "client-chosen",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "urn:uuid:aaaa"},
    }
    prepared = prepare(resource, "o1", 3, 1_700_000_000_000_000, {"urn:uuid:aaaa": "Patient/p1"})
    stored = orjson.loads(prepared.stored.content)
    assert stored["id"] == "o1"
    assert stored["meta"]["versionId"] == "3"
    assert stored["meta"]["lastUpdated"] == "2023-11-14T22:13:20.000Z"
    assert stored["subject"]["reference"] == "Patient/p1"
    assert prepared.index is not None
    assert ("patient", "Patient", "p1") in prepared.index.references


def test_unresolved_urn_is_an_invalid_bundle() -> None:
    """A urn reference the Bundle does not define is refused (and not echoed)."""
    raw = orjson.dumps({"subject": {"reference": "urn:uuid:secret-value"}})
    with pytest.raises(InputError) as caught:
        rewrite_urn_references(raw, {"urn:uuid:other": "Patient/x"})
    assert caught.value.code is ErrorCode.INVALID_BUNDLE
    assert "secret-value" not in str(caught.value.hints)
