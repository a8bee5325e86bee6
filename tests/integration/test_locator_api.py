"""``GET /locate`` on the node's API: who may call it, and what a node without the locator answers."""

from __future__ import annotations

from common.errors import CATALOG, ErrorCode
from tests.integration.conftest import NodeClient


def test_locate_is_for_clinicians_only(node: NodeClient) -> None:
    """No token: 401; an admin token: 403 (locating records is a clinician's act, audited as theirs)."""
    assert node.client.get("/locate", params={"patient": "p1"}).status_code == 401
    assert node.client.get("/locate", params={"patient": "p1"}, headers=node.admin).status_code == 403


def test_a_node_that_is_not_enrolled_answers_that_the_locator_is_not_configured(node: NodeClient) -> None:
    """Without enrolment and a linkage key there is no locator: 409 with the catalog message, nothing echoed."""
    response = node.client.get("/locate", params={"patient": "p1"}, headers=node.clinician)
    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "linkage_not_configured", "message": CATALOG[ErrorCode.LINKAGE_NOT_CONFIGURED].message}
    }
    assert "p1" not in response.text


def test_a_patient_id_that_is_not_a_fhir_id_is_refused_without_echoing_it(node: NodeClient) -> None:
    """The patient parameter is checked like a FHIR id; the refusal names the field, not the value."""
    response = node.client.get("/locate", params={"patient": "Smith, John"}, headers=node.clinician)
    assert response.status_code == 400
    assert "Smith" not in response.text
