"""The type names FHIRPath may mention in views, and how an item is matched against one.

The engine has no FHIR schema: an item knows its type when the data says so (a choice element such as
``valueQuantity``, a constant's ``valueDate``, a literal, a resource's ``resourceType``) and otherwise
carries ``None``. ``ofType``/``is``/``as`` match a known type exactly and an unknown one by the shape
of its JSON (a string for string-like types, a date-shaped string for ``date``, an object for a
complex type), which is what a schema would conclude for well-formed FHIR.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TypeGuard

from node.fhir.resource_types import R4_RESOURCE_TYPES

__all__ = [
    "COMPLEX_TYPES",
    "KNOWN_TYPES",
    "PRIMITIVE_TYPES",
    "STRING_TYPES",
    "TEMPORAL_TYPES",
    "canonical_type",
    "choice_type",
    "is_number",
    "matches_type",
]

STRING_TYPES = frozenset(
    ("string", "code", "id", "uri", "url", "canonical", "markdown", "oid", "uuid", "base64Binary", "xhtml")
)
INTEGER_TYPES = frozenset(("integer", "unsignedInt", "positiveInt", "integer64"))
TEMPORAL_TYPES = frozenset(("date", "dateTime", "instant", "time"))
PRIMITIVE_TYPES = STRING_TYPES | INTEGER_TYPES | TEMPORAL_TYPES | {"boolean", "decimal"}
# FHIR R4 data types, and the few that R5 adds (the official test suite runs views on R4 and R5).
COMPLEX_TYPES = frozenset(
    (
        "Address", "Age", "Annotation", "Attachment", "BackboneElement", "CodeableConcept", "Coding",
        "ContactDetail", "ContactPoint", "Contributor", "Count", "DataRequirement", "Distance", "Dosage",
        "Duration", "Element", "ElementDefinition", "Expression", "Extension", "HumanName", "Identifier",
        "MarketingStatus", "Meta", "Money", "MoneyQuantity", "Narrative", "ParameterDefinition", "Period",
        "Population", "ProdCharacteristic", "ProductShelfLife", "Quantity", "Range", "Ratio", "Reference",
        "RelatedArtifact", "SampledData", "Signature", "SimpleQuantity", "SubstanceAmount", "Timing",
        "TriggerDefinition", "UsageContext", "CodeableReference", "RatioRange", "Availability",
        "ExtendedContactDetail", "VirtualServiceDetail", "MonetaryComponent", "Resource", "DomainResource",
    )
)  # fmt: skip
KNOWN_TYPES = PRIMITIVE_TYPES | COMPLEX_TYPES | R4_RESOURCE_TYPES
# FHIRPath's own System types, mapped to the FHIR type a value of that kind has.
_SYSTEM_TYPES = {
    "Boolean": "boolean",
    "String": "string",
    "Integer": "integer",
    "Decimal": "decimal",
    "Date": "date",
    "DateTime": "dateTime",
    "Time": "time",
    "Quantity": "Quantity",
}
_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
_DATETIME = re.compile(r"\d{4}(-\d{2}(-\d{2}(T\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?")
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_TIME = re.compile(r"\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?")


def canonical_type(name: str) -> str | None:
    """The FHIR type a specifier names (``FHIR.string``, ``System.String``, ``Quantity``), or None."""
    namespace, _, bare = name.rpartition(".")
    if namespace == "System":
        return _SYSTEM_TYPES.get(bare)
    if namespace not in ("", "FHIR"):
        return None
    if bare in KNOWN_TYPES:
        return bare
    return _SYSTEM_TYPES.get(bare) if namespace == "" else None


def choice_type(suffix: str) -> str | None:
    """The type of a choice element's suffix (``DateTime`` -> ``dateTime``), or None if not a type."""
    if not suffix or not suffix[0].isupper():
        return None
    primitive = suffix[0].lower() + suffix[1:]
    if primitive in PRIMITIVE_TYPES:
        return primitive
    return suffix if suffix in COMPLEX_TYPES else None


def is_number(value: object) -> TypeGuard[int | Decimal]:
    """True for FHIRPath integers and decimals (Python's bool is an int, and is excluded)."""
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def _shape_matches(value: object, wanted: str) -> bool:
    """Whether a value of unknown type has the JSON shape of ``wanted``."""
    if wanted == "boolean":
        return isinstance(value, bool)
    if wanted in INTEGER_TYPES:
        return isinstance(value, int) and not isinstance(value, bool)
    if wanted == "decimal":
        return is_number(value)
    if isinstance(value, str):
        if wanted in STRING_TYPES:
            return True
        patterns = {"date": _DATE, "dateTime": _DATETIME, "instant": _INSTANT, "time": _TIME}
        pattern = patterns.get(wanted)
        return pattern is not None and pattern.fullmatch(value) is not None
    if isinstance(value, dict):
        resource_type = value.get("resourceType")
        if isinstance(resource_type, str):
            return resource_type == wanted or wanted in ("Resource", "DomainResource")
        return wanted in COMPLEX_TYPES
    return False


def matches_type(value: object, known: str | None, wanted: str) -> bool:
    """Whether an item (its value and known type, if any) is of type ``wanted`` (canonical)."""
    if known is not None:
        return known == wanted or (wanted in ("Resource", "DomainResource") and known in R4_RESOURCE_TYPES)
    return _shape_matches(value, wanted)
