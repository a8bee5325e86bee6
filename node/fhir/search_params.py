"""The FHIR R4 search parameters this node indexes, per resource type.

Names, types and element paths follow the R4 definitions (hl7.org/fhir/R4/searchparameter-registry.html
and each resource's "Search Parameters" table). A path is the R4 FHIRPath expression without the
resource type and without FHIRPath functions: ``Observation.effective`` becomes ``effective[x]``
(any ``effective`` + type key), ``Patient.name.family`` becomes ``name.family``. What the functions
did is carried elsewhere, stated beside each parameter:

* ``X.subject.where(resolve() is Patient)`` (the ``patient`` parameters) is the path ``subject``
  with ``targets=("Patient",)``: only references to a Patient are indexed.
* ``(X.medication as CodeableConcept)`` is ``medication[x]`` on a token parameter: extraction takes
  only the choice types a parameter type can use (see :mod:`node.fhir.extract`).
* ``Patient.telecom.where(system='phone')`` and ``...'email'`` are ``telecom`` on the parameters
  ``phone`` and ``email``; extraction filters on ``ContactPoint.system`` by parameter name.
* ``Patient.deceased.exists() and Patient.deceased != false`` (``deceased``) is computed by
  extraction as one token, ``true`` or ``false``.

A few medfed aliases (marked ``medfed alias``) make ``subject`` and ``code`` work on every clinical
type, as the node's API promises; each one is an extra name for an R4 path, never a change to an R4
parameter. The common parameters ``_id`` and ``_lastUpdated`` are the store's, not in this registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = ["PRIMARY_DATE_PARAM", "SEARCH_PARAMS", "ParamType", "SearchParam", "search_param"]

ParamType = Literal["token", "string", "date", "reference"]


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One search parameter of one resource type: its name, type and element paths."""

    name: str
    type: ParamType
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()


def _token(name: str, *paths: str) -> SearchParam:
    return SearchParam(name, "token", paths)


def _string(name: str, *paths: str) -> SearchParam:
    return SearchParam(name, "string", paths)


def _date(name: str, *paths: str) -> SearchParam:
    return SearchParam(name, "date", paths)


def _reference(name: str, *paths: str, targets: tuple[str, ...] = ()) -> SearchParam:
    return SearchParam(name, "reference", paths, targets)


# Shared definitions (R4 defines these once for many resource types).
_IDENTIFIER = _token("identifier", "identifier")
_STATUS = _token("status", "status")
_CODE = _token("code", "code")
_CATEGORY = _token("category", "category")
_ENCOUNTER = _reference("encounter", "encounter", targets=("Encounter",))
# X.subject.where(resolve() is Patient)
_PATIENT_FROM_SUBJECT = _reference("patient", "subject", targets=("Patient",))
# X.patient, where the element itself is Reference(Patient)
_PATIENT_FROM_PATIENT = _reference("patient", "patient", targets=("Patient",))
# The R4 `subject` parameters; targets are the R4 SearchParameter.target lists.
_SUBJECT_PATIENT_GROUP = _reference("subject", "subject", targets=("Group", "Patient"))
_SUBJECT_OBSERVATION_LIKE = _reference("subject", "subject", targets=("Group", "Device", "Patient", "Location"))

