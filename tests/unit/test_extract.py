"""Search index extraction and the search parameter registry: node.fhir.extract, node.fhir.search_params."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.fhir.dates import MAX_INSTANT, MIN_INSTANT, fhir_range, period_range
from node.fhir.extract import IndexEntries, extract_index, normalize_string, parse_reference
from node.fhir.search_params import PRIMARY_DATE_PARAM, SEARCH_PARAMS, SearchParam, search_param

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
PATIENT_REF = {"reference": "Patient/p1"}
ENCOUNTER_REF = {"reference": "Encounter/e1"}


def _cc(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": "shown, never indexed"}]}


def _params(entries: list[tuple[str, str, str]] | list[tuple[str, int, int]], param: str) -> list[Any]:
    """The entries of one parameter, without the parameter name."""
    return [entry[1:] for entry in entries if entry[0] == param]


# --- normalize_string and parse_reference --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Müller", "muller"),
        ("  José  María ", "jose maria"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),
        ("Ångström\tÉlan\n", "angstrom elan"),
        ("ﬁnn", "finn"),
        ("O'Brien-Smith", "o'brien-smith"),
        ("   ", ""),
        ("", ""),
    ],
)
def test_normalize_string_folds_case_accents_and_whitespace(value: str, expected: str) -> None:
    """normalize_string drops accents, casefolds, collapses whitespace runs and strips the ends."""
    assert normalize_string(value) == expected


@given(st.text())
def test_normalize_string_is_idempotent(value: str) -> None:
    """Normalizing an already normalized string changes nothing, so index and query sides agree."""
    once = normalize_string(value)
    assert normalize_string(once) == once


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/123", ("Patient", "123")),
        ("Patient/123/_history/2", ("Patient", "123")),
        ("http://host/fhir/Patient/123", ("Patient", "123")),
        ("https://host:8443/a/b/fhir/Observation/a-b.c/_history/7", ("Observation", "a-b.c")),
        ("http://host/Patient/123", ("Patient", "123")),
        (
            "Encounter/96a69da2-591f-4729-89df-0918dce89df2",
            ("Encounter", "96a69da2-591f-4729-89df-0918dce89df2"),
        ),
        ("#c1", None),
        ("urn:uuid:96a69da2-591f-4729-89df-0918dce89df2", None),
        ("urn:oid:1.2.3", None),
        ("Patient?identifier=x|1", None),
        ("Patient/", None),
        ("Patient", None),
        ("patient/123", None),
        ("/Patient/123", None),
        ("Patient/12 3", None),
        ("Patient/123/extra", None),
        ("Patient/" + "x" * 65, None),
        ("ftp://host/Patient/1", None),
        ("", None),
    ],
)
def test_parse_reference_names_type_and_id_of_literal_references(
    reference: str, expected: tuple[str, str] | None
) -> None:
    """Relative, versioned and absolute references give (type, id); contained, urn and junk give None."""
    assert parse_reference(reference) == expected
    assert parse_reference(reference) == expected  # again, from the memo where it was kept


# --- the registry --------------------------------------------------------------------------------


def test_every_primary_date_param_is_a_date_param_of_its_type() -> None:
    """PRIMARY_DATE_PARAM names, for each type, one of that type's date parameters."""
    for resource_type, name in PRIMARY_DATE_PARAM.items():
        param = search_param(resource_type, name)
        assert param is not None, resource_type
        assert param.type == "date", resource_type


def test_registry_keys_match_parameter_names_and_paths_are_relative() -> None:
    """Each parameter is filed under its own name, has paths, and no path repeats the resource type."""
    for resource_type, params in SEARCH_PARAMS.items():
        for name, param in params.items():
            assert param.name == name
            assert param.paths
            assert not any(path.startswith(resource_type) for path in param.paths)
            assert "_id" not in params
            assert "_lastUpdated" not in params


@pytest.mark.parametrize(
    "resource_type",
    [
        "Condition",
        "Encounter",
        "Procedure",
        "MedicationRequest",
        "Immunization",
        "DiagnosticReport",
        "AllergyIntolerance",
        "Observation",
    ],
)
def test_clinical_types_support_patient_subject_code_date_and_status(resource_type: str) -> None:
    """Clinical types have `patient` (Patient only), `subject`, `code`, a primary date and a status token."""
    patient = search_param(resource_type, "patient")
    assert patient == SearchParam("patient", "reference", patient.paths if patient else (), ("Patient",))
    subject = search_param(resource_type, "subject")
    assert subject is not None
    assert subject.type == "reference"
    assert "Patient" in subject.targets
    code = search_param(resource_type, "code")
    assert code is not None
    assert code.type == "token"
    assert resource_type in PRIMARY_DATE_PARAM
    status = search_param(resource_type, "status") or search_param(resource_type, "clinical-status")
    assert status is not None
    assert status.type == "token"


