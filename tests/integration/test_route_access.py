"""Route by route: every route of the node app, from its OpenAPI document and its route table, with the access it needs.

:data:`ACCESS` names the expected access of each (method, path). The first test fails when a route is
added (or removed) without an entry here, so no route can appear without someone deciding who may call
it; the others check each entry against the running app: no credentials are refused with 401 (only
``/healthz`` and ``/fhir/metadata`` are public), an unknown token with 401, the wrong role with 403, and
the right role gets past authentication.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from tests.integration.conftest import NodeClient, make_node_client


class Access(Enum):
    """Who may call a route."""

    PUBLIC = "no credentials"
    READER = "a clinician or admin token"
    ADMIN = "an admin token"
    CLINICIAN = "a clinician token"


ACCESS: dict[tuple[str, str], Access] = {
    # Public by design: liveness for the orchestrator, and the CapabilityStatement FHIR clients read first.
    ("GET", "/healthz"): Access.PUBLIC,
    ("GET", "/fhir/metadata"): Access.PUBLIC,
    # The FHIR API: clinicians read and search, admins also write.
    ("POST", "/fhir"): Access.ADMIN,
    ("GET", "/fhir/Patient/{resource_id}/$everything"): Access.READER,
    ("GET", "/fhir/{resource_type}"): Access.READER,
    ("POST", "/fhir/{resource_type}/_search"): Access.READER,
    ("POST", "/fhir/{resource_type}"): Access.ADMIN,
    ("GET", "/fhir/{resource_type}/{resource_id}"): Access.READER,
    ("GET", "/fhir/{resource_type}/{resource_id}/_history/{version_id}"): Access.READER,
    ("GET", "/fhir/{resource_type}/{resource_id}/_history"): Access.READER,
    ("PUT", "/fhir/{resource_type}/{resource_id}"): Access.ADMIN,
    ("DELETE", "/fhir/{resource_type}/{resource_id}"): Access.ADMIN,
    # The admin API.
    ("GET", "/admin/v1/approvals"): Access.ADMIN,
    ("POST", "/admin/v1/approvals/{job_id}/approve"): Access.ADMIN,
    ("POST", "/admin/v1/approvals/{job_id}/reject"): Access.ADMIN,
    ("GET", "/admin/v1/releases"): Access.ADMIN,
    ("POST", "/admin/v1/releases/{hold_id}/release"): Access.ADMIN,
    ("POST", "/admin/v1/releases/{hold_id}/withhold"): Access.ADMIN,
    ("GET", "/admin/v1/policy"): Access.ADMIN,
    ("POST", "/admin/v1/policy/check"): Access.ADMIN,
    ("GET", "/admin/v1/audit/head"): Access.ADMIN,
    ("GET", "/admin/v1/audit/verify"): Access.ADMIN,
    # The record locator: for clinicians treating a patient, not for administrators.
    ("GET", "/locate"): Access.CLINICIAN,
}
ALLOWED = {
    Access.READER: {"clinician", "admin"},
    Access.ADMIN: {"admin"},
    Access.CLINICIAN: {"clinician"},
}


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app answers: its OpenAPI document and the routes left out of it."""
    schema = app.openapi()
    found = {(method.upper(), path) for path, operations in schema["paths"].items() for method in operations}
    # Routers are included as branches (FastAPI 0.138); iter_route_contexts walks them to their routes.
    for route in iter_route_contexts(app.routes):
        found |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
    return found


def concrete(path: str) -> str:
    """A request path for a route template (a real resource type, an integer where one is expected)."""
    path = path.replace("{resource_type}", "Patient").replace("{hold_id}", "1")
    return re.sub(r"\{[a-z_]+\}", "x1", path)


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[NodeClient]:
    """A node app whose failed-authentication budget does not get in the way of sending many bad tokens."""
    made = make_node_client(database_url, tmp_path, auth_failure_burst=10_000)
    with made.client:
        yield made
    made.engine.dispose()


def test_every_route_has_a_declared_access(node: NodeClient) -> None:
    """The app's routes are exactly the routes of ACCESS: a new route fails here until its access is declared."""
    routes = app_routes(node.client.app)  # type: ignore[arg-type]
    assert len(routes) > 20
    assert routes - set(ACCESS) == set(), "routes without a declared access"
    assert set(ACCESS) - routes == set(), "declared routes the app does not have"
    assert {route for route, access in ACCESS.items() if access is Access.PUBLIC} == {
        ("GET", "/healthz"),
        ("GET", "/fhir/metadata"),
    }


@pytest.mark.parametrize("credentials", ["none", "unknown token", "not bearer"])
def test_every_route_but_the_public_ones_refuses_missing_or_unknown_credentials(
    node: NodeClient, credentials: str
) -> None:
    """No token, an unknown token or a non-bearer scheme: 401 with WWW-Authenticate on every non-public route."""
    headers = {
        "none": {},
        "unknown token": {"Authorization": "Bearer mfn_" + "x" * 43},
        "not bearer": {"Authorization": node.admin["Authorization"].replace("Bearer", "Basic")},
    }[credentials]
    for (method, path), access in ACCESS.items():
        response = node.client.request(method, concrete(path), content=b"{}", headers=headers)
        if access is Access.PUBLIC:
            assert response.status_code == 200, path
        else:
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"] == "Bearer"


def test_every_route_refuses_the_wrong_role_and_admits_the_right_one(node: NodeClient) -> None:
    """A clinician on an admin route and an admin on a clinician route get 403; an allowed role gets past auth."""
    tokens = {"clinician": node.clinician, "admin": node.admin}
    for (method, path), access in ACCESS.items():
        if access is Access.PUBLIC:
            continue
        for role, headers in tokens.items():
            response = node.client.request(method, concrete(path), content=b"{}", headers=headers)
            if role in ALLOWED[access]:
                assert response.status_code not in (401, 403), (role, method, path, response.status_code)
            else:
                assert response.status_code == 403, (role, method, path, response.status_code)
