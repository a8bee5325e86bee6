"""The node's CapabilityStatement: generated from the code that implements it, so it cannot drift."""

from __future__ import annotations

from typing import Any

from node.fhir.resource_types import R4_RESOURCE_TYPES
from node.fhir.search_params import SEARCH_PARAMS
from node.fhir.validation import VALIDATED_TYPES

__all__ = ["capability_statement"]

_INTERACTIONS = ["read", "vread", "update", "delete", "history-instance", "create", "search-type"]
_COMMON_PARAMS = [
    {"name": "_id", "type": "token"},
    {"name": "_lastUpdated", "type": "date"},
]


def _resource_entry(resource_type: str) -> dict[str, Any]:
    params = SEARCH_PARAMS.get(resource_type, {})
    includes = [f"{resource_type}:{p.name}" for p in params.values() if p.type == "reference"]
    revincludes = sorted(
        f"{source}:{p.name}"
        for source, source_params in SEARCH_PARAMS.items()
        for p in source_params.values()
        if p.type == "reference" and (not p.targets or resource_type in p.targets)
    )
    entry: dict[str, Any] = {
        "type": resource_type,
        "interaction": [{"code": code} for code in _INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchInclude": includes,
        "searchRevInclude": revincludes,
        "searchParam": _COMMON_PARAMS
        + [{"name": p.name, "type": p.type} for p in sorted(params.values(), key=lambda p: p.name)],
    }
    if resource_type in VALIDATED_TYPES:
        entry["documentation"] = "Validated on write (required elements, required bindings, references)."
    if resource_type == "Patient":
        entry["operation"] = [
            {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}
        ]
    return entry


def capability_statement(base_url: str, software_version: str) -> dict[str, Any]:
    """The R4 CapabilityStatement of this node's FHIR API."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-26",
        "kind": "instance",
        "software": {"name": "medfed node", "version": software_version},
        "implementation": {"description": "medfed hospital node FHIR API", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Bearer tokens issued by the node administrator "
                    "(medfed node token create); role clinician reads, role admin also writes."
                },
                "resource": [_resource_entry(t) for t in sorted(R4_RESOURCE_TYPES)],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
