"""Route by route: every route of the coordinator app (OpenAPI document and route table) with the access it needs.

:data:`ACCESS` names each (method, path)'s expected access: a role set for bearer-token routes, a signed
node request for the channel, a console session for the console, or public — and the public ones say
why. The first test fails when a route is added (or removed) without an entry here; the others check
every entry against the app: no credentials are refused (401, or 303 to the login page for console
pages), the wrong role gets 403, a bearer token does not open a node-signed route nor a node signature
a bearer route nor the console, and the right credentials get past authentication.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from common.crypto import SigningKey, sign_request
from coordinator.identity import create_identity
from coordinator.store.nodes import register_node
from coordinator.store.tokens import Role
from tests.integration.coordinator.conftest import CoordinatorClient, make_coordinator_client
from tests.integration.test_route_access import app_routes

ALL_ROLES = frozenset(Role)
NETWORK_VIEWERS = frozenset({Role.ADMIN, Role.OBSERVER})
SUBMITTERS = frozenset({Role.ADMIN, Role.RESEARCHER})


@dataclass(frozen=True)
class Public:
    """No credentials, by design (``why``); ``status`` is the answer to an empty JSON object."""

    why: str
    status: int


@dataclass(frozen=True)
class Bearer:
    """An API token of one of ``roles``."""

    roles: frozenset[Role]


@dataclass(frozen=True)
class NodeSigned:
    """A request signed by an enrolled node's key (over TLS); ``body`` is what a valid request may send."""

    body: bytes = b"{}"


@dataclass(frozen=True)
class ConsolePage:
    """A console page: a session of one of ``roles``; without a session, 303 to the login page."""

    roles: frozenset[Role]


@dataclass(frozen=True)
class ConsoleJson:
    """The console's JSON: a session of one of ``roles``; without a session, 401."""

    roles: frozenset[Role]


Access = Public | Bearer | NodeSigned | ConsolePage | ConsoleJson

ACCESS: dict[tuple[str, str], Access] = {
    ("GET", "/healthz"): Public("liveness for the orchestrator; a bare status", 200),
    ("GET", "/channel/v1/ca"): Public("the CA certificate a new node pins against its code's fingerprint", 200),
    ("POST", "/channel/v1/enrol"): Public("authenticated by the one-time enrolment code in its body", 400),
    ("GET", "/console/login"): Public("the login form", 200),
    ("POST", "/console/login"): Public("exchanges an API token for a session (failures rate-limited)", 403),
    ("POST", "/console/logout"): Public("ends the caller's own session; without one it does nothing", 403),
    ("GET", "/console/static/{name}"): Public("the login page's script and stylesheet; no data", 404),
    ("GET", "/api/nodes"): Bearer(NETWORK_VIEWERS),
    ("GET", "/api/nodes/{node_id}/audit-receipt"): Bearer(NETWORK_VIEWERS),
    ("POST", "/api/jobs"): Bearer(SUBMITTERS),
    ("GET", "/api/jobs"): Bearer(ALL_ROLES),
    ("GET", "/api/jobs/{job_id}"): Bearer(ALL_ROLES),
    ("GET", "/api/jobs/{job_id}/results"): Bearer(ALL_ROLES),
    ("GET", "/api/jobs/{job_id}/model"): Bearer(ALL_ROLES),
    ("POST", "/api/jobs/{job_id}/cancel"): Bearer(SUBMITTERS),
    ("POST", "/channel/v1/whoami"): NodeSigned(),
    ("POST", "/channel/v1/poll"): NodeSigned(b'{"wait_s": 0}'),
    ("POST", "/channel/v1/reply"): NodeSigned(),
    ("POST", "/channel/v1/heartbeat"): NodeSigned(),
    ("POST", "/channel/v1/receipts"): NodeSigned(),
    ("POST", "/index/v1/publish"): NodeSigned(),
    ("POST", "/index/v1/withdraw"): NodeSigned(),
    ("POST", "/index/v1/lookup"): NodeSigned(),
    ("GET", "/relay/v1/certificates/{node_id}"): NodeSigned(b""),
    ("POST", "/relay/v1/send"): NodeSigned(),
    ("POST", "/relay/v1/poll"): NodeSigned(b'{"kind": "request", "wait_s": 0}'),
    ("GET", "/console"): ConsolePage(ALL_ROLES),
    ("GET", "/console/nodes"): ConsolePage(NETWORK_VIEWERS),
    ("GET", "/console/jobs"): ConsolePage(ALL_ROLES),
    ("GET", "/console/jobs/{job_id}"): ConsolePage(ALL_ROLES),
    ("GET", "/console/api/nodes"): ConsoleJson(NETWORK_VIEWERS),
    ("GET", "/console/api/jobs"): ConsoleJson(ALL_ROLES),
    ("GET", "/console/api/jobs/{job_id}"): ConsoleJson(ALL_ROLES),
}
ORIGIN = {"Origin": "https://testserver"}


