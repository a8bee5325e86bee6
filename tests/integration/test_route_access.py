"""Route by route, from the OpenAPI document: only /healthz and /fhir/metadata answer without a token."""

from __future__ import annotations

import re

from tests.integration.conftest import NodeClient

PUBLIC = {("GET", "/healthz"), ("GET", "/fhir/metadata")}
READ_ONLY_METHODS = {"GET"}


def _routes(node: NodeClient) -> list[tuple[str, str]]:
    """Every (method, path) in the app's OpenAPI document (built in-process; it is not served)."""
    schema = node.client.app.openapi()  # type: ignore[attr-defined]
    return [(method.upper(), path) for path, operations in schema["paths"].items() for method in operations]


def _concrete(path: str) -> str:
    return re.sub(r"\{resource_type\}", "Patient", re.sub(r"\{[a-z_]+\}", "x1", path))


def test_only_the_public_routes_answer_without_a_token(node: NodeClient) -> None:
    """Every route but the two public ones answers 401 to a request without credentials."""
    routes = _routes(node)
    assert set(routes) >= PUBLIC
    assert len(routes) > len(PUBLIC)
    for method, path in routes:
        response = node.client.request(method, _concrete(path), content=b"{}")
        if (method, path) in PUBLIC:
            assert response.status_code == 200, path
        else:
            assert response.status_code == 401, (method, path, response.status_code)


def test_clinicians_cannot_reach_write_routes(node: NodeClient) -> None:
    """Every non-GET route except POST searches answers 403 to a clinician token."""
    for method, path in _routes(node):
        if method in READ_ONLY_METHODS or path.endswith("/_search"):
            continue
        response = node.client.request(method, _concrete(path), content=b"{}", headers=node.clinician)
        assert response.status_code == 403, (method, path, response.status_code)
