"""No identifier, token or patient value reaches the node's logs in a representative flow."""

from __future__ import annotations

import logging
import uuid

import orjson
import pytest

from common.logs import JsonFormatter
from tests.integration.conftest import NodeClient


def test_logs_carry_no_identifiers_tokens_or_values(node: NodeClient, caplog: pytest.LogCaptureFixture) -> None:
    """Creating, searching, reading, failing and transacting leave none of the values or tokens in the logs."""
    caplog.set_level(logging.DEBUG)
    secret_name = f"Name{uuid.uuid4().hex}"
    secret_mrn = f"MRN{uuid.uuid4().hex}"
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:mrn", "value": secret_mrn}],
        "name": [{"family": secret_name}],
        "gender": "female",
    }
    created = node.client.post("/fhir/Patient", json=patient, headers=node.admin).json()
    pid = created["id"]
    node.client.get("/fhir/Patient", params={"identifier": f"urn:test:mrn|{secret_mrn}"}, headers=node.clinician)
    node.client.get(f"/fhir/Patient/{pid}", headers=node.clinician)
    node.client.post("/fhir/Patient", json={**patient, "gender": secret_name}, headers=node.admin)
    node.client.get("/fhir/Observation", params={"date": f"xx{secret_mrn}"}, headers=node.clinician)
    node.client.post("/fhir/Patient", content=b"{" + secret_name.encode(), headers=node.admin)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": patient, "request": {"method": "POST", "url": "Patient"}}],
    }
    node.client.post("/fhir", content=orjson.dumps(bundle), headers=node.admin)
    node.client.get("/fhir/Patient", headers={"Authorization": "Bearer mfn_" + secret_mrn})

    formatter = JsonFormatter()
    # httpx2 is the test client's own request log, not the node's.
    node_records = [r for r in caplog.records if not r.name.startswith("httpx")]
    text = "\n".join(formatter.format(record) for record in node_records)
    assert node_records, "the flow should log something (refusals at least)"
    tokens = [node.admin["Authorization"].split()[1], node.clinician["Authorization"].split()[1]]
    for secret in [secret_name, secret_mrn, pid, *tokens]:
        assert secret not in text
