"""Lean FHIR R4 validation on the ingest path: node.fhir.validation and node.fhir.resource_types."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from common.errors import ErrorCode, InputError
from node.fhir.resource_types import R4_RESOURCE_TYPES
from node.fhir.validation import VALIDATED_TYPES, validate_resource

PLANT = "PLANTED-7f3c1e9b"
PATIENT_REF = {"reference": "Patient/p1"}
ENCOUNTER_REF = {"reference": "Encounter/e1"}
LOINC = "http://loinc.org"

# One small valid resource of each validated type; each test case below breaks one thing in a copy.
VALID: dict[str, dict[str, Any]] = {
    "Patient": {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"lastUpdated": "2024-05-01T10:00:00Z", "tag": [{"system": "urn:x", "code": "t"}]},
        "identifier": [{"use": "official", "system": "urn:oid:1.2.3", "value": "12345"}],
        "name": [{"use": "official", "family": "Doe", "given": ["Jane", "Q"]}],
        "telecom": [{"system": "phone", "value": "555-0100", "use": "home"}],
        "gender": "female",
        "birthDate": "1970-01-31",
        "address": [{"use": "home", "line": ["1 Main St"], "city": "Springfield", "country": "US"}],
        "multipleBirthBoolean": False,
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]}}],
        "managingOrganization": {"reference": "Organization/o1"},
    },
    "Encounter": {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": PATIENT_REF,
        "participant": [{"individual": {"reference": "Practitioner/pr1"}}],
        "period": {"start": "2024-05-01T10:00:00+02:00", "end": "2024-05-01T10:30:00+02:00"},
        "serviceProvider": {"reference": "Organization/o1"},
    },
    "Observation": {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "category": [{"coding": [{"system": "urn:x", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "8302-2", "display": "Body Height"}]},
        "subject": PATIENT_REF,
        "encounter": ENCOUNTER_REF,
        "effectiveDateTime": "2024-05-01T10:00:00Z",
        "issued": "2024-05-01T10:00:00.123Z",
        "valueQuantity": {"value": 172.5, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"},
    },
    "Condition": {
        "resourceType": "Condition",
        "id": "c1",
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
        "subject": PATIENT_REF,
        "onsetDateTime": "2020-02",
    },
    "MedicationRequest": {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "urn:x", "code": "313782"}]},
        "subject": PATIENT_REF,
        "requester": {"reference": "Practitioner/pr1"},
        "dosageInstruction": [
            {
                "sequence": 1,
                "timing": {"repeat": {"frequency": 1, "period": 1.0, "periodUnit": "d"}},
                "asNeededBoolean": False,
                "doseAndRate": [{"doseQuantity": {"value": 1}}],
            }
        ],
    },
    "Procedure": {
        "resourceType": "Procedure",
        "id": "pc1",
        "status": "completed",
        "code": {"coding": [{"system": "urn:x", "code": "430193006"}]},
        "subject": PATIENT_REF,
        "performedPeriod": {"start": "2024-05-01", "end": "2024-05-01"},
    },
    "DiagnosticReport": {
        "resourceType": "DiagnosticReport",
        "id": "d1",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "51990-0"}]},
        "subject": PATIENT_REF,
        "effectiveDateTime": "2024-05-01",
        "result": [{"reference": "Observation/o1"}],
    },
    "AllergyIntolerance": {
        "resourceType": "AllergyIntolerance",
        "id": "a1",
        "type": "allergy",
        "category": ["food"],
        "criticality": "low",
        "patient": PATIENT_REF,
        "reaction": [{"manifestation": [{"text": "rash"}], "severity": "mild"}],
    },
    "Immunization": {
        "resourceType": "Immunization",
        "id": "i1",
        "status": "completed",
        "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]},
        "patient": PATIENT_REF,
        "occurrenceDateTime": "2024-05-01T10:00:00Z",
        "primarySource": True,
    },
}

ElementPath = tuple[str | int, ...]


def _broken(rtype: str, path: ElementPath, value: Any = ..., *, delete: bool = False) -> dict[str, Any]:
    """A copy of VALID[rtype] with the element at ``path`` replaced by ``value`` or deleted."""
    resource = copy.deepcopy(VALID[rtype])
    node: Any = resource
    for part in path[:-1]:
        node = node[part]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return resource


def _error(resource: Any, location: str = "") -> InputError:
    with pytest.raises(InputError) as caught:
        validate_resource(resource, location=location)
    return caught.value


def _everything_said(exc: InputError) -> str:
    """All the text an error carries, however it might be logged or returned."""
    return "\n".join([str(exc), repr(exc), exc.detail, exc.public_message, *exc.hints, repr(exc.args)])


# --- the list of R4 types ----------------------------------------------------------------------------


def test_r4_resource_types_are_the_146_types_of_r4_4_0_1() -> None:
    """The set holds the 146 R4 types: no abstract types, none of those R4B added."""
    assert len(R4_RESOURCE_TYPES) == 146
    assert {
        "Account",
        "Patient",
        "Observation",
        "Claim",
        "ExplanationOfBenefit",
        "Bundle",
    } <= R4_RESOURCE_TYPES
    assert {"MedicinalProduct", "SubstanceSpecification", "EffectEvidenceSynthesis"} <= R4_RESOURCE_TYPES
    assert {"VisionPrescription", "Parameters", "OperationOutcome", "CatalogEntry"} <= R4_RESOURCE_TYPES
    assert not {"Resource", "DomainResource"} & R4_RESOURCE_TYPES
    assert not {"SubscriptionTopic", "SubscriptionStatus", "Citation", "Ingredient"} & R4_RESOURCE_TYPES
    assert VALIDATED_TYPES <= R4_RESOURCE_TYPES
    assert len(VALIDATED_TYPES) == 9


# --- what validates ------------------------------------------------------------------------------------


def test_every_entry_of_the_synthea_bundles_validates(synthea_bundles: list[Path]) -> None:
    """Every resource in the 24 Synthea R4 transaction bundles passes validation."""
    failures: list[str] = []
    count = 0
    for path in synthea_bundles:
        bundle = json.loads(path.read_bytes())
        for index, entry in enumerate(bundle["entry"]):
            count += 1
            try:
                validate_resource(entry["resource"], location=f"entry[{index}].resource.")
            except InputError as exc:
                failures.append(f"{path.name}: {exc.code}: {exc.hints}")
    assert count > 3000
    assert failures == []


@pytest.mark.parametrize("rtype", sorted(VALID))
def test_small_valid_resources_validate(rtype: str) -> None:
    """A valid resource of each validated type returns None."""
    validate_resource(copy.deepcopy(VALID[rtype]))


def test_unknown_elements_extensions_and_modifier_extensions_are_accepted() -> None:
    """Elements not modelled, extensions and modifierExtension (top level and nested) do not reject."""
    resource = copy.deepcopy(VALID["Observation"])
    resource["extension"] = [{"url": "http://example.org/x", "valueString": "x"}]
    resource["modifierExtension"] = [{"url": "http://example.org/m", "valueBoolean": True}]
    resource["somethingFromR5"] = {"nested": [1, 2, {"deep": None}]}
    resource["code"]["coding"][0]["extension"] = [{"url": "http://example.org/c", "valueCode": "a"}]
    resource["component"] = [
        {
            "modifierExtension": [{"url": "http://example.org/m2", "valueInteger": 1}],
            "code": {"text": "systolic"},
            "valueQuantity": {"value": 120},
            "unknownBackboneElement": True,
        }
    ]
    validate_resource(resource)


def test_primitive_extensions_stand_in_for_missing_values() -> None:
    """A required primitive sent only as ``_status``, and a null in ``given`` backed by ``_given``, pass."""
    resource = _broken("Observation", ("status",), delete=True)
    resource["_status"] = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason"}]}
    validate_resource(resource)
    patient = _broken("Patient", ("name", 0, "given"), ["Jane", None])
    patient["name"][0]["_given"] = [None, {"extension": [{"url": "http://example.org/x"}]}]
    validate_resource(patient)


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/p1",
        "Patient/p1/_history/2",
        "Patient?identifier=http://hl7.org/fhir/sid/us-ssn|999-99-9999",
        "https://fhir.example.org/r4/Patient/p1",
        "https://fhir.example.org/r4/Practitioner/p1",
        "urn:uuid:ba4aa91d-dcb4-4b9f-84fb-f2a9fa57a9fe",
        "urn:oid:1.2.840.113619.2.62",
        "#p1",
    ],
)
def test_reference_forms_that_r4_allows_are_accepted(reference: str) -> None:
    """Relative, versioned, conditional, absolute, urn:uuid, urn:oid and contained references validate."""
    validate_resource(_broken("Observation", ("subject",), {"reference": reference}))


def test_other_known_types_are_checked_for_id_and_meta_only() -> None:
    """Another R4 type passes with any content, but not with a bad id or a meta that is not an object."""
    organization = {"resourceType": "Organization", "id": "o1", "meta": {}, "name": 5, "active": "maybe"}
    validate_resource(organization)
    bad_id = _error({"resourceType": "Organization", "id": "has space"})
    assert bad_id.code is ErrorCode.INVALID_RESOURCE
    assert bad_id.hints == ("Organization.id: invalid format",)
    bad_meta = _error({"resourceType": "Claim", "id": 7, "meta": []})
    assert bad_meta.hints == ("Claim.id: wrong type", "Claim.meta: wrong type")


# --- what is rejected, and the hint that says where ------------------------------------------------------

REJECTIONS: list[tuple[str, dict[str, Any], str]] = [
    # required elements
    ("Observation.status", _broken("Observation", ("status",), delete=True), "Observation.status: missing"),
    ("Observation.code", _broken("Observation", ("code",), delete=True), "Observation.code: missing"),
    ("Encounter.status", _broken("Encounter", ("status",), delete=True), "Encounter.status: missing"),
    ("Encounter.class", _broken("Encounter", ("class",), delete=True), "Encounter.class: missing"),
    (
        "MedicationRequest.status",
        _broken("MedicationRequest", ("status",), delete=True),
        "MedicationRequest.status: missing",
    ),
    (
        "MedicationRequest.intent",
        _broken("MedicationRequest", ("intent",), delete=True),
        "MedicationRequest.intent: missing",
    ),
    (
        "MedicationRequest.subject",
        _broken("MedicationRequest", ("subject",), delete=True),
        "MedicationRequest.subject: missing",
    ),
    (
        "MedicationRequest.medication[x]",
        _broken("MedicationRequest", ("medicationCodeableConcept",), delete=True),
        "MedicationRequest.medication[x]: missing",
    ),
    (
        "Immunization.status",
        _broken("Immunization", ("status",), delete=True),
        "Immunization.status: missing",
    ),
    (
        "Immunization.vaccineCode",
        _broken("Immunization", ("vaccineCode",), delete=True),
        "Immunization.vaccineCode: missing",
    ),
    (
        "Immunization.patient",
        _broken("Immunization", ("patient",), delete=True),
        "Immunization.patient: missing",
    ),
    (
        "Immunization.occurrence[x]",
        _broken("Immunization", ("occurrenceDateTime",), delete=True),
        "Immunization.occurrence[x]: missing",
    ),
    ("Condition.subject", _broken("Condition", ("subject",), delete=True), "Condition.subject: missing"),
    ("Procedure.status", _broken("Procedure", ("status",), delete=True), "Procedure.status: missing"),
    ("Procedure.subject", _broken("Procedure", ("subject",), delete=True), "Procedure.subject: missing"),
    (
        "DiagnosticReport.status",
        _broken("DiagnosticReport", ("status",), delete=True),
        "DiagnosticReport.status: missing",
    ),
    (
        "DiagnosticReport.code",
        _broken("DiagnosticReport", ("code",), delete=True),
        "DiagnosticReport.code: missing",
    ),
    (
        "AllergyIntolerance.patient",
        _broken("AllergyIntolerance", ("patient",), delete=True),
        "AllergyIntolerance.patient: missing",
    ),
    (
        "AllergyIntolerance.reaction.manifestation",
        _broken("AllergyIntolerance", ("reaction", 0, "manifestation"), []),
        "AllergyIntolerance.reaction[0].manifestation: empty",
    ),
    (
        "Extension.url",
        _broken("Patient", ("extension",), [{"valueString": "x"}]),
        "Patient.extension[0].url: missing",
    ),
    # required bindings
    (
        "Observation.status code",
        _broken("Observation", ("status",), "done"),
        "Observation.status: not in value set",
    ),
    (
        "Encounter.status code",
        _broken("Encounter", ("status",), "closed"),
        "Encounter.status: not in value set",
    ),
    (
        "MedicationRequest.intent code",
        _broken("MedicationRequest", ("intent",), "request"),
        "MedicationRequest.intent: not in value set",
    ),
    (
        "Immunization.status code",
        _broken("Immunization", ("status",), "given"),
        "Immunization.status: not in value set",
    ),
    (
        "Procedure.status code",
        _broken("Procedure", ("status",), "done"),
        "Procedure.status: not in value set",
    ),
    (
        "DiagnosticReport.status code",
        _broken("DiagnosticReport", ("status",), "FINAL"),
        "DiagnosticReport.status: not in value set",
    ),
    ("Patient.gender", _broken("Patient", ("gender",), "F"), "Patient.gender: not in value set"),
    (
        "HumanName.use",
        _broken("Patient", ("name", 0, "use"), "legal"),
        "Patient.name[0].use: not in value set",
    ),
    (
        "AllergyIntolerance.type",
        _broken("AllergyIntolerance", ("type",), "allergic"),
        "AllergyIntolerance.type: not in value set",
    ),
    (
        "AllergyIntolerance.category",
        _broken("AllergyIntolerance", ("category",), ["food", "drug"]),
        "AllergyIntolerance.category[1]: not in value set",
    ),
    (
        "AllergyIntolerance.criticality",
        _broken("AllergyIntolerance", ("criticality",), "severe"),
        "AllergyIntolerance.criticality: not in value set",
    ),
    (
        "Condition.clinicalStatus",
        _broken("Condition", ("clinicalStatus", "coding", 0, "code"), "ongoing"),
        "Condition.clinicalStatus: not in value set",
    ),
    # primitive formats
    ("date", _broken("Patient", ("birthDate",), "31/01/1970"), "Patient.birthDate: invalid format"),
    ("date month 13", _broken("Patient", ("birthDate",), "1970-13-01"), "Patient.birthDate: invalid format"),
    (
        "dateTime without zone",
        _broken("Observation", ("effectiveDateTime",), "2024-05-01T10:00:00"),
        "Observation.effectiveDateTime: invalid format",
    ),
    (
        "instant without time",
        _broken("Observation", ("issued",), "2024-05-01"),
        "Observation.issued: invalid format",
    ),
    ("id", _broken("Patient", ("id",), "p_1"), "Patient.id: invalid format"),
    (
        "code whitespace",
        _broken("Observation", ("code", "coding", 0, "code"), " 8302-2"),
        "Observation.code.coding[0].code: invalid format",
    ),
    # data type shapes
    (
        "Coding.system type",
        _broken("Observation", ("code", "coding", 0, "system"), 5),
        "Observation.code.coding[0].system: wrong type",
    ),
    (
        "Quantity.value type",
        _broken("Observation", ("valueQuantity", "value"), "172.5"),
        "Observation.valueQuantity.value: wrong type",
    ),
    (
        "boolean type",
        _broken("Immunization", ("primarySource",), "true"),
        "Immunization.primarySource: wrong type",
    ),
    (
        "HumanName.given type",
        _broken("Patient", ("name", 0, "given"), "Jane"),
        "Patient.name[0].given: wrong type",
    ),
    ("CodeableConcept type", _broken("Observation", ("code",), "8302-2"), "Observation.code: wrong type"),
    (
        "Period.start format",
        _broken("Encounter", ("period", "start"), "yesterday"),
        "Encounter.period.start: invalid format",
    ),
    (
        "positiveInt",
        _broken("MedicationRequest", ("dosageInstruction", 0, "timing", "repeat", "frequency"), 0),
        "MedicationRequest.dosageInstruction[0].timing.repeat.frequency: out of range",
    ),
    # references
    (
        "reference shape",
        _broken("Observation", ("subject", "reference"), "patient 1"),
        "Observation.subject.reference: invalid reference",
    ),
    (
        "reference unknown type",
        _broken("Observation", ("subject", "reference"), "Person2/1"),
        "Observation.subject.reference: invalid reference",
    ),
    (
        "reference bad uuid",
        _broken("Observation", ("subject", "reference"), "urn:uuid:1234"),
        "Observation.subject.reference: invalid reference",
    ),
    (
        "reference target",
        _broken("Observation", ("subject", "reference"), "Practitioner/pr1"),
        "Observation.subject.reference: wrong reference target type",
    ),
    (
        "conditional reference target",
        _broken("AllergyIntolerance", ("patient", "reference"), "Group?name=x"),
        "AllergyIntolerance.patient.reference: wrong reference target type",
    ),
    (
        "list reference target",
        _broken("DiagnosticReport", ("result", 0, "reference"), "Condition/c1"),
        "DiagnosticReport.result[0].reference: wrong reference target type",
    ),
    # choice elements
    (
        "two value[x]",
        _broken("Observation", ("valueString",), "tall"),
        "Observation.value[x]: more than one variant",
    ),
    (
        "two effective[x]",
        _broken("Observation", ("effectivePeriod",), {"start": "2024"}),
        "Observation.effective[x]: more than one variant",
    ),
    (
        "two multipleBirth[x]",
        _broken("Patient", ("multipleBirthInteger",), 2),
        "Patient.multipleBirth[x]: more than one variant",
    ),
    (
        "nested two asNeeded[x]",
        _broken("MedicationRequest", ("dosageInstruction", 0, "asNeededCodeableConcept"), {"text": "pain"}),
        "MedicationRequest.dosageInstruction[0].asNeeded[x]: more than one variant",
    ),
]


@pytest.mark.parametrize(("resource", "hint"), [case[1:] for case in REJECTIONS], ids=[case[0] for case in REJECTIONS])
def test_invalid_resources_are_rejected_with_a_hint_naming_the_path(resource: dict[str, Any], hint: str) -> None:
    """Each broken resource raises INVALID_RESOURCE, and one hint names the broken element and the rule."""
    exc = _error(resource)
    assert exc.code is ErrorCode.INVALID_RESOURCE
    assert hint in exc.hints
    assert exc.__cause__ is None
    assert exc.__context__ is None


@pytest.mark.parametrize(
    ("resource", "hint"),
    [
        ({"id": "x"}, "resourceType: missing"),
        ({"resourceType": 5}, "resourceType: wrong type"),
        ({"resourceType": "Bogus"}, "resourceType: unknown"),
        ({"resourceType": "patient"}, "resourceType: unknown"),
        ({"resourceType": "SubscriptionTopic"}, "resourceType: unknown"),
        ({"resourceType": "DomainResource"}, "resourceType: unknown"),
    ],
)
def test_unknown_resource_types_are_rejected(resource: dict[str, Any], hint: str) -> None:
    """A missing, non-string or non-R4 resourceType raises UNKNOWN_RESOURCE_TYPE."""
    exc = _error(resource)
    assert exc.code is ErrorCode.UNKNOWN_RESOURCE_TYPE
    assert exc.hints == (hint,)


def test_hints_start_with_the_location_and_list_every_problem() -> None:
    """With a location, each hint is ``<location><Type>.<path>: <kind>``, one per problem."""
    resource = _broken("Observation", ("status",), delete=True)
    resource["subject"] = {"reference": "Practitioner/pr1"}
    resource["valueString"] = "tall"
    exc = _error(resource, location="entry[3].resource.")
    assert set(exc.hints) == {
        "entry[3].resource.Observation.value[x]: more than one variant",
        "entry[3].resource.Observation.status: missing",
        "entry[3].resource.Observation.subject.reference: wrong reference target type",
    }
    assert exc.detail == "Observation: 3 problem(s)"


def test_a_resource_that_is_not_an_object_is_rejected() -> None:
    """A JSON array or string where a resource belongs raises INVALID_RESOURCE."""
    exc = _error(["Patient"], location="entry[0].resource.")
    assert exc.code is ErrorCode.INVALID_RESOURCE
    assert exc.hints == ("entry[0].resource: wrong type",)


def test_many_problems_are_summarised_after_twenty_hints() -> None:
    """A resource with many problems gets twenty hints and a count of the rest."""
    resource = copy.deepcopy(VALID["Patient"])
    resource["name"] = [{"use": "bogus"} for _ in range(30)]
    exc = _error(resource)
    assert len(exc.hints) == 21
    assert exc.hints[-1] == "Patient: 10 more problems"
    assert exc.detail == "Patient: 30 problem(s)"


# --- privacy: no submitted value in any error ----------------------------------------------------------

PLANTED: list[tuple[str, Any]] = [
    ("gender", _broken("Patient", ("gender",), PLANT)),
    ("status", _broken("Observation", ("status",), PLANT)),
    ("birthDate", _broken("Patient", ("birthDate",), PLANT)),
    ("id", _broken("Patient", ("id",), PLANT + " x")),
    ("reference", _broken("Observation", ("subject", "reference"), PLANT)),
    ("reference target", _broken("Observation", ("subject", "reference"), f"Practitioner/{PLANT}")),
    ("code", _broken("Observation", ("code", "coding", 0, "code"), f" {PLANT}")),
    ("binding", _broken("Condition", ("clinicalStatus", "coding", 0, "code"), PLANT)),
    ("wrong type", _broken("Observation", ("code",), PLANT)),
    ("list item", _broken("Patient", ("name", 0, "given"), [PLANT, 5])),
    ("key", _broken("Observation", ("code",), {PLANT: PLANT, "coding": PLANT})),
    ("choice", _broken("Observation", ("valueString",), PLANT)),
    ("resourceType", {"resourceType": PLANT, "id": PLANT}),
    ("other type id", {"resourceType": "Organization", "id": f"{PLANT}!", "name": PLANT}),
    ("contained", _broken("Encounter", ("contained",), [{"resourceType": PLANT, "id": PLANT}])),
    ("not an object", [PLANT]),
]


@pytest.mark.parametrize("resource", [case[1] for case in PLANTED], ids=[case[0] for case in PLANTED])
def test_submitted_values_never_appear_in_errors(resource: Any) -> None:
    """A value planted in an invalid resource appears nowhere in str, repr, detail or hints."""
    exc = _error(resource)
    assert PLANT not in _everything_said(exc)
    assert exc.__context__ is None


# --- agreement with fhir.resources.R4B ---------------------------------------------------------------

# R4 required elements (1..1, 1..*) of each validated type, and a second variant for a choice element.
REQUIRED: dict[str, tuple[str, ...]] = {
    "Patient": (),
    "Encounter": ("status", "class"),
    "Observation": ("status", "code"),
    "Condition": ("subject",),
    "MedicationRequest": ("status", "intent", "subject", "medicationCodeableConcept"),
    "Procedure": ("status", "subject"),
    "DiagnosticReport": ("status", "code"),
    "AllergyIntolerance": ("patient",),
    "Immunization": ("status", "vaccineCode", "patient", "occurrenceDateTime"),
}
SECOND_VARIANT: dict[str, tuple[str, Any]] = {
    "Observation": ("valueBoolean", True),
    "Condition": ("onsetString", "as a child"),
    "Procedure": ("performedString", "last year"),
    "Immunization": ("occurrenceString", "last year"),
    "MedicationRequest": ("medicationReference", {"reference": "Medication/m1"}),
}


def _mutations(resource: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Copies of ``resource`` each broken in one way that R4 forbids."""
    rtype = resource["resourceType"]
    out: list[tuple[str, dict[str, Any]]] = []
    for name in REQUIRED[rtype]:
        if name in resource:
            broken = copy.deepcopy(resource)
            del broken[name]
            out.append((f"delete {name}", broken))
            broken = copy.deepcopy(resource)
            broken[name] = 7
            out.append((f"{name} = 7", broken))
    if rtype in SECOND_VARIANT:
        name, value = SECOND_VARIANT[rtype]
        out.append((f"add {name}", {**copy.deepcopy(resource), name: value}))
    if "subject" in resource:
        out.append(("subject as string", {**copy.deepcopy(resource), "subject": "Patient/p1"}))
    return out


