"""The coordinator's API: /healthz and the enrolment routes are public, every other route needs credentials."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import orjson
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient

from coordinator.identity import create_identity
from coordinator.store.db import now_micros
from coordinator.store.nodes import record_heartbeat, register_node, revoke_node
from coordinator.store.tokens import Role, create_token, revoke_token
from tests.integration.coordinator.conftest import CoordinatorClient, make_coordinator_client, new_public_key

PUBLIC = {("GET", "/healthz"): 200, ("GET", "/channel/v1/ca"): 200, ("POST", "/channel/v1/enrol"): 400}


def _routes(coordinator: CoordinatorClient) -> list[tuple[str, str]]:
    """Every (method, path) in the app's OpenAPI document (built in-process; it is not served)."""
    app: FastAPI = coordinator.client.app  # type: ignore[assignment]
    schema = app.openapi()
    return [(method.upper(), path) for path, operations in schema["paths"].items() for method in operations]


def _error(response_body: bytes) -> dict[str, str]:
    body = orjson.loads(response_body)
    assert set(body) == {"error"}
    error: dict[str, str] = body["error"]
    assert set(error) == {"code", "message"}
    return error


def test_healthz_is_public(coordinator: CoordinatorClient) -> None:
    """/healthz answers 200 with a bare status and no credentials."""
    response = coordinator.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_every_route_but_the_public_ones_refuses_requests_without_credentials(
    coordinator_database_url: str, tmp_path: Path
) -> None:
    """Each route in the OpenAPI document answers 401 with the error model to no credentials, except exactly
    /healthz, /channel/v1/ca and /channel/v1/enrol, which answer without (enrol: 400 to an empty body)."""
    create_identity(tmp_path)
    made = make_coordinator_client(coordinator_database_url, tmp_path)
    with TestClient(made.client.app, base_url="https://testserver") as client:  # channel routes are TLS-only
        routes = _routes(made)
        assert set(routes) >= set(PUBLIC)
        assert ("GET", "/api/nodes") in routes
        for method, path in routes:
            response = client.request(method, re.sub(r"\{[a-z_]+\}", "x1", path), content=b"{}")
            if (method, path) in PUBLIC:
                assert response.status_code == PUBLIC[(method, path)], path
            else:
                assert response.status_code == 401, (method, path, response.status_code)
                assert _error(response.content)["code"] == "unauthenticated"
                assert response.headers["www-authenticate"] == "Bearer"
    made.engine.dispose()


def test_listing_nodes_is_for_admins_and_observers(coordinator: CoordinatorClient) -> None:
    """Admin and observer tokens list the nodes; a researcher is forbidden; unknown or revoked tokens are not let in."""
    assert coordinator.client.get("/api/nodes", headers=coordinator.admin).status_code == 200
    assert coordinator.client.get("/api/nodes", headers=coordinator.observer).status_code == 200
    forbidden = coordinator.client.get("/api/nodes", headers=coordinator.researcher)
    assert forbidden.status_code == 403
    assert _error(forbidden.content)["code"] == "forbidden"
    for header in ("Bearer mfc_unknown", "Basic YWRtaW46YWRtaW4=", coordinator.admin["Authorization"] + "x"):
        assert coordinator.client.get("/api/nodes", headers={"Authorization": header}).status_code == 401
    token_id, token = create_token(coordinator.engine, role=Role.ADMIN)
    revoke_token(coordinator.engine, token_id=token_id)
    assert coordinator.client.get("/api/nodes", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_nodes_show_status_version_last_seen_and_online(coordinator: CoordinatorClient) -> None:
    """A node heard from within node_offline_after_s is online; an old, silent or revoked one is not."""
    engine = coordinator.engine
    now = now_micros()
    fresh = register_node(engine, name="Fresh Site", public_key=new_public_key(), version="0.1.0")
    record_heartbeat(engine, node_id=fresh.id, version="0.2.0", clock_skew_ms=12, now=now)
    stale = register_node(engine, name="Stale Site", public_key=new_public_key())
    record_heartbeat(engine, node_id=stale.id, now=now - 31 * 1_000_000)
    register_node(engine, name="Silent Site", public_key=new_public_key())
    gone = register_node(engine, name="Gone Site", public_key=new_public_key())
    record_heartbeat(engine, node_id=gone.id, now=now)
    revoke_node(engine, node_id=gone.id)
    response = coordinator.client.get("/api/nodes", headers=coordinator.observer)
    assert response.status_code == 200
    nodes = {n["id"]: n for n in response.json()["nodes"]}
    assert list(nodes) == ["fresh-site", "gone-site", "silent-site", "stale-site"]
    assert {k: v["online"] for k, v in nodes.items()} == {
        "fresh-site": True,
        "gone-site": False,
        "silent-site": False,
        "stale-site": False,
    }
    assert nodes["fresh-site"]["version"] == "0.2.0"
    assert nodes["fresh-site"]["clock_skew_ms"] == 12
    assert nodes["fresh-site"]["name"] == "Fresh Site"
    assert nodes["fresh-site"]["last_seen_at"].endswith("Z")
    assert nodes["gone-site"]["status"] == "revoked"
    assert nodes["silent-site"]["last_seen_at"] is None
    assert "public_key" not in nodes["fresh-site"]


def test_no_docs_or_openapi_pages_are_served(coordinator: CoordinatorClient) -> None:
    """/docs, /redoc and /openapi.json do not exist; unknown paths get the error model."""
    for path in ("/docs", "/redoc", "/openapi.json", "/nothing-here"):
        response = coordinator.client.get(path)
        assert response.status_code == 404, path
        assert _error(response.content)["code"] == "not_found"


def test_validation_errors_name_fields_and_never_echo_input(coordinator: CoordinatorClient) -> None:
    """A 422-type failure answers 400 with field locations and error types, not the rejected value."""
    app: FastAPI = coordinator.client.app  # type: ignore[assignment]

    @app.get("/api/probe")
    def probe(limit: int = Query()) -> dict[str, int]:
        return {"limit": limit}

    plant = f"PLANT{uuid.uuid4().hex}"
    response = coordinator.client.get("/api/probe", params={"limit": plant})
    assert response.status_code == 400
    assert _error(response.content)["code"] == "invalid_request"
    assert plant not in response.text


def test_request_bodies_over_the_limit_are_refused(coordinator_database_url: str, tmp_path: Path) -> None:
    """A body declared larger than max_request_bytes gets 413 before any route runs, even before authentication."""
    made = make_coordinator_client(coordinator_database_url, tmp_path, max_request_bytes=16)
    with made.client:
        response = made.client.post("/api/nodes", content=b"x" * 17, headers=made.admin)
        assert response.status_code == 413
        assert _error(response.content)["code"] == "payload_too_large"
        assert made.client.post("/api/nodes", content=b"x" * 16, headers=made.admin).status_code == 405
    made.engine.dispose()