def test_patient_params_of_other_types_are_restricted_to_patient() -> None:
    """Every `patient` parameter is a reference that only targets Patient."""
    for resource_type, params in SEARCH_PARAMS.items():
        if "patient" in params:
            assert params["patient"] == SearchParam("patient", "reference", params["patient"].paths, ("Patient",)), (
                resource_type
            )


def test_search_param_of_unknown_type_or_name_is_none() -> None:
    """search_param returns None for a type or a parameter the node does not index."""
    assert search_param("Basic", "code") is None
    assert search_param("Observation", "value-quantity") is None
    assert search_param("Observation", "_id") is None


# --- extraction, by parameter type -----------------------------------------------------------------


def test_token_values_of_each_datatype() -> None:
    """A CodeableConcept gives each coding with a code; Coding and code (system or '', code); booleans."""
    entries = extract_index(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {
                "coding": [
                    {"system": LOINC, "code": "8302-2"},
                    {"code": "local-1"},
                    {"system": SNOMED, "display": "no code, skipped"},
                ],
                "text": "Body height",
            },
            "category": [_cc("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")],
            "subject": PATIENT_REF,
        }
    )
    assert _params(entries.tokens, "code") == [(LOINC, "8302-2"), ("", "local-1")]
    assert _params(entries.tokens, "status") == [("", "final")]
    assert _params(entries.tokens, "category") == [
        ("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")
    ]
    encounter = extract_index(
        {
            "resourceType": "Encounter",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        }
    )
    assert encounter.tokens == [("class", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB")]
    patient = extract_index({"resourceType": "Patient", "active": False, "deceasedBoolean": True})
    assert ("active", "", "false") in patient.tokens
    assert ("deceased", "", "true") in patient.tokens


def test_identifier_tokens_are_system_and_value() -> None:
    """An Identifier gives (system, value), or ('', value) without a system; no value, no entry."""
    entries = extract_index(
        {
            "resourceType": "Condition",
            "identifier": [
                {"system": "urn:oid:1.2.3", "value": "A-1"},
                {"value": "B-2"},
                {"system": "urn:oid:1.2.3"},
            ],
        }
    )
    assert entries.tokens == [("identifier", "urn:oid:1.2.3", "A-1"), ("identifier", "", "B-2")]
    document = extract_index(
        {
            "resourceType": "DocumentReference",
            "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:9.9"},
            "identifier": [{"value": "D-1"}],
        }
    )
    assert _params(document.tokens, "identifier") == [("urn:ietf:rfc:3986", "urn:oid:9.9"), ("", "D-1")]


def test_telecom_phone_and_email_tokens_are_contact_values() -> None:
    """telecom indexes every ContactPoint value; phone and email only those of their system."""
    entries = extract_index(
        {
            "resourceType": "Patient",
            "telecom": [
                {"system": "phone", "value": "555-0100", "use": "home"},
                {"system": "email", "value": "a@example.org"},
                {"system": "fax", "value": "555-0199"},
            ],
        }
    )
    assert _params(entries.tokens, "telecom") == [("", "555-0100"), ("", "a@example.org"), ("", "555-0199")]
    assert _params(entries.tokens, "phone") == [("", "555-0100")]
    assert _params(entries.tokens, "email") == [("", "a@example.org")]


@pytest.mark.parametrize(
    ("deceased", "expected"),
    [
        ({}, "false"),
        ({"deceasedBoolean": False}, "false"),
        ({"deceasedBoolean": True}, "true"),
        ({"deceasedDateTime": "2020-05-01"}, "true"),
    ],
)
def test_deceased_is_one_computed_token(deceased: dict[str, Any], expected: str) -> None:
    """deceased is 'true' for deceasedBoolean true or a deceasedDateTime, else 'false', as R4 computes it."""
    entries = extract_index({"resourceType": "Patient", **deceased})
    assert _params(entries.tokens, "deceased") == [("", expected)]


def test_human_name_and_address_strings() -> None:
    """name indexes every HumanName part, family and given their parts, address-* their Address parts."""
    entries = extract_index(
        {
            "resourceType": "Patient",
            "name": [
                {"use": "official", "family": "Müller", "given": ["José", "María"], "prefix": ["Dr."]},
                {"text": "Pepe Müller", "suffix": ["Jr."]},
            ],
            "address": [{"line": ["1 Main St", "Apt 2"], "city": "Köln", "state": "NRW", "postalCode": "50667"}],
        }
    )
    assert _params(entries.strings, "name") == [
        ("muller", "Müller"),
        ("jose", "José"),
        ("maria", "María"),
        ("dr.", "Dr."),
        ("jr.", "Jr."),
        ("pepe muller", "Pepe Müller"),
    ]
    assert _params(entries.strings, "family") == [("muller", "Müller")]
    assert _params(entries.strings, "given") == [("jose", "José"), ("maria", "María")]
    assert _params(entries.strings, "address-city") == [("koln", "Köln")]
    assert _params(entries.strings, "address-postalcode") == [("50667", "50667")]
    assert ("address", "1 main st", "1 Main St") in entries.strings
    assert ("address", "apt 2", "Apt 2") in entries.strings


def test_plain_strings_and_aliases_of_organizations_and_locations() -> None:
    """Organization and Location name index the name and every alias; whitespace-only values are skipped."""
    organization = extract_index({"resourceType": "Organization", "name": "Hôpital Nord", "alias": ["HN", "  "]})
    assert organization.strings == [("name", "hopital nord", "Hôpital Nord"), ("name", "hn", "HN")]
    location = extract_index({"resourceType": "Location", "name": "Ward 3", "status": "active"})
    assert location.strings == [("name", "ward 3", "Ward 3")]
    assert location.tokens == [("status", "", "active")]


def test_dates_periods_and_the_primary_date() -> None:
    """A dateTime is its precision range, a Period its span; primary_date is the first primary value."""
    observation = extract_index({"resourceType": "Observation", "effectiveDateTime": "2020-03-05T10:00:05+01:00"})
    expected = fhir_range("2020-03-05T10:00:05+01:00")
    assert observation.dates == [("date", *expected)]
    assert observation.primary_date == expected

    encounter = extract_index(
        {"resourceType": "Encounter", "period": {"start": "2020-01-01T08:00:00Z", "end": "2020-01-01"}}
    )
    assert encounter.dates == [("date", *period_range("2020-01-01T08:00:00Z", "2020-01-01"))]

    ongoing = extract_index({"resourceType": "Encounter", "period": {"start": "2020-01-01"}})
    assert ongoing.dates == [("date", fhir_range("2020-01-01")[0], MAX_INSTANT)]
    assert ongoing.primary_date == (fhir_range("2020-01-01")[0], MAX_INSTANT)

    procedure = extract_index({"resourceType": "Procedure", "performedPeriod": {"end": "2019"}})
    assert procedure.dates == [("date", MIN_INSTANT, fhir_range("2019")[1])]


def test_condition_dates_follow_onset_and_recorded_date() -> None:
    """Condition onset-date reads onsetDateTime or onsetPeriod (not onsetString); primary is onset-date."""
    entries = extract_index(
        {
            "resourceType": "Condition",
            "recordedDate": "2021-01-02",
            "onsetPeriod": {"start": "2020-12", "end": "2021-01"},
        }
    )
    assert entries.dates == [
        ("onset-date", *period_range("2020-12", "2021-01")),
        ("recorded-date", *fhir_range("2021-01-02")),
    ]
    assert entries.primary_date == period_range("2020-12", "2021-01")
    no_onset = extract_index({"resourceType": "Condition", "onsetString": "childhood", "recordedDate": "2021"})
    assert no_onset.dates == [("recorded-date", *fhir_range("2021"))]
    assert no_onset.primary_date is None


def test_unparseable_dates_are_skipped() -> None:
    """Malformed dates, empty Periods and reversed Periods add no entry and raise nothing."""
    entries = extract_index(
        {
            "resourceType": "Encounter",
            "period": [{"start": "2020-02-30"}, {}, {"start": "2020-02", "end": "2019"}, {"start": 5}],
        }
    )
    assert entries.dates == []
    assert entries.primary_date is None
    patient = extract_index({"resourceType": "Patient", "birthDate": "1990-13-01"})
    assert patient.dates == []


def test_references_respect_targets() -> None:
    """patient keeps Patient references only, subject its R4 targets; contained and urn ones are skipped."""
    group = extract_index({"resourceType": "Observation", "subject": {"reference": "Group/g1"}})
    assert group.references == [("subject", "Group", "g1")]
    wrong = extract_index({"resourceType": "Condition", "subject": {"reference": "Organization/o1"}})
    assert wrong.references == []
    absolute = extract_index(
        {
            "resourceType": "DiagnosticReport",
            "subject": {"reference": "https://other.example/fhir/Patient/p9/_history/3"},
            "result": [
                {"reference": "Observation/o1"},
                {"reference": "#contained"},
                {"reference": "urn:uuid:1"},
            ],
            "encounter": {"display": "no reference"},
        }
    )
    assert absolute.references == [
        ("patient", "Patient", "p9"),
        ("subject", "Patient", "p9"),
        ("result", "Observation", "o1"),
    ]


def test_duplicate_entries_are_kept_once_in_first_seen_order() -> None:
    """The same token, string, date or reference from two places is one entry, where it was first found."""
    entries = extract_index(
        {
            "resourceType": "Observation",
            "category": [_cc(LOINC, "x"), _cc(SNOMED, "y"), _cc(LOINC, "x")],
            "identifier": [{"value": "1"}, {"value": "1"}],
        }
    )
    assert entries.tokens == [("category", LOINC, "x"), ("category", SNOMED, "y"), ("identifier", "", "1")]
    names = extract_index({"resourceType": "Practitioner", "name": [{"family": "Li"}, {"family": "Li"}]})
    assert names.strings == [("name", "li", "Li"), ("family", "li", "Li")]


def test_values_of_unexpected_json_types_are_skipped() -> None:
    """Wrong JSON types (numbers, lists, nulls where objects or strings belong) add nothing, raise nothing."""
    entries = extract_index(
        {
            "resourceType": "Observation",
            "status": 3,
            "code": {"coding": {"code": "not-a-list"}},
            "category": [None, 4, [_cc(LOINC, "nested-list")], {"coding": [None, {"code": 7}]}],
            "subject": {"reference": ["Patient/p1"]},
            "effectiveDateTime": 20200101,
            "identifier": "plain string",
        }
    )
    assert entries == IndexEntries([], [], [], [], None)


def test_types_without_search_params_and_non_resources_give_no_entries() -> None:
    """A type the node does not index, a missing resourceType or a non-string one give empty entries."""
    empty = IndexEntries([], [], [], [], None)
    assert extract_index({"resourceType": "Basic", "code": _cc(LOINC, "1")}) == empty
    assert extract_index({"code": _cc(LOINC, "1")}) == empty
    assert extract_index({"resourceType": ["Observation"]}) == empty


# --- extraction, one hand-written resource per covered type ----------------------------------------

_HANDWRITTEN: dict[str, tuple[dict[str, Any], IndexEntries]] = {
    "Patient": (
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:mrn", "value": "M1"}],
            "name": [{"family": "Doe", "given": ["Jane"]}],
            "gender": "female",
            "birthDate": "1990-05",
            "telecom": [{"system": "phone", "value": "555"}],
            "managingOrganization": {"reference": "Organization/o1"},
        },
        IndexEntries(
            tokens=[
                ("identifier", "urn:mrn", "M1"),
                ("gender", "", "female"),
                ("telecom", "", "555"),
                ("phone", "", "555"),
                ("deceased", "", "false"),
            ],
            strings=[
                ("name", "doe", "Doe"),
                ("name", "jane", "Jane"),
                ("family", "doe", "Doe"),
                ("given", "jane", "Jane"),
            ],
            dates=[("birthdate", *fhir_range("1990-05"))],
            references=[("organization", "Organization", "o1")],
            primary_date=fhir_range("1990-05"),
        ),
    ),
    "Observation": (
        {
            "resourceType": "Observation",
            "identifier": [{"value": "obs-1"}],
            "status": "final",
            "category": [_cc("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory")],
            "code": _cc(LOINC, "2339-0"),
            "subject": PATIENT_REF,
            "encounter": ENCOUNTER_REF,
            "effectivePeriod": {"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T11:00:00Z"},
            "valueQuantity": {"value": 5.4, "unit": "mmol/L"},
        },
        IndexEntries(
            tokens=[
                ("code", LOINC, "2339-0"),
                ("category", "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory"),
                ("status", "", "final"),
                ("identifier", "", "obs-1"),
            ],
            strings=[],
            dates=[("date", *period_range("2020-01-01T10:00:00Z", "2020-01-01T11:00:00Z"))],
            references=[
                ("patient", "Patient", "p1"),
                ("subject", "Patient", "p1"),
                ("encounter", "Encounter", "e1"),
            ],
            primary_date=period_range("2020-01-01T10:00:00Z", "2020-01-01T11:00:00Z"),
        ),
    ),
    "Condition": (
        {
            "resourceType": "Condition",
            "clinicalStatus": _cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "active"),
            "verificationStatus": _cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"),
            "category": [_cc("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item")],
            "code": _cc(SNOMED, "44054006"),
            "subject": PATIENT_REF,
            "encounter": ENCOUNTER_REF,
            "onsetDateTime": "2015-06-01",
        },
        IndexEntries(
            tokens=[
                ("code", SNOMED, "44054006"),
                ("clinical-status", "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"),
                (
                    "verification-status",
                    "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "confirmed",
                ),
                ("category", "http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item"),
            ],
            strings=[],
            dates=[("onset-date", *fhir_range("2015-06-01"))],
            references=[
                ("patient", "Patient", "p1"),
                ("subject", "Patient", "p1"),
                ("encounter", "Encounter", "e1"),
            ],
            primary_date=fhir_range("2015-06-01"),
        ),
    ),
    "Encounter": (
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [_cc(SNOMED, "185345009")],
            "subject": PATIENT_REF,
            "period": {"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T10:15:00Z"},
        },
        IndexEntries(
            tokens=[
                ("status", "", "finished"),
                ("class", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB"),
                ("type", SNOMED, "185345009"),
                ("code", SNOMED, "185345009"),
            ],
            strings=[],
            dates=[("date", *period_range("2020-01-01T10:00:00Z", "2020-01-01T10:15:00Z"))],
            references=[("patient", "Patient", "p1"), ("subject", "Patient", "p1")],
            primary_date=period_range("2020-01-01T10:00:00Z", "2020-01-01T10:15:00Z"),
        ),
    ),
    "Procedure": (
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": _cc(SNOMED, "430193006"),
            "subject": PATIENT_REF,
            "encounter": ENCOUNTER_REF,
            "performedDateTime": "2019-02-03T04:05:06-05:00",
        },
        IndexEntries(
            tokens=[("code", SNOMED, "430193006"), ("status", "", "completed")],
            strings=[],
            dates=[("date", *fhir_range("2019-02-03T04:05:06-05:00"))],
            references=[
                ("patient", "Patient", "p1"),
                ("subject", "Patient", "p1"),
                ("encounter", "Encounter", "e1"),
            ],
            primary_date=fhir_range("2019-02-03T04:05:06-05:00"),
        ),
    ),
    "MedicationRequest": (
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": _cc("http://www.nlm.nih.gov/research/umls/rxnorm", "834061"),
            "subject": PATIENT_REF,
            "encounter": ENCOUNTER_REF,
            "authoredOn": "2020-04-01",
        },
        IndexEntries(
            tokens=[
                ("code", "http://www.nlm.nih.gov/research/umls/rxnorm", "834061"),
                ("status", "", "active"),
                ("intent", "", "order"),
            ],
            strings=[],
            dates=[("authoredon", *fhir_range("2020-04-01"))],
            references=[
                ("patient", "Patient", "p1"),
                ("subject", "Patient", "p1"),
                ("encounter", "Encounter", "e1"),
            ],
            primary_date=fhir_range("2020-04-01"),
        ),
    ),
    "Immunization": (
        {
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": _cc("http://hl7.org/fhir/sid/cvx", "140"),
            "patient": PATIENT_REF,
            "encounter": ENCOUNTER_REF,
            "occurrenceDateTime": "2020-10-01",
        },
        IndexEntries(
            tokens=[
                ("vaccine-code", "http://hl7.org/fhir/sid/cvx", "140"),
                ("code", "http://hl7.org/fhir/sid/cvx", "140"),
                ("status", "", "completed"),
            ],
            strings=[],
            dates=[("date", *fhir_range("2020-10-01"))],
            references=[("patient", "Patient", "p1"), ("subject", "Patient", "p1")],
            primary_date=fhir_range("2020-10-01"),
        ),
    ),
    "DiagnosticReport": (
        {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "category": [_cc("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB")],
            "code": _cc(LOINC, "24323-8"),
            "subject": PATIENT_REF,
            "encounter": ENCOUNTER_REF,
            "effectiveDateTime": "2020-01-01T10:00:00Z",
            "result": [{"reference": "Observation/o1"}, {"reference": "Observation/o2"}],
        },
        IndexEntries(
            tokens=[
                ("code", LOINC, "24323-8"),
                ("category", "http://terminology.hl7.org/CodeSystem/v2-0074", "LAB"),
                ("status", "", "final"),
            ],
            strings=[],
            dates=[("date", *fhir_range("2020-01-01T10:00:00Z"))],
            references=[
                ("patient", "Patient", "p1"),
                ("subject", "Patient", "p1"),
                ("encounter", "Encounter", "e1"),
                ("result", "Observation", "o1"),
                ("result", "Observation", "o2"),
            ],
            primary_date=fhir_range("2020-01-01T10:00:00Z"),
        ),
    ),
    "AllergyIntolerance": (
        {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": _cc("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active"),
            "verificationStatus": _cc(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed"
            ),
            "category": ["food"],
            "criticality": "low",
            "code": _cc(SNOMED, "91935009"),
            "patient": PATIENT_REF,
            "recordedDate": "2018-07-09T10:00:00+02:00",
            "reaction": [{"substance": _cc(SNOMED, "256349002"), "manifestation": [_cc(SNOMED, "271807003")]}],
        },
        IndexEntries(
            tokens=[
                ("code", SNOMED, "91935009"),
                ("code", SNOMED, "256349002"),
                (
                    "clinical-status",
                    "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "active",
                ),
                (
                    "verification-status",
                    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                    "confirmed",
                ),
                ("category", "", "food"),
                ("criticality", "", "low"),
            ],
            strings=[],
            dates=[("date", *fhir_range("2018-07-09T10:00:00+02:00"))],
            references=[("patient", "Patient", "p1"), ("subject", "Patient", "p1")],
            primary_date=fhir_range("2018-07-09T10:00:00+02:00"),
        ),
    ),
    "CarePlan": (
        {
            "resourceType": "CarePlan",
            "status": "active",
            "subject": PATIENT_REF,
            "period": {"start": "2020-01-01"},
        },
        IndexEntries(
            tokens=[("status", "", "active")],
            strings=[],
            dates=[("date", fhir_range("2020-01-01")[0], MAX_INSTANT)],
            references=[("patient", "Patient", "p1"), ("subject", "Patient", "p1")],
            primary_date=(fhir_range("2020-01-01")[0], MAX_INSTANT),
        ),
    ),
    "Claim": (
        {
            "resourceType": "Claim",
            "status": "active",
            "patient": PATIENT_REF,
            "created": "2020-01-02T03:04:05Z",
        },
        IndexEntries(
            tokens=[("status", "", "active")],
            strings=[],
            dates=[("created", *fhir_range("2020-01-02T03:04:05Z"))],
            references=[("patient", "Patient", "p1")],
            primary_date=fhir_range("2020-01-02T03:04:05Z"),
        ),
    ),
    "ExplanationOfBenefit": (
        {
            "resourceType": "ExplanationOfBenefit",
            "identifier": [{"system": "urn:claims", "value": "c1"}],
            "status": "active",
            "patient": PATIENT_REF,
            "created": "2020-01-02",
        },
        IndexEntries(
            tokens=[("status", "", "active"), ("identifier", "urn:claims", "c1")],
            strings=[],
            dates=[("created", *fhir_range("2020-01-02"))],
            references=[("patient", "Patient", "p1")],
            primary_date=fhir_range("2020-01-02"),
        ),
    ),
    "Goal": (
        {
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "subject": PATIENT_REF,
            "startDate": "2020-02-02",
        },
        IndexEntries(
            tokens=[("lifecycle-status", "", "active")],
            strings=[],
            dates=[("start-date", *fhir_range("2020-02-02"))],
            references=[("patient", "Patient", "p1"), ("subject", "Patient", "p1")],
            primary_date=fhir_range("2020-02-02"),
        ),
    ),
    "ImagingStudy": (
        {
            "resourceType": "ImagingStudy",
            "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.3"}],
            "status": "available",
            "subject": PATIENT_REF,
            "started": "2020-03-03T03:03:03Z",
        },
        IndexEntries(
            tokens=[("status", "", "available"), ("identifier", "urn:dicom:uid", "urn:oid:1.2.3")],
            strings=[],
            dates=[("started", *fhir_range("2020-03-03T03:03:03Z"))],
            references=[("patient", "Patient", "p1"), ("subject", "Patient", "p1")],
            primary_date=fhir_range("2020-03-03T03:03:03Z"),
        ),
    ),
    "DocumentReference": (
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "subject": {"reference": "Practitioner/dr1"},
            "date": "2020-05-05T05:05:05.123+00:00",
        },
        IndexEntries(
            tokens=[("status", "", "current")],
            strings=[],
            dates=[("date", *fhir_range("2020-05-05T05:05:05.123+00:00"))],
            references=[("subject", "Practitioner", "dr1")],
            primary_date=fhir_range("2020-05-05T05:05:05.123+00:00"),
        ),
    ),
    "MedicationAdministration": (
        {
            "resourceType": "MedicationAdministration",
            "status": "completed",
            "medicationCodeableConcept": _cc("http://www.nlm.nih.gov/research/umls/rxnorm", "1"),
            "subject": PATIENT_REF,
            "effectiveDateTime": "2020-06-06",
        },
        IndexEntries(
            tokens=[
                ("code", "http://www.nlm.nih.gov/research/umls/rxnorm", "1"),
                ("status", "", "completed"),
            ],
            strings=[],
            dates=[("effective-time", *fhir_range("2020-06-06"))],
            references=[("patient", "Patient", "p1"), ("subject", "Patient", "p1")],
            primary_date=fhir_range("2020-06-06"),
        ),
    ),
    "Coverage": (
        {"resourceType": "Coverage", "status": "active", "beneficiary": PATIENT_REF},
        IndexEntries(
            tokens=[("status", "", "active")],
            strings=[],
            dates=[],
            references=[("patient", "Patient", "p1")],
            primary_date=None,
        ),
    ),
    "Device": (
        {
            "resourceType": "Device",
            "status": "active",
            "patient": PATIENT_REF,
            "identifier": [{"value": "d1"}],
        },
        IndexEntries(
            tokens=[("status", "", "active"), ("identifier", "", "d1")],
            strings=[],
            dates=[],
            references=[("patient", "Patient", "p1")],
            primary_date=None,
        ),
    ),
    "Organization": (
        {"resourceType": "Organization", "identifier": [{"value": "org-1"}], "name": "General Hospital"},
        IndexEntries(
            tokens=[("identifier", "", "org-1")],
            strings=[("name", "general hospital", "General Hospital")],
            dates=[],
            references=[],
            primary_date=None,
        ),
    ),
    "Practitioner": (
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "999"}],
            "name": [{"family": "Ng", "given": ["Ann"], "prefix": ["Dr."]}],
        },
        IndexEntries(
            tokens=[("identifier", "http://hl7.org/fhir/sid/us-npi", "999")],
            strings=[
                ("name", "ng", "Ng"),
                ("name", "ann", "Ann"),
                ("name", "dr.", "Dr."),
                ("family", "ng", "Ng"),
                ("given", "ann", "Ann"),
            ],
            dates=[],
            references=[],
            primary_date=None,
        ),
    ),
    "Location": (
        {"resourceType": "Location", "identifier": [{"value": "loc-1"}], "name": "Ward 3", "alias": ["W3"]},
        IndexEntries(
            tokens=[("identifier", "", "loc-1")],
            strings=[("name", "ward 3", "Ward 3"), ("name", "w3", "W3")],
            dates=[],
            references=[],
            primary_date=None,
        ),
    ),
}


