"""Bad input gets the right status and an OperationOutcome, changes nothing, and is never echoed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.conftest import NodeClient, make_node_client


def _planted() -> str:
    return f"PLANT{uuid.uuid4().hex}"


def _valid_patient(value: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": value}], "gender": "female"}


def _bad_requests(plant: str) -> list[tuple[str, str, str, bytes, dict[str, str], int]]:
    """(label, method, path, body, extra headers, expected status); each body or URL carries ``plant``."""
    good = orjson.dumps(_valid_patient(plant))
    bad_entry_tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": _valid_patient(plant), "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": {"resourceType": "Observation", "status": plant, "code": {"text": plant}},
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    return [
        (
            "malformed json",
            "POST",
            "/fhir/Patient",
            b'{"resourceType": "Patient", "name": ' + plant.encode(),
            {},
            400,
        ),
        ("unknown type in URL", "POST", f"/fhir/{plant}", good, {}, 404),
        ("unknown type in body", "POST", "/fhir", orjson.dumps({"resourceType": plant}), {}, 400),
        (
            "invalid resource",
            "POST",
            "/fhir/Patient",
            orjson.dumps({**_valid_patient(plant), "gender": plant}),
            {},
            422,
        ),
        (
            "invalid birthDate",
            "POST",
            "/fhir/Patient",
            orjson.dumps({**_valid_patient("x"), "birthDate": plant}),
            {},
            422,
        ),
        ("transaction with one bad entry", "POST", "/fhir", orjson.dumps(bad_entry_tx), {}, 422),
        ("bad date prefix", "GET", f"/fhir/Observation?date=xx{plant}", b"", {}, 400),
        ("bad date", "GET", f"/fhir/Observation?date=ge{plant}", b"", {}, 400),
        ("bad _count", "GET", f"/fhir/Patient?_count={plant}", b"", {}, 400),
        ("bad _sort", "GET", f"/fhir/Patient?_sort={plant}", b"", {}, 400),
        ("bad page token", "GET", f"/fhir/Patient?_page={plant}", b"", {}, 400),
        ("wrong media type", "POST", "/fhir/Patient", good, {"Content-Type": "text/plain"}, 415),
        (
            "If-Match not a version",
            "PUT",
            "/fhir/Patient/abc",
            orjson.dumps({**_valid_patient(plant), "id": "abc"}),
            {"If-Match": plant},
            400,
        ),
        (
            "id mismatch",
            "PUT",
            "/fhir/Patient/abc",
            orjson.dumps({**_valid_patient(plant), "id": "abd"}),
            {},
            400,
        ),
        ("body not an object", "POST", "/fhir/Patient", orjson.dumps([plant]), {}, 422),
    ]


@pytest.mark.parametrize("case", range(15))
def test_bad_requests_change_nothing_and_echo_nothing(node: NodeClient, case: int) -> None:
    """Each bad request gets its status and an OperationOutcome, changes no rows, and echoes no planted value."""
    plant = _planted()
    label, method, path, body, headers, status = _bad_requests(plant)[case]
    before = node.row_counts()
    response = node.client.request(
        method,
        path,
        content=body or None,
        headers={**node.admin, "Content-Type": "application/fhir+json", **headers},
    )
    assert response.status_code == status, (label, response.text)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome", label
    assert outcome["issue"][0]["severity"] == "error"
    assert plant not in response.text, label
    assert plant not in str(response.headers), label
    assert node.row_counts() == before, label


def test_cases_cover_every_bad_request() -> None:
    """The parametrised test above runs every case in the list."""
    assert len(_bad_requests("x")) == 15


def test_oversize_bundle_is_413_and_changes_nothing(database_url: str, tmp_path: Path) -> None:
    """A body over max_request_bytes, or a Bundle with too many entries, is 413 and stores nothing."""
    node = make_node_client(database_url, tmp_path, max_request_bytes=4096, max_bundle_entries=3)
    with node.client:
        plant = _planted()
        entry = {"resource": _valid_patient(plant), "request": {"method": "POST", "url": "Patient"}}
        before = node.row_counts()
        big = {"resourceType": "Bundle", "type": "transaction", "entry": [entry] * 200}
        many = {"resourceType": "Bundle", "type": "transaction", "entry": [entry] * 4}
        send: Callable[[dict[str, Any]], Any] = lambda b: node.client.post(  # noqa: E731
            "/fhir", content=orjson.dumps(b), headers={**node.admin, "Content-Type": "application/fhir+json"}
        )
        for bundle in (big, many):
            response = send(bundle)
            assert response.status_code == 413
            assert response.json()["issue"][0]["code"] == "too-long"
            assert plant not in response.text
        assert node.row_counts() == before
    node.engine.dispose()
