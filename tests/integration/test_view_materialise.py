"""Materialised views on SQLite and PostgreSQL: rows follow every write in its transaction; rebuild recomputes."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from common.errors import InputError, NotFoundError
from node.config import NodeSettings
from node.fhir.bundles import process_bundle
from node.fhir.ingest import ingest_paths
from node.fhir.resources import prepare
from node.fhir.service import FhirService
from node.runtime import init_node
from node.store.db import make_engine, write_transaction
from node.store.view_rows import registered_views
from node.views.evaluate import evaluate_view
from node.views.library import standard_view
from node.views.materialise import install_standard_views, install_views, read_view, rebuild, uninstall_view

LAB_CATEGORY = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]
}
SECRET_GIVEN = "Zebedee-private"


@pytest.fixture
def service(database_url: str) -> Iterator[FhirService]:
    """A FhirService on a migrated, empty database with the standard views installed."""
    engine = make_engine(database_url)
    install_standard_views(engine)
    yield FhirService(engine)
    engine.dispose()


def rows_of(service: FhirService, view: str) -> list[dict[str, Any]]:
    with service.engine.connect() as conn:
        return list(read_view(conn, view))


def lab(patient_id: str, value: float, code: str = "2345-7") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [LAB_CATEGORY],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2024-03-01T08:00:00Z",
        "valueQuantity": {"value": value, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
    }


def test_installing_the_library_registers_five_empty_views_once(service: FhirService) -> None:
    """The standard views are registered and built (empty); installing again changes nothing."""
    with service.engine.connect() as conn:
        entries = registered_views(conn)
    assert [e.name for e in entries] == [
        "conditions",
        "encounters",
        "lab_observations",
        "medications",
        "patient_demographics",
    ]
    assert all(e.built_at is not None and e.error_count == 0 for e in entries)
    assert install_standard_views(service.engine) == []
    assert rows_of(service, "patient_demographics") == []


def test_create_update_and_delete_keep_rows_in_step(service: FhirService) -> None:
    """A created resource has its rows; an update replaces them; a delete removes them."""
    patient = service.create({"resourceType": "Patient", "gender": "female", "birthDate": "1970-01-02"}).stored
    observation = service.create(lab(patient.id, 5.5)).stored
    assert rows_of(service, "patient_demographics")[0]["patient_id"] == patient.id
    assert [(r["patient_id"], r["value"]) for r in rows_of(service, "lab_observations")] == [(patient.id, 5.5)]

    changed = lab(patient.id, 7.25)
    changed["id"] = observation.id
    service.update("Observation", observation.id, changed)
    assert [r["value"] for r in rows_of(service, "lab_observations")] == [7.25]

    not_a_lab = copy.deepcopy(changed)
    not_a_lab["category"] = []
    service.update("Observation", observation.id, not_a_lab)
    assert rows_of(service, "lab_observations") == []

    service.delete("Patient", patient.id)
    assert rows_of(service, "patient_demographics") == []


def test_a_failed_write_leaves_no_view_rows(service: FhirService) -> None:
    """View rows are written in the resource's own transaction, so a rollback takes them too."""
    seen_inside: list[int] = []

    def write_then_fail() -> None:
        with write_transaction(service.engine) as conn:
            prepared = prepare({"resourceType": "Patient", "gender": "male"}, "p-rolled-back", 1, 1)
            service.insert_new(conn, [prepared])
            seen_inside.append(conn.execute(sa.text("SELECT count(*) FROM view_row")).scalar_one())
            raise RuntimeError("abort the transaction")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert seen_inside == [1]
    assert rows_of(service, "patient_demographics") == []


def test_a_rejected_transaction_bundle_writes_no_rows(service: FhirService) -> None:
    """An all-or-nothing Bundle that fails on its second entry leaves no rows from its first."""
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:8d1f0d7e-1111-4111-8111-111111111111", "resource": {"resourceType": "Patient"},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Patient", "gender": 12}, "request": {"method": "POST", "url": "Patient"}},
        ],
    }  # fmt: skip
    with pytest.raises(InputError):
        process_bundle(service, bundle, max_entries=100)
    assert rows_of(service, "patient_demographics") == []