def test_every_registered_type_has_a_handwritten_case() -> None:
    """The hand-written cases below cover every resource type of the registry."""
    assert set(_HANDWRITTEN) == set(SEARCH_PARAMS)


@pytest.mark.parametrize("resource_type", sorted(_HANDWRITTEN))
def test_handwritten_resource_of_each_type(resource_type: str) -> None:
    """A typical resource of each covered type yields exactly its expected entries, in registry order."""
    resource, expected = _HANDWRITTEN[resource_type]
    assert extract_index(resource) == expected


# --- extraction on the Synthea bundles -----------------------------------------------------------


def _synthea_bundles() -> Path | None:
    """The Synthea bundle folder: under $MEDFED_TEST_DATA if set (it must exist), else ../shared/data."""
    configured = os.environ.get("MEDFED_TEST_DATA")
    root = Path(configured) if configured else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    bundles = root / "synthea_fhir_r4" / "bundles"
    if bundles.is_dir():
        return bundles
    if configured:
        pytest.fail(f"MEDFED_TEST_DATA is set but {bundles} is not a folder")
    return None


def _rewrite_references(node: Any, urls: dict[str, str]) -> Any:
    """A copy of ``node`` with bundle-internal urn:uuid references rewritten to Type/id, as ingest does."""
    if isinstance(node, dict):
        return {
            key: urls.get(value, value)
            if key == "reference" and isinstance(value, str)
            else _rewrite_references(value, urls)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_references(item, urls) for item in node]
    return node


