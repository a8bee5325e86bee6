"""The standard views: typed columns with bounds, and each one checked on the Synthea bundles.

Every expectation here is derived from the bundle JSON in plain Python, independently of the
FHIRPath engine, so a wrong path in a view (or a wrong engine) shows up as a mismatch.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from common.errors import NotFoundError
from node.views.errors import InvalidViewError
from node.views.evaluate import evaluate_view
from node.views.library import ColumnInfo, parse_bounds, standard_view, standard_views

LAB = "http://terminology.hl7.org/CodeSystem/observation-category"
RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"


def of_type(resources: list[dict[str, Any]], resource_type: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == resource_type]


def run(name: str, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(evaluate_view(standard_view(name).definition, resources))


def ref_id(reference: dict[str, Any] | None) -> str | None:
    return reference["reference"].split("/")[-1] if reference else None


def test_the_library_holds_the_five_standard_views() -> None:
    """Demographics, conditions, labs, encounters and medications ship, each named as its file."""
    names = {view.name: view.resource for view in standard_views()}
    assert names == {
        "patient_demographics": "Patient",
        "conditions": "Condition",
        "lab_observations": "Observation",
        "encounters": "Encounter",
        "medications": "MedicationRequest",
    }


def test_every_column_is_typed_every_numeric_column_bounded_and_every_row_keyed_by_patient() -> None:
    """Types and bounds are declared, and each view has a patient_id column."""
    for view in standard_views():
        assert all(column.type for column in view.columns), view.name
        assert "patient_id" in [column.name for column in view.columns], view.name
        for column in view.columns:
            assert column.numeric == (column.lower is not None and column.upper is not None), (view.name, column)
    value = next(c for c in standard_view("lab_observations").columns if c.name == "value")
    assert value == ColumnInfo("value", "decimal", False, -100.0, 100000.0, value.description)


def test_bounds_parse_and_reject_nonsense() -> None:
    """``lower..upper`` with finite numbers, lower below upper."""
    assert parse_bounds("0..150", "x") == (0.0, 150.0)
    assert parse_bounds("-2.5 .. 7", "x") == (-2.5, 7.0)
    for bad in ("0-150", "150..0", "a..b", "0..inf", ".."):
        with pytest.raises(InvalidViewError):
            parse_bounds(bad, "x")


def test_an_unknown_standard_view_is_not_found() -> None:
    """Asking for a view the library lacks is a NotFoundError."""
    with pytest.raises(NotFoundError):
        standard_view("vital_signs_of_cats")


def test_patient_demographics_on_synthea(synthea_resources: list[dict[str, Any]]) -> None:
    """One row per Patient with its gender, birth date, death and US Core race code."""
    patients = {p["id"]: p for p in of_type(synthea_resources, "Patient")}
    rows = run("patient_demographics", synthea_resources)
    assert len(rows) == len(patients) == 24
    for row in rows:
        patient = patients[row["patient_id"]]
        assert row["gender"] == patient["gender"]
        assert row["birth_date"] == patient["birthDate"]
        assert row["deceased"] is ("deceasedDateTime" in patient)
        assert row["deceased_date"] == patient.get("deceasedDateTime")
        race = [e for e in patient.get("extension", []) if e["url"] == RACE]
        omb = [x["valueCoding"]["code"] for e in race for x in e["extension"] if x["url"] == "ombCategory"]
        assert row["race_code"] == (omb[0] if omb else None)
    assert sum(row["deceased"] for row in rows) == 2
    assert Counter(row["gender"] for row in rows) == Counter(p["gender"] for p in patients.values())


def test_conditions_on_synthea(synthea_resources: list[dict[str, Any]]) -> None:
    """One row per Condition, its first coding, and a patient_id that names a Patient."""
    conditions = {c["id"]: c for c in of_type(synthea_resources, "Condition")}
    patient_ids = {p["id"] for p in of_type(synthea_resources, "Patient")}
    rows = run("conditions", synthea_resources)
    assert len(rows) == len(conditions) == 125
    for row in rows:
        condition = conditions[row["condition_id"]]
        assert row["patient_id"] == ref_id(condition["subject"])
        assert row["patient_id"] in patient_ids
        coding = condition["code"]["coding"][0]
        assert (row["code_system"], row["code"], row["display"]) == (
            coding["system"],
            coding["code"],
            coding["display"],
        )
        assert row["onset_date"] == condition.get("onsetDateTime")
        assert row["encounter_id"] == ref_id(condition.get("encounter"))


def test_lab_observations_on_synthea(synthea_resources: list[dict[str, Any]]) -> None:
    """Exactly the laboratory Observations with a Quantity; every value inside the declared bounds."""
    labs = {
        o["id"]: o
        for o in of_type(synthea_resources, "Observation")
        if any(c["system"] == LAB and c["code"] == "laboratory" for cat in o.get("category", []) for c in cat["coding"])
        and "valueQuantity" in o
    }
    rows = run("lab_observations", synthea_resources)
    assert len(rows) == len(labs) == 768
    bounds = next(c for c in standard_view("lab_observations").columns if c.name == "value")
    assert bounds.lower is not None
    assert bounds.upper is not None
    outside: Counter[str] = Counter()
    for row in rows:
        lab = labs[row["observation_id"]]
        loinc = [c["code"] for c in lab["code"]["coding"] if c["system"] == "http://loinc.org"]
        assert row["loinc_code"] == loinc[0]
        assert row["value"] == pytest.approx(lab["valueQuantity"]["value"], rel=1e-12)
        assert row["unit"] == lab["valueQuantity"]["code"]
        assert row["effective_date"] == lab["effectiveDateTime"]
        assert row["patient_id"] == ref_id(lab["subject"])
        if not bounds.lower <= row["value"] <= bounds.upper:
            outside[row["loinc_code"]] += 1
    assert outside == Counter(), f"LOINC codes with values outside {bounds.lower}..{bounds.upper}: {outside}"
    assert len({row["loinc_code"] for row in rows}) == 26


def test_encounters_on_synthea(synthea_resources: list[dict[str, Any]]) -> None:
    """One row per Encounter with its class, period and patient."""
    encounters = {e["id"]: e for e in of_type(synthea_resources, "Encounter")}
    rows = run("encounters", synthea_resources)
    assert len(rows) == len(encounters) == 309
    assert Counter(r["class_code"] for r in rows) == Counter(e["class"]["code"] for e in encounters.values())
    for row in rows:
        encounter = encounters[row["encounter_id"]]
        assert (row["period_start"], row["period_end"]) == (encounter["period"]["start"], encounter["period"]["end"])
        assert row["period_start"] <= row["period_end"]
        assert row["type_code"] == encounter["type"][0]["coding"][0]["code"]
        assert row["patient_id"] == ref_id(encounter["subject"])


def test_medications_on_synthea(synthea_resources: list[dict[str, Any]]) -> None:
    """One row per MedicationRequest with its RxNorm code and first dose, inside the declared bounds."""
    requests = {m["id"]: m for m in of_type(synthea_resources, "MedicationRequest")}
    rows = run("medications", synthea_resources)
    assert len(rows) == len(requests) == 61
    for row in rows:
        request = requests[row["medication_request_id"]]
        assert row["rxnorm_code"] == request["medicationCodeableConcept"]["coding"][0]["code"]
        assert (row["status"], row["intent"], row["authored_on"]) == (
            request["status"],
            request["intent"],
            request["authoredOn"],
        )
        doses = [
            rate["doseQuantity"]
            for dosage in request.get("dosageInstruction", [])[:1]
            for rate in dosage.get("doseAndRate", [])[:1]
            if "doseQuantity" in rate
        ]
        assert row["dose_value"] == (doses[0]["value"] if doses else None)
        assert row["patient_id"] == ref_id(request["subject"])
    dose = next(c for c in standard_view("medications").columns if c.name == "dose_value")
    assert dose.lower is not None
    assert dose.upper is not None
    recorded = [row["dose_value"] for row in rows if row["dose_value"] is not None]
    assert recorded, "some Synthea requests record a dose"
    assert all(dose.lower <= value <= dose.upper for value in recorded)