def test_ingested_synthea_rows_equal_the_engine_on_the_stored_resources(
    service: FhirService, synthea_bundles: list[Path]
) -> None:
    """After ingest, each view's materialised rows are what the engine yields on the stored resources."""
    summary = ingest_paths(service, synthea_bundles[:4], max_bundle_entries=10_000)
    assert summary.rejected == []
    with service.engine.connect() as conn:
        stored = [
            orjson.loads(row[0])
            for row in conn.execute(sa.text("SELECT content FROM fhir_resource WHERE deleted = :no"), {"no": False})
        ]
    for name in ("patient_demographics", "conditions", "lab_observations", "encounters", "medications"):
        expected = list(evaluate_view(standard_view(name).definition, stored))
        got = rows_of(service, name)
        assert sorted(map(orjson.dumps, got)) == sorted(map(orjson.dumps, expected)), name
    patients = {r["patient_id"] for r in rows_of(service, "patient_demographics")}
    assert len(patients) == 4
    assert {r["patient_id"] for r in rows_of(service, "lab_observations")} <= patients
    with service.engine.connect() as conn:
        one = next(iter(patients))
        assert {r["patient_id"] for r in read_view(conn, "encounters", patient_keys=[one])} == {one}


def test_rebuild_recomputes_a_view_from_the_current_resources(service: FhirService) -> None:
    """Rows lost outside the write path come back from a rebuild; its report counts them."""
    patient = service.create({"resourceType": "Patient", "gender": "other"}).stored
    for value in (1.0, 2.0, 3.0):
        service.create(lab(patient.id, value))
    with write_transaction(service.engine) as conn:
        conn.execute(sa.text("DELETE FROM view_row WHERE view_name = 'lab_observations'"))
    assert rows_of(service, "lab_observations") == []
    report = rebuild(service.engine, "lab_observations")
    assert (report.rows, report.resources, report.failures) == (3, 3, 0)
    assert sorted(r["value"] for r in rows_of(service, "lab_observations")) == [1.0, 2.0, 3.0]
    with pytest.raises(NotFoundError):
        rebuild(service.engine, "no_such_view")


def test_a_view_that_fails_on_a_resource_does_not_fail_the_write(
    service: FhirService, caplog: pytest.LogCaptureFixture
) -> None:
    """The write succeeds, the resource gets no row in that view, and the failure is counted without values."""
    fragile = {
        "name": "given_names",
        "resource": "Patient",
        "select": [
            {"column": [{"name": "patient_id", "path": "getResourceKey()"}, {"name": "given", "path": "name.given"}]}
        ],
    }
    install_views(service.engine, [fragile])
    service.create({"resourceType": "Patient", "name": [{"given": ["Ann"]}]})
    service.create({"resourceType": "Patient", "name": [{"given": ["Bo", SECRET_GIVEN]}]})
    assert [r["given"] for r in rows_of(service, "given_names")] == ["Ann"]
    assert len(rows_of(service, "patient_demographics")) == 2
    with service.engine.connect() as conn:
        entry = next(e for e in registered_views(conn) if e.name == "given_names")
    assert entry.error_count == 1
    assert entry.last_error == "select[0].column[1]: several values; set collection: true"
    assert SECRET_GIVEN not in caplog.text


def test_only_views_of_the_written_type_are_evaluated(service: FhirService) -> None:
    """A Patient view that would fail on any resource is not touched by an Observation write."""
    always_fails = {
        "name": "broken_patients",
        "resource": "Patient",
        "select": [{"column": [{"name": "x", "path": "1 + 'a'"}]}],
    }
    install_views(service.engine, [always_fails])
    service.create(lab("someone", 1.0))
    with service.engine.connect() as conn:
        entry = next(e for e in registered_views(conn) if e.name == "broken_patients")
    assert entry.error_count == 0
    service.create({"resourceType": "Patient"})
    with service.engine.connect() as conn:
        entry = next(e for e in registered_views(conn) if e.name == "broken_patients")
    assert entry.error_count == 1


def test_a_changed_definition_is_rebuilt_and_an_uninstalled_view_is_gone(service: FhirService) -> None:
    """Installing a view under the same name with another definition replaces its rows."""
    service.create({"resourceType": "Patient", "gender": "female"})
    first = {"name": "genders", "resource": "Patient", "select": [{"column": [{"name": "g", "path": "gender"}]}]}
    install_views(service.engine, [first])
    assert rows_of(service, "genders") == [{"g": "female"}]
    assert install_views(service.engine, [first]) == []  # unchanged: nothing rebuilt
    second = json.loads(json.dumps(first).replace('"gender"', '"gender.upper()"'))
    (report,) = install_views(service.engine, [second])
    assert report.rows == 1
    assert rows_of(service, "genders") == [{"g": "FEMALE"}]
    uninstall_view(service.engine, "genders")
    with pytest.raises(NotFoundError):
        rows_of(service, "genders")


def test_node_init_installs_the_standard_views(tmp_path: Path) -> None:
    """``medfed node init`` (init_node) leaves the library registered and built."""
    engine, _ = init_node(NodeSettings(data_dir=tmp_path / "node"))
    try:
        with engine.connect() as conn:
            assert len(registered_views(conn)) == 5
    finally:
        engine.dispose()
