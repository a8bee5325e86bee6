"""The Synthea bundles as the node stores them: resources with ``urn:uuid:`` references resolved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from node.fhir.resources import rewrite_urn_references


@pytest.fixture(scope="session")
def synthea_resources(synthea_bundles: list[Path]) -> list[dict[str, Any]]:
    """Every resource of the 24 bundles, references rewritten to ``Type/id`` as ingest does."""
    resources: list[dict[str, Any]] = []
    for path in synthea_bundles:
        bundle = json.loads(path.read_bytes())
        urns = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
        resources += [orjson.loads(rewrite_urn_references(orjson.dumps(e["resource"]), urns)) for e in bundle["entry"]]
    return resources
