"""Patients, labs and diagnoses for the record-locator tests (in-process and with real processes).

One person, "Beatrix Quennell", is known at several hospitals with slightly different records (a new
address, a typo-free name); a relative with the same name and suburb but another birth date and street
is POSSIBLE in the index and must be refused by the holder's demographic re-check. Clinical dates are
relative to today, so "the last 12 months" means the same thing whenever the tests run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "LAB_CODE",
    "OLD_LAB_CODE",
    "condition",
    "lab",
    "opt_out_consent",
    "patient",
]

LAB_CODE = "718-7"  # haemoglobin
OLD_LAB_CODE = "2345-7"  # glucose, measured more than a year ago: never released
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def _days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def patient(
    *,
    given: str = "Beatrix",
    family: str = "Quennell",
    birth_date: str = "1961-04-27",
    line: str = "14 Wattle Crescent",
    city: str = "Ngunnawal",
    postcode: str = "2913",
    mrn: str | None = None,
    national_id: str | None = None,
    resident_id: str | None = None,
) -> dict[str, Any]:
    """A FHIR R4 Patient with a home address (and an MRN, a national id, a Chinese resident id when given)."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": "female",
        "birthDate": birth_date,
        "address": [{"use": "home", "line": [line], "city": city, "state": "ACT", "postalCode": postcode}],
    }
    identifiers: list[dict[str, Any]] = []
    if mrn is not None:
        identifiers.append({"system": "urn:hospital:mrn", "value": mrn})
    if national_id is not None:
        identifiers.append(
            {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]},
                "value": national_id,
            }
        )
    if resident_id is not None:
        identifiers.append({"system": "urn:oid:2.16.156.10011.1.3", "value": resident_id})
    if identifiers:
        resource["identifier"] = identifiers
    return resource


def lab(
    patient_id: str, *, code: str = LAB_CODE, days_ago: int = 30, value: float = 13.2, note: str | None = None
) -> dict[str, Any]:
    """A final laboratory Observation of the patient, ``days_ago`` days ago (with a note when given)."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": _days_ago(days_ago),
        "valueQuantity": {"value": value, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"},
    }
    if note is not None:
        resource["note"] = [{"text": note}]
    return resource


def condition(patient_id: str, *, code: str = "E11.9", days_ago: int = 60) -> dict[str, Any]:
    """A diagnosis (ICD-10) of the patient with its onset ``days_ago`` days ago."""
    return {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{patient_id}"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": code}]},
        "onsetDateTime": _days_ago(days_ago),
    }


def opt_out_consent(patient_id: str, *, purpose: str = "TREAT") -> dict[str, Any]:
    """An active deny Consent: ``TREAT`` opts out of record sharing, ``HRESCH`` of research."""
    scope = "research" if purpose == "HRESCH" else "patient-privacy"
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": scope}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "provision": {"type": "deny", "purpose": [{"system": ACT_REASON, "code": purpose}]},
    }