@dataclass
class Coordinator:
    """The app over TLS (the channel answers nothing else), a token per role and an enrolled node's key."""

    client: TestClient
    made: CoordinatorClient
    node_id: str
    node_key: SigningKey

    def bearer(self, role: Role) -> dict[str, str]:
        return {Role.ADMIN: self.made.admin, Role.RESEARCHER: self.made.researcher, Role.OBSERVER: self.made.observer}[
            role
        ]

    def signed(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return sign_request(self.node_key, key_id=self.node_id, method=method, path_and_query=path, body=body)

    def console_as(self, role: Role) -> TestClient:
        """A client of the same app with a console session of ``role``."""
        client = TestClient(self.client.app, base_url="https://testserver")
        token = self.bearer(role)["Authorization"].removeprefix("Bearer ")
        response = client.post("/console/login", data={"token": token}, headers=ORIGIN, follow_redirects=False)
        assert response.status_code == 303, response.text
        return client


def concrete(path: str) -> str:
    return re.sub(r"\{[a-z_]+\}", "x1", path)


@pytest.fixture
def coordinator(coordinator_database_url: str, tmp_path: Path) -> Iterator[Coordinator]:
    """The coordinator with its identity; a failed-authentication budget that many bad tokens do not exhaust."""
    create_identity(tmp_path)
    made = make_coordinator_client(coordinator_database_url, tmp_path, auth_failure_burst=10_000)
    key = SigningKey.generate()
    node = register_node(made.engine, name="Route Site", public_key=key.public_key().to_text())
    with TestClient(made.client.app, base_url="https://testserver") as client:
        yield Coordinator(client=client, made=made, node_id=node.id, node_key=key)
    made.engine.dispose()


def _error_code(body: bytes) -> str:
    code: str = orjson.loads(body)["error"]["code"]
    return code


def test_every_route_has_a_declared_access(coordinator: Coordinator) -> None:
    """The app's routes are exactly ACCESS's: a new route fails here until its access is declared."""
    app: FastAPI = coordinator.client.app  # type: ignore[assignment]
    routes = app_routes(app)
    assert routes - set(ACCESS) == set(), "routes without a declared access"
    assert set(ACCESS) - routes == set(), "declared routes the app does not have"
    public_api = {route for route, access in ACCESS.items() if isinstance(access, Public)}
    assert {route for route in public_api if not route[1].startswith("/console")} == {
        ("GET", "/healthz"),
        ("GET", "/channel/v1/ca"),
        ("POST", "/channel/v1/enrol"),
    }


def test_no_credentials_are_refused_everywhere_but_on_the_public_routes(coordinator: Coordinator) -> None:
    """401 with the error model on API and channel routes and console JSON; 303 to the login page on console pages."""
    for (method, path), access in ACCESS.items():
        response = coordinator.client.request(method, concrete(path), content=b"{}", follow_redirects=False)
        where = (method, path, response.status_code)
        if isinstance(access, Public):
            assert response.status_code == access.status, where
        elif isinstance(access, ConsolePage):
            assert response.status_code == 303, where
            assert response.headers["location"] == "/console/login"
        else:
            assert response.status_code == 401, where
            assert _error_code(response.content) == "unauthenticated"


def test_bearer_routes_refuse_the_wrong_role_and_admit_the_right_one(coordinator: Coordinator) -> None:
    """Observer on submit or cancel, researcher on the node registry: 403; an allowed role gets past auth."""
    checked = 0
    for (method, path), access in ACCESS.items():
        if not isinstance(access, Bearer):
            continue
        for role in Role:
            response = coordinator.client.request(
                method, concrete(path), content=b"{}", headers=coordinator.bearer(role)
            )
            if role in access.roles:
                assert response.status_code not in (401, 403), (role, method, path, response.status_code)
            else:
                checked += 1
                assert response.status_code == 403, (role, method, path, response.status_code)
                assert _error_code(response.content) == "forbidden"
    assert checked >= 4


def test_a_node_signature_opens_only_the_channel_and_a_bearer_token_never_does(coordinator: Coordinator) -> None:
    """An admin token on a channel route: 401. A valid node signature: past auth there, 401 on bearer routes."""
    for (method, path), access in ACCESS.items():
        target = concrete(path)
        if isinstance(access, NodeSigned):
            admin = coordinator.client.request(method, target, content=access.body, headers=coordinator.made.admin)
            assert admin.status_code == 401, (method, path, admin.status_code)
            signed = coordinator.signed(method, target, access.body)
            answered = coordinator.client.request(method, target, content=access.body, headers=signed)
            assert answered.status_code not in (401, 403), (method, path, answered.status_code, answered.text)
        elif isinstance(access, Bearer):
            signed = coordinator.signed(method, target, b"{}")
            refused = coordinator.client.request(method, target, content=b"{}", headers=signed)
            assert refused.status_code == 401, (method, path, refused.status_code)


def test_the_console_needs_a_session_of_an_allowed_role(coordinator: Coordinator) -> None:
    """A bearer token opens no console page; a session of the wrong role gets 403; an allowed one gets through."""
    sessions = {role: coordinator.console_as(role) for role in Role}
    for (method, path), access in ACCESS.items():
        if not isinstance(access, ConsolePage | ConsoleJson):
            continue
        target = concrete(path)
        with_token = coordinator.client.request(method, target, headers=coordinator.made.admin, follow_redirects=False)
        assert with_token.status_code == (303 if isinstance(access, ConsolePage) else 401), (method, path)
        for role, client in sessions.items():
            response = client.request(method, target, follow_redirects=False)
            if role in access.roles:
                assert response.status_code not in (401, 403), (role, method, path, response.status_code)
            else:
                assert response.status_code == 403, (role, method, path, response.status_code)