def _r4b_rejects(resource: dict[str, Any]) -> bool:
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except ValidationError:
        return True
    return False


def test_what_fhir_resources_r4b_rejects_we_reject_too(synthea_bundles: list[Path]) -> None:
    """Synthea resources broken in ways R4B's models reject are rejected here as well.

    fhir.resources 8.3 (R4B) checks required elements, choice groups and types but not required
    value-set bindings, so those are covered by the cases above instead.
    """
    samples: dict[str, list[dict[str, Any]]] = {rtype: [] for rtype in VALIDATED_TYPES}
    for path in synthea_bundles:
        for entry in json.loads(path.read_bytes())["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] in samples and len(samples[resource["resourceType"]]) < 3:
                samples[resource["resourceType"]].append(resource)
    assert all(samples.values()), "every validated type occurs in the Synthea bundles"
    compared = 0
    missed: list[str] = []
    for rtype, resources in sorted(samples.items()):
        for resource in resources:
            for what, broken in _mutations(resource):
                if not _r4b_rejects(broken):
                    continue
                compared += 1
                try:
                    validate_resource(broken)
                except InputError:
                    continue
                missed.append(f"{rtype}: {what}")
    assert compared >= 100
    assert missed == []


# --- random input -------------------------------------------------------------------------------------

ELEMENT_NAMES = sorted(
    {name for resource in VALID.values() for name in resource}
    | {"coding", "system", "code", "reference", "given", "family", "value", "url", "extension", "start"}
    | {"valueString", "valueBoolean", "_status", "_valueString", "component", "contained", "text", "div"}
    | {"onsetString", "medicationReference", "occurrenceString", "effectivePeriod", "note", "repeat"}
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            PLANT,
            "final",
            "female",
            "Patient/p1",
            "Practitioner/1",
            "urn:uuid:x",
            "2024-05-01",
            "2024-13-01",
            "",
        ]
    )
)
KEYS = st.sampled_from(ELEMENT_NAMES) | st.text(max_size=8)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)
RESOURCE_TYPES = st.sampled_from([*sorted(VALIDATED_TYPES), "Organization", "Bundle", "Bogus"]) | st.text(max_size=6)