_BY_TYPE: dict[str, tuple[SearchParam, ...]] = {
    "Patient": (
        _IDENTIFIER,
        _string("name", "name"),
        _string("family", "name.family"),
        _string("given", "name.given"),
        _date("birthdate", "birthDate"),
        _token("gender", "gender"),
        _string("address", "address"),
        _string("address-city", "address.city"),
        _string("address-state", "address.state"),
        _string("address-postalcode", "address.postalCode"),
        _string("address-country", "address.country"),
        _token("telecom", "telecom"),
        _token("phone", "telecom"),  # Patient.telecom.where(system='phone')
        _token("email", "telecom"),  # Patient.telecom.where(system='email')
        _token("deceased", "deceased[x]"),  # deceased.exists() and deceased != false
        _date("death-date", "deceased[x]"),  # (Patient.deceased as dateTime)
        _token("active", "active"),
        _reference("organization", "managingOrganization", targets=("Organization",)),
    ),
    "Observation": (
        _PATIENT_FROM_SUBJECT,
        _SUBJECT_OBSERVATION_LIKE,
        _ENCOUNTER,
        _CODE,
        _CATEGORY,
        _date("date", "effective[x]"),
        _STATUS,
        _IDENTIFIER,
    ),
    "Condition": (
        _PATIENT_FROM_SUBJECT,
        _SUBJECT_PATIENT_GROUP,
        _ENCOUNTER,
        _CODE,
        _date("onset-date", "onset[x]"),  # Condition.onset.as(dateTime) | Condition.onset.as(Period)
        _date("recorded-date", "recordedDate"),
        _token("clinical-status", "clinicalStatus"),
        _token("verification-status", "verificationStatus"),
        _CATEGORY,
        _IDENTIFIER,
    ),
    "Encounter": (
        _PATIENT_FROM_SUBJECT,
        _SUBJECT_PATIENT_GROUP,
        _date("date", "period"),
        _STATUS,
        _token("class", "class"),
        _token("type", "type"),
        # medfed alias: R4 Encounter has no `code`; the encounter's type is what it is coded by.
        _token("code", "type"),
        _IDENTIFIER,
    ),
    "Procedure": (
        _PATIENT_FROM_SUBJECT,
        _SUBJECT_PATIENT_GROUP,
        _ENCOUNTER,
        _CODE,
        _date("date", "performed[x]"),
        _STATUS,
        _IDENTIFIER,
    ),
    "MedicationRequest": (
        _PATIENT_FROM_SUBJECT,
        _SUBJECT_PATIENT_GROUP,
        _ENCOUNTER,
        _token("code", "medication[x]"),  # (MedicationRequest.medication as CodeableConcept)
        _date("authoredon", "authoredOn"),
        _STATUS,
        _token("intent", "intent"),
        _IDENTIFIER,
    ),
    "Immunization": (
        _PATIENT_FROM_PATIENT,
        # medfed alias: R4 Immunization has no `subject`; its subject is Immunization.patient.
        _reference("subject", "patient", targets=("Patient",)),
        _token("vaccine-code", "vaccineCode"),
        # medfed alias: R4 Immunization has no `code`; its code is Immunization.vaccineCode.
        _token("code", "vaccineCode"),
        _date("date", "occurrence[x]"),  # Immunization.occurrence (occurrenceString is not a date)
        _STATUS,
        _IDENTIFIER,
    ),
    "DiagnosticReport": (
        _PATIENT_FROM_SUBJECT,
        _SUBJECT_OBSERVATION_LIKE,
        _ENCOUNTER,
        _CODE,
        _CATEGORY,
        _date("date", "effective[x]"),
        _STATUS,
        _reference("result", "result", targets=("Observation",)),
        _IDENTIFIER,
    ),
    "AllergyIntolerance": (
        _PATIENT_FROM_PATIENT,
        # medfed alias: R4 AllergyIntolerance has no `subject`; its subject is .patient.
        _reference("subject", "patient", targets=("Patient",)),
        _token("code", "code", "reaction.substance"),
        _date("date", "recordedDate"),
        _token("clinical-status", "clinicalStatus"),
        _token("verification-status", "verificationStatus"),
        _token("category", "category"),  # a list of codes here, not CodeableConcepts
        _token("criticality", "criticality"),
        _IDENTIFIER,
    ),
    "CarePlan": (
        _PATIENT_FROM_SUBJECT,
        _SUBJECT_PATIENT_GROUP,
        _date("date", "period"),
        _STATUS,
        _IDENTIFIER,
    ),
    "Claim": (
        _PATIENT_FROM_PATIENT,
        _date("created", "created"),
        _STATUS,
        _IDENTIFIER,
    ),
    "ExplanationOfBenefit": (
        _PATIENT_FROM_PATIENT,
        _date("created", "created"),
        _STATUS,
        _IDENTIFIER,
    ),
    "Goal": (
        _PATIENT_FROM_SUBJECT,
        _reference("subject", "subject", targets=("Group", "Organization", "Patient")),
        _token("lifecycle-status", "lifecycleStatus"),  # R4 Goal has no plain `status`
        _date("start-date", "start[x]"),  # (Goal.start as date)
        _IDENTIFIER,
    ),
    "ImagingStudy": (
        _PATIENT_FROM_SUBJECT,
        _reference("subject", "subject", targets=("Group", "Device", "Patient")),
        _date("started", "started"),
        _STATUS,
        _IDENTIFIER,
    ),
    "DocumentReference": (
        _PATIENT_FROM_SUBJECT,
        _reference("subject", "subject", targets=("Group", "Device", "Patient", "Practitioner")),
        _date("date", "date"),
        _STATUS,
        _token("identifier", "masterIdentifier", "identifier"),
    ),
    "MedicationAdministration": (
        _PATIENT_FROM_SUBJECT,
        _SUBJECT_PATIENT_GROUP,
        _token("code", "medication[x]"),  # (MedicationAdministration.medication as CodeableConcept)
        _date("effective-time", "effective[x]"),
        _STATUS,
        _IDENTIFIER,
    ),
    "Coverage": (
        _reference("patient", "beneficiary", targets=("Patient",)),  # Coverage.beneficiary
        _STATUS,
        _IDENTIFIER,
    ),
    "Device": (
        _PATIENT_FROM_PATIENT,
        _STATUS,
        _IDENTIFIER,
    ),
    "Organization": (
        _IDENTIFIER,
        _string("name", "name", "alias"),
    ),
    "Practitioner": (
        _IDENTIFIER,
        _string("name", "name"),
        _string("family", "name.family"),
        _string("given", "name.given"),
    ),
    "Location": (
        _IDENTIFIER,
        _string("name", "name", "alias"),
        _STATUS,
    ),
}