@pytest.fixture(scope="module")
def synthea_resources() -> list[tuple[str, dict[str, Any]]]:
    """Every entry resource of the 24 Synthea bundles, with its bundle's Patient id, references rewritten."""
    folder = _synthea_bundles()
    if folder is None:
        pytest.skip("Synthea bundles not found: set MEDFED_TEST_DATA or put the data at ../shared/data")
    resources: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(folder.glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        urls = {
            entry["fullUrl"]: f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
            for entry in bundle["entry"]
        }
        (patient_id,) = [e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
        resources.extend((patient_id, _rewrite_references(e["resource"], urls)) for e in bundle["entry"])
    assert len(resources) > 3000
    return resources


def test_every_synthea_type_is_indexed(synthea_resources: list[tuple[str, dict[str, Any]]]) -> None:
    """Every resource type in the Synthea bundles has search parameters and yields some index entry."""
    for _, resource in synthea_resources:
        entries = extract_index(resource)
        assert resource["resourceType"] in SEARCH_PARAMS
        assert entries.tokens or entries.strings or entries.references, resource["resourceType"]


def test_synthea_patient_references_point_to_the_bundle_patient(
    synthea_resources: list[tuple[str, dict[str, Any]]],
) -> None:
    """Each resource whose subject/patient/beneficiary is a Patient gets exactly that patient as `patient`."""
    checked = 0
    for patient_id, resource in synthea_resources:
        resource_type = resource["resourceType"]
        param = search_param(resource_type, "patient")
        if param is None:
            continue
        field = resource.get(param.paths[0])
        if not (isinstance(field, dict) and str(field.get("reference", "")).startswith("Patient/")):
            continue
        entries = extract_index(resource)
        assert _params(entries.references, "patient") == [("Patient", patient_id)], resource_type
        checked += 1
    assert checked > 3000


def test_synthea_clinical_resources_have_their_primary_date_and_code(
    synthea_resources: list[tuple[str, dict[str, Any]]],
) -> None:
    """Every Synthea clinical resource gets a primary date, a code and a status-like token."""
    clinical = {
        "Observation",
        "Condition",
        "Encounter",
        "Procedure",
        "MedicationRequest",
        "Immunization",
        "DiagnosticReport",
        "AllergyIntolerance",
    }
    for _, resource in synthea_resources:
        if resource["resourceType"] not in clinical:
            continue
        entries = extract_index(resource)
        assert entries.primary_date is not None, resource["resourceType"]
        low, high = entries.primary_date
        assert MIN_INSTANT <= low < high <= MAX_INSTANT
        params = {entry[0] for entry in entries.tokens}
        assert "code" in params, resource["resourceType"]
        assert params & {"status", "clinical-status"}, resource["resourceType"]


def test_synthea_patients_are_found_by_folded_name(
    synthea_resources: list[tuple[str, dict[str, Any]]],
) -> None:
    """Each Synthea Patient's family name is indexed for `family`, folded (José María Casares too)."""
    for _, resource in synthea_resources:
        if resource["resourceType"] != "Patient":
            continue
        family = resource["name"][0]["family"]
        entries = extract_index(resource)
        assert ("family", normalize_string(family), family) in entries.strings
        assert entries.primary_date == fhir_range(resource["birthDate"])


# --- robustness ------------------------------------------------------------------------------------


_CHOICES = ("DateTime", "Period", "CodeableConcept", "Coding", "Boolean", "Reference", "String")
# Keys of the datatypes the parameters read (Coding, Identifier, Reference, Period, HumanName, ...).
_DATATYPE_KEYS = (
    "coding",
    "code",
    "system",
    "value",
    "reference",
    "start",
    "end",
    "family",
    "given",
    "prefix",
    "text",
    "line",
    "city",
    "postalCode",
)


def _path_keys(resource_type: str, *, top: bool) -> list[str]:
    """The first keys (top) or the deeper keys of a type's parameter paths, choices expanded."""
    keys: set[str] = set()
    for param in SEARCH_PARAMS[resource_type].values():
        for path in param.paths:
            parts = path.split(".")
            for key in parts[:1] if top else parts[1:]:
                keys.update(key[:-3] + t for t in _CHOICES) if key.endswith("[x]") else keys.add(key)
    return sorted(keys)


_NESTED_KEYS = sorted({*_DATATYPE_KEYS, *(key for rt in SEARCH_PARAMS for key in _path_keys(rt, top=False))})
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "2020",
            "2020-02-30",
            "2020-01-01T10:00:00+05:00",
            "Patient/p1",
            "Group/g",
            "urn:uuid:1",
            "#c",
            "http://h/Patient/1",
            "phone",
            "",
        ]
    )
)