def _check_random(resource: Any) -> None:
    """Validation returns None or raises InputError; the error never repeats the planted value."""
    error: InputError | None = None
    try:
        validate_resource(resource, location="entry[0].resource.")
    except InputError as exc:
        error = exc
    if error is not None:
        assert error.code in (ErrorCode.INVALID_RESOURCE, ErrorCode.UNKNOWN_RESOURCE_TYPE)
        assert error.hints
        assert PLANT not in _everything_said(error)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(rtype=RESOURCE_TYPES, body=st.dictionaries(KEYS, JSON_VALUES, max_size=8))
def test_random_json_objects_validate_or_raise_input_error(rtype: str, body: dict[str, Any]) -> None:
    """Any JSON object, with any resourceType, either validates or raises InputError, never anything else."""
    _check_random({**body, "resourceType": rtype})


def _paths(node: Any, prefix: ElementPath = ()) -> list[ElementPath]:
    """Every path to an element inside ``node``."""
    out: list[ElementPath] = []
    items: list[tuple[str | int, Any]] = (
        list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
    )
    for key, child in items:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data(), rtype=st.sampled_from(sorted(VALID)))
def test_valid_resources_with_one_element_replaced_validate_or_raise_input_error(
    data: st.DataObject, rtype: str
) -> None:
    """A valid resource with any one element replaced by random JSON validates or raises InputError."""
    paths = [path for path in _paths(VALID[rtype]) if path != ("resourceType",)]
    path = data.draw(st.sampled_from(paths))
    _check_random(_broken(rtype, path, data.draw(JSON_VALUES)))