#: resourceType -> parameter name -> definition, in a fixed order (extraction follows it).
SEARCH_PARAMS: Mapping[str, Mapping[str, SearchParam]] = MappingProxyType(
    {
        resource_type: MappingProxyType({param.name: param for param in params})
        for resource_type, params in _BY_TYPE.items()
    }
)

#: resourceType -> the date parameter that places a resource in time (timelines, date sorting).
PRIMARY_DATE_PARAM: Mapping[str, str] = MappingProxyType(
    {
        "Patient": "birthdate",
        "Observation": "date",
        "Condition": "onset-date",
        "Encounter": "date",
        "Procedure": "date",
        "MedicationRequest": "authoredon",
        "Immunization": "date",
        "DiagnosticReport": "date",
        "AllergyIntolerance": "date",
        "CarePlan": "date",
        "Claim": "created",
        "ExplanationOfBenefit": "created",
        "Goal": "start-date",
        "ImagingStudy": "started",
        "DocumentReference": "date",
        "MedicationAdministration": "effective-time",
    }
)

_NONE: Mapping[str, SearchParam] = MappingProxyType({})


# Query-time synonyms (no extra index rows): the issue asks every clinical type to answer `status`
# and `date`; R4 names these differently on Condition and AllergyIntolerance.
SEARCH_ALIASES: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("Condition", "status"): "clinical-status",
        ("Condition", "date"): "onset-date",
        ("AllergyIntolerance", "status"): "clinical-status",
    }
)


def search_param(resource_type: str, name: str) -> SearchParam | None:
    """The definition of parameter ``name`` (or its alias) on ``resource_type``; None if this node lacks it."""
    canonical = SEARCH_ALIASES.get((resource_type, name), name)
    return SEARCH_PARAMS.get(resource_type, _NONE).get(canonical)
