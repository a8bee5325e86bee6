"""What node B releases to a clinician elsewhere: a year of laboratory results and diagnoses.

One FHIR R4 ``searchset`` Bundle of the patient's

- ``Observation`` with category ``laboratory`` and an effective date in the last :data:`WINDOW_DAYS`;
- ``Condition`` with an onset or a recorded date in the same window;

read from the node's own store with its own search (so a deleted resource is never released), capped
at :data:`MAX_ENTRIES`. The Patient resource itself is not released: the asking node has its own.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from node.fhir.service import FhirService
from node.store.resources import StoredResource

__all__ = ["MAX_ENTRIES", "WINDOW_DAYS", "release_bundle"]

WINDOW_DAYS = 365
MAX_ENTRIES = 2_000
_PAGE = 500


def _search_all(
    service: FhirService, resource_type: str, params: list[tuple[str, str]], limit: int
) -> list[StoredResource]:
    query = service.parse(resource_type, [*params, ("_count", str(_PAGE))])
    found: list[StoredResource] = []
    while len(found) < limit:
        page = service.search(query)
        found.extend(page.matches)
        if page.next_offset is None:
            break
        query = dataclasses.replace(query, offset=page.next_offset)
    return found[:limit]


def release_bundle(service: FhirService, patient_id: str, *, now: datetime | None = None) -> dict[str, Any]:
    """The searchset Bundle of the patient's labs and diagnoses of the last year."""
    since = ((now or datetime.now(UTC)) - timedelta(days=WINDOW_DAYS)).date().isoformat()
    subject = f"Patient/{patient_id}"
    labs = _search_all(
        service,
        "Observation",
        [("patient", subject), ("category", "laboratory"), ("date", f"ge{since}")],
        MAX_ENTRIES,
    )
    conditions: dict[str, StoredResource] = {}
    for date_param in ("onset-date", "recorded-date"):
        for stored in _search_all(
            service, "Condition", [("patient", subject), (date_param, f"ge{since}")], MAX_ENTRIES
        ):
            conditions.setdefault(stored.id, stored)
    entries = [
        {
            "fullUrl": f"{stored.resource_type}/{stored.id}",
            "resource": orjson.loads(stored.content),
            "search": {"mode": "match"},
        }
        for stored in [*labs, *conditions.values()][:MAX_ENTRIES]
    ]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
