"""All 24 Synthea bundles ingest, and per patient the search counts equal the bundle's counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import NodeClient

# Resource types that live in the patient's compartment in these bundles (Organization and
# Practitioner do not refer to the patient).
UNLINKED = {"Patient", "Organization", "Practitioner"}


def _bundle_counts(bundle: dict[str, object]) -> Counter[str]:
    entries = bundle["entry"]
    assert isinstance(entries, list)
    return Counter(e["resource"]["resourceType"] for e in entries)


@pytest.mark.slow
def test_synthea_bundles_ingest_and_counts_match(node: NodeClient, synthea_bundles: list[Path]) -> None:
    """Every Synthea transaction is accepted, and `Type?patient=` totals equal the bundle's counts."""
    for path in synthea_bundles:
        raw = path.read_bytes()
        bundle = orjson.loads(raw)
        response = node.client.post(
            "/fhir", content=raw, headers={**node.admin, "Content-Type": "application/fhir+json"}
        )
        assert response.status_code == 200, response.text
        entries = response.json()["entry"]
        assert all(e["response"]["status"] == "201 Created" for e in entries)
        patient_index = next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Patient")
        patient_id = entries[patient_index]["response"]["location"].split("/")[1]
        expected = _bundle_counts(bundle)
        for resource_type, count in expected.items():
            if resource_type in UNLINKED:
                continue
            found = node.client.get(
                f"/fhir/{resource_type}",
                params={"patient": patient_id, "_count": "0"},
                headers=node.clinician,
            )
            assert found.status_code == 200, found.text
            assert found.json()["total"] == count, (path.name, resource_type)
        everything = node.client.get(
            f"/fhir/Patient/{patient_id}/$everything", params={"_count": "0"}, headers=node.clinician
        ).json()
        linked = sum(c for t, c in expected.items() if t not in UNLINKED)
        assert everything["total"] == linked + 1
    totals = node.client.get("/fhir/Patient", params={"_count": "0"}, headers=node.clinician).json()
    assert totals["total"] == 24