# Well-formed datatype values, so random resources also reach every extraction branch.
_DATATYPES = st.sampled_from(
    [
        {"coding": [{"system": LOINC, "code": "1-8"}, {"code": "x"}]},
        {"system": SNOMED, "code": "123"},
        {"system": "urn:mrn", "value": "M1"},
        {"system": "phone", "value": "555"},
        {"reference": "Patient/p1"},
        {"reference": "Group/g1"},
        {"start": "2020-01-01", "end": "2020-02"},
        {"end": "2021"},
        {"family": "Müller", "given": ["José", "María"], "text": "J. Müller"},
        {"line": ["1 Main St"], "city": "Köln", "postalCode": "50667"},
        "2020-01-01T10:00:00+05:00",
        "final",
        True,
    ]
)
_JSON = st.recursive(
    _LEAVES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_NESTED_KEYS) | st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=15,
)
_RESOURCES = st.sampled_from(sorted(SEARCH_PARAMS)).flatmap(
    lambda resource_type: st.dictionaries(
        st.sampled_from(_path_keys(resource_type, top=True)) | st.text(max_size=4),
        _DATATYPES | st.lists(_DATATYPES | _JSON, max_size=3) | _JSON,
        max_size=8,
    ).map(lambda body: {**body, "resourceType": resource_type})
)


@settings(max_examples=200)
@given(_RESOURCES)
def test_extract_index_never_raises_on_json_like_input(resource: dict[str, Any]) -> None:
    """Any JSON-like dict of a known type extracts without raising, to well-formed, duplicate-free entries."""
    resource_type = resource["resourceType"]
    entries = extract_index(resource)
    for entry_list in (entries.tokens, entries.strings, entries.dates, entries.references):
        assert len(set(entry_list)) == len(entry_list)
    known = SEARCH_PARAMS[resource_type]
    assert all(name in known and isinstance(code, str) and code for name, _, code in entries.tokens)
    assert all(low < high for _, low, high in entries.dates)
    assert all(normalized for _, normalized, _ in entries.strings)
