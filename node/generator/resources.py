"""Builders of the FHIR R4 resources the generator emits, as plain JSON-ready dicts.

Each builder takes finished strings (ids, references, FHIR date-times) and returns a new dict that
shares nothing with any other, so callers may change what they receive. References are whatever the
caller passes: ``Patient/<id>`` for NDJSON, ``urn:uuid:<id>`` inside a transaction Bundle.
"""

from __future__ import annotations

from typing import Any

from node.generator.catalog import ACT_CODE, CVX, ICD10, RXNORM, SNOMED, Allergen, EncounterType
from node.generator.labs import LOINC, UCUM, Lab, Panel

__all__ = [
    "allergy",
    "blood_pressure",
    "condition",
    "encounter",
    "immunization",
    "medication_request",
    "observation",
    "procedure",
    "report",
]

_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_CATEGORY_DISPLAY = {"vital-signs": "Vital Signs", "laboratory": "Laboratory", "exam": "Exam"}
_CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
_CONDITION_CATEGORY_DISPLAY = {
    "problem-list-item": "Problem List Item",
    "encounter-diagnosis": "Encounter Diagnosis",
}
_ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
_V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _status(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def encounter(eid: str, patient: str, kind: EncounterType, start: str, end: str) -> dict[str, Any]:
    """A finished ``Encounter`` of ``kind``."""
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": ACT_CODE, "code": kind.act, "display": kind.act_display},
        "type": [_concept(SNOMED, kind.code, kind.display)],
        "subject": {"reference": patient},
        "period": {"start": start, "end": end},
    }


def condition(
    cid: str,
    patient: str,
    encounter: str,
    code: tuple[str, str],
    *,
    category: str,
    clinical: str,
    verification: str,
    onset: str,
    recorded: str,
    abatement: str | None,
) -> dict[str, Any]:
    """A ``Condition`` coded in ICD-10; ``abatement`` only with an inactive clinical status."""
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": _status(_CONDITION_CLINICAL, clinical),
        "verificationStatus": _status(_CONDITION_VERIFICATION, verification),
        "category": [
            {
                "coding": [
                    {
                        "system": _CONDITION_CATEGORY,
                        "code": category,
                        "display": _CONDITION_CATEGORY_DISPLAY[category],
                    }
                ]
            }
        ],
        "code": _concept(ICD10, code[0], code[1]),
        "subject": {"reference": patient},
        "encounter": {"reference": encounter},
        "onsetDateTime": onset,
    }
    if abatement is not None:
        resource["abatementDateTime"] = abatement
    resource["recordedDate"] = recorded
    return resource


def observation(
    oid: str, patient: str, encounter: str, lab: Lab, value: float, effective: str, issued: str
) -> dict[str, Any]:
    """A final ``Observation`` with a UCUM ``valueQuantity``."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": _OBS_CATEGORY,
                        "code": lab.category,
                        "display": _CATEGORY_DISPLAY[lab.category],
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": lab.code, "display": lab.display}]},
        "subject": {"reference": patient},
        "encounter": {"reference": encounter},
        "effectiveDateTime": effective,
        "issued": issued,
        "valueQuantity": {"value": value, "unit": lab.unit, "system": UCUM, "code": lab.unit},
    }


def _component(code: str, display: str, value: int) -> dict[str, Any]:
    return {
        "code": _concept(LOINC, code, display),
        "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
    }


def blood_pressure(
    oid: str, patient: str, encounter: str, systolic: int, diastolic: int, effective: str
) -> dict[str, Any]:
    """A blood-pressure panel ``Observation`` (85354-9) with systolic and diastolic components."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": _OBS_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": _concept(LOINC, "85354-9", "Blood pressure panel with all children optional"),
        "subject": {"reference": patient},
        "encounter": {"reference": encounter},
        "effectiveDateTime": effective,
        "issued": effective,
        "component": [
            _component("8480-6", "Systolic blood pressure", systolic),
            _component("8462-4", "Diastolic blood pressure", diastolic),
        ],
    }


def report(
    rid: str, patient: str, encounter: str, panel: Panel, results: list[str], effective: str, issued: str
) -> dict[str, Any]:
    """A final laboratory ``DiagnosticReport`` grouping the panel's Observations."""
    return {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "status": "final",
        "category": [{"coding": [{"system": _V2_0074, "code": "LAB", "display": "Laboratory"}]}],
        "code": _concept(LOINC, panel.code, panel.display),
        "subject": {"reference": patient},
        "encounter": {"reference": encounter},
        "effectiveDateTime": effective,
        "issued": issued,
        "result": [{"reference": ref} for ref in results],
    }


def medication_request(
    mid: str, patient: str, encounter: str, med: tuple[str, str], authored: str, reason: str, status: str
) -> dict[str, Any]:
    """An order ``MedicationRequest`` for an RxNorm-coded medicine, for the condition ``reason``."""
    return {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": _concept(RXNORM, med[0], med[1]),
        "subject": {"reference": patient},
        "encounter": {"reference": encounter},
        "authoredOn": authored,
        "reasonReference": [{"reference": reason}],
    }


def procedure(
    pid: str, patient: str, encounter: str, code: tuple[str, str], performed: str, reason: str | None
) -> dict[str, Any]:
    """A completed SNOMED CT-coded ``Procedure``."""
    resource: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": pid,
        "status": "completed",
        "code": _concept(SNOMED, code[0], code[1]),
        "subject": {"reference": patient},
        "encounter": {"reference": encounter},
        "performedDateTime": performed,
    }
    if reason is not None:
        resource["reasonReference"] = [{"reference": reason}]
    return resource


def immunization(iid: str, patient: str, cvx: str, display: str, occurrence: str) -> dict[str, Any]:
    """A completed ``Immunization`` coded in CVX."""
    return {
        "resourceType": "Immunization",
        "id": iid,
        "status": "completed",
        "vaccineCode": _concept(CVX, cvx, display),
        "patient": {"reference": patient},
        "occurrenceDateTime": occurrence,
        "primarySource": True,
    }


def allergy(
    aid: str,
    patient: str,
    encounter: str,
    allergen: Allergen,
    *,
    clinical: str,
    verification: str,
    criticality: str,
    recorded: str,
) -> dict[str, Any]:
    """An ``AllergyIntolerance`` to a SNOMED CT substance."""
    return {
        "resourceType": "AllergyIntolerance",
        "id": aid,
        "clinicalStatus": _status(_ALLERGY_CLINICAL, clinical),
        "verificationStatus": _status(_ALLERGY_VERIFICATION, verification),
        "type": allergen.type,
        "category": [allergen.category],
        "criticality": criticality,
        "code": _concept(SNOMED, allergen.code, allergen.display),
        "patient": {"reference": patient},
        "encounter": {"reference": encounter},
        "recordedDate": recorded,
    }
