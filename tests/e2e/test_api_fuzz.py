"""schemathesis against both apps' OpenAPI documents, on real ``medfed ... start`` processes.

Neither app serves its OpenAPI document (``openapi_url=None``), so it is built in-process from
``create_app(settings).openapi()`` over the same data directory, and schemathesis sends its cases to the
running process over loopback (the coordinator over TLS, pinned to its CA). Every operation of each
document is fuzzed with a fixed seed (``derandomize``) and :data:`MAX_EXAMPLES` examples, half of them
valid and half deliberately invalid (schemathesis's positive and negative modes), with the credentials
the route asks for (:mod:`tests.integration.test_route_access` and its coordinator twin declare which):
an admin or a clinician token at the node; an admin or a researcher token at the coordinator, or a
signed request of an enrolled node on the channel routes. Checks:

- ``not_a_server_error``: no 5xx;
- ``response_schema_conformance``: a response with a documented status matches its documented schema;
- :func:`no_echo_check`: no error response (status >= 400) contains a string the case submitted (4 characters
  or longer; parameter values, and a body's values and keys), once the catalog's fixed messages
  are taken out of it.

Two changes to what is fuzzed: a long-poll's ``wait_s`` that the server would wait for is sent as 0
(each example would otherwise wait up to 30 s for a message that never comes), and the node's
``{resource_type}`` is drawn from the R4 resource types (a random string only ever reaches the 404).
After each operation, the process still runs and logged no unhandled error meanwhile.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from common.crypto import SigningKey, client_ssl_context, sign_request
from common.errors import CATALOG, ErrorCode
from coordinator.app import create_app as create_coordinator_app
from coordinator.config import CoordinatorSettings
from coordinator.identity import CoordinatorIdentity
from coordinator.runtime import init_coordinator
from coordinator.store.nodes import register_node
from coordinator.store.tokens import Role as CoordinatorRole
from coordinator.store.tokens import create_token as create_coordinator_token
from node.app import create_app as create_node_app
from node.config import NodeSettings
from node.fhir.resource_types import R4_RESOURCE_TYPES
from node.runtime import init_node
from node.store.tokens import Role as NodeRole
from node.store.tokens import create_token as create_node_token
from tests.e2e.conftest import STARTUP_DEADLINE_S, STDERR_TAIL_CHARS, _free_port, _medfed_command, _stop
from tests.integration.coordinator import test_route_access as coordinator_access
from tests.integration.test_route_access import ACCESS as NODE_ACCESS
from tests.integration.test_route_access import Access as NodeAccess

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 50
MIN_ECHO_CHARS = 4
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
REQUEST_TIMEOUT_S = 60.0
MAX_WAIT_S = 30.0  # the long-poll routes' bound on wait_s
POLL_S = 0.1
# The catalog's fixed sentences and codes may contain any word a case happens to submit ("request").
_FIXED_TEXT = sorted({entry.message for entry in CATALOG.values()} | {str(code) for code in ErrorCode}, key=len)


def _env() -> dict[str, str]:
    dropped = {"https_proxy", "http_proxy", "all_proxy"}
    return {k: v for k, v in os.environ.items() if not k.startswith("MEDFED_") and k.lower() not in dropped}


# --- the no-echo check ---------------------------------------------------------------------------------


def _strings(value: Any) -> Iterator[str]:
    """Every string in a submitted value, dictionary keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def document_words(raw: Any) -> set[str]:
    """Every key and string in an OpenAPI document: the server's own words (field names, enum values)."""
    return set(_strings(raw))


def submitted_strings(case: schemathesis.Case[Any]) -> set[str]:
    """The strings of ``MIN_ECHO_CHARS`` or more that ``case`` sends (credentials are added later and excluded)."""
    # Parameter names are the document's, not the caller's: only their values count; a body's keys do.
    parts: list[Any] = [
        list(values.values()) for values in (case.path_parameters, case.query, dict(case.headers or {}), case.cookies)
    ]
    if not isinstance(case.body, schemathesis.core.NotSet):
        parts.append(case.body)
    return {text for part in parts for text in _strings(part) if len(text.strip()) >= MIN_ECHO_CHARS}


def no_echo_check(own_words: set[str]) -> Callable[..., None]:
    """The no-echo check for a document whose own words (keys, enum values: :func:`document_words`) are
    ``own_words``: an error response contains none of the strings the case submitted, other than those.

    A hint may name a field (``body.code: missing``), and a case may send a field's name as a value: that is
    the server's word, not the caller's. Anything else the caller sent must not come back.
    """

    def no_echo(_ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]) -> None:
        if response.status_code < 400:
            return
        text = response.text
        for fixed in reversed(_FIXED_TEXT):
            text = text.replace(fixed, "")
        echoed = sorted(value for value in submitted_strings(case) - own_words if value in text)
        if echoed:
            raise AssertionError(f"{response.status_code} echoes submitted values {echoed!r}: {response.text[:500]}")

    return no_echo


# --- the processes ---------------------------------------------------------------------------------------


@dataclass
class Service:
    """A running process, its base URL, the OpenAPI document of its app and how to call each route."""

    base_url: str
    raw: dict[str, Any]
    call_kwargs: Callable[[str, str], dict[str, Any]]
    log: Path
    process: subprocess.Popen[bytes]

    def __post_init__(self) -> None:
        self.schema = schemathesis.openapi.from_dict(self.raw)
        self.no_echo = no_echo_check(document_words(self.raw))


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*_medfed_command(), *args], env=_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log: Path, verify: Any) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"the process exited ({process.returncode}):\n{log.read_text()[-STDERR_TAIL_CHARS:]}")
        try:
            if httpx.get(f"{url}/healthz", verify=verify, timeout=2.0, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            pytest.fail(f"not healthy after {STARTUP_DEADLINE_S:.0f}s:\n{log.read_text()[-STDERR_TAIL_CHARS:]}")
        time.sleep(POLL_S)  # a readiness probe's polling interval, not synchronisation


def _known_resource_types(raw: dict[str, Any]) -> dict[str, Any]:
    """The document with ``{resource_type}`` drawn from the R4 types (a random one only ever meets the 404)."""
    for operations in raw["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "resource_type" and parameter["in"] == "path":
                    parameter["schema"] = {"type": "string", "enum": sorted(R4_RESOURCE_TYPES)}
    return raw


@pytest.fixture(scope="module")
def node_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``medfed node start`` on SQLite, with an admin and a clinician token (not enrolled: /locate answers 409)."""
    root = tmp_path_factory.mktemp("fuzz-node")
    settings_ = NodeSettings(data_dir=root / "node", port=_free_port())
    init_node(settings_)
    app = create_node_app(settings_)
    raw = _known_resource_types(app.openapi())
    tokens = {
        NodeRole.ADMIN: create_node_token(app.state.engine, NodeRole.ADMIN, "fuzz admin")[1],
        NodeRole.CLINICIAN: create_node_token(app.state.engine, NodeRole.CLINICIAN, "fuzz clinician")[1],
    }
    app.state.engine.dispose()
    role_for = {
        NodeAccess.ADMIN: NodeRole.ADMIN,
        NodeAccess.READER: NodeRole.CLINICIAN,
        NodeAccess.CLINICIAN: NodeRole.CLINICIAN,
    }

    def call_kwargs(method: str, path: str) -> dict[str, Any]:
        access = NODE_ACCESS[(method, path)]
        if access is NodeAccess.PUBLIC:
            return {}
        return {"headers": {"Authorization": f"Bearer {tokens[role_for[access]]}"}}

    log = root / "node.log"
    url = f"http://127.0.0.1:{settings_.port}"
    process = _spawn(["node", "start", "--data-dir", str(settings_.data_dir), "--port", str(settings_.port)], log)
    try:
        _wait_healthy(process, url, log, verify=True)
        yield Service(url, raw, call_kwargs, log, process)
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def coordinator_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``medfed coordinator start`` with admin and researcher tokens and one enrolled node whose key the test holds."""
    root = tmp_path_factory.mktemp("fuzz-coordinator")
    settings_ = CoordinatorSettings(data_dir=root / "coordinator", port=_free_port())
    engine, _ = init_coordinator(settings_)
    try:
        tokens = {
            role: create_coordinator_token(engine, role=role, label=f"fuzz {role}")[1]
            for role in (CoordinatorRole.ADMIN, CoordinatorRole.RESEARCHER)
        }
        node_key = SigningKey.generate()
        node_id = register_node(engine, name="Fuzz Site", public_key=node_key.public_key().to_text()).id
    finally:
        engine.dispose()
    app = create_coordinator_app(settings_)
    raw = app.openapi()
    app.state.engine.dispose()
    ca_file = root / "ca.pem"
    ca_file.write_bytes(CoordinatorIdentity.load(settings_.data_dir).ca_pem)

    def sign(prepared: Any) -> Any:
        """A ``requests`` auth hook: sign the request exactly as it goes out."""
        body = prepared.body or b""
        headers = sign_request(
            node_key,
            key_id=node_id,
            method=prepared.method,
            path_and_query=prepared.path_url,
            body=body.encode() if isinstance(body, str) else body,
        )
        prepared.headers.update(headers)
        return prepared

    def call_kwargs(method: str, path: str) -> dict[str, Any]:
        access = coordinator_access.ACCESS[(method, path)]
        kwargs: dict[str, Any] = {"verify": str(ca_file)}
        if isinstance(access, coordinator_access.Bearer):
            role = CoordinatorRole.RESEARCHER if CoordinatorRole.RESEARCHER in access.roles else CoordinatorRole.ADMIN
            kwargs["headers"] = {"Authorization": f"Bearer {tokens[role]}"}
        elif isinstance(access, coordinator_access.NodeSigned):
            kwargs["auth"] = sign
        return kwargs

    log = root / "coordinator.log"
    url = f"https://127.0.0.1:{settings_.port}"
    process = _spawn(
        [
            "coordinator",
            "start",
            "--data-dir",
            str(settings_.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(settings_.port),
            "--no-advertise",
        ],
        log,
    )
    try:
        _wait_healthy(process, url, log, verify=client_ssl_context(ca_file.read_bytes()))
        yield Service(url, raw, call_kwargs, log, process)
    finally:
        _stop(process)


# --- the fuzzing -----------------------------------------------------------------------------------------


def _operations(access: dict[tuple[str, str], Any]) -> list[tuple[str, str]]:
    """The routes of a route table that are in the OpenAPI document (the console's are not)."""
    return sorted(route for route in access if not route[1].startswith("/console"))


def _without_waiting(case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
    """A long-poll case with ``wait_s`` 0 where the server would wait (a number in range, or left out)."""
    body = case.body
    if isinstance(body, dict):
        wait = body.get("wait_s", MAX_WAIT_S)
        if isinstance(wait, int | float) and 0 < wait <= MAX_WAIT_S:
            body["wait_s"] = 0
    return case


def fuzz(service: Service, method: str, path: str) -> None:
    """:data:`MAX_EXAMPLES` cases of one operation, valid and invalid, each sent and checked."""
    operation = service.schema[path][method]
    cases = st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )
    if path.endswith("/poll"):
        cases = cases.map(_without_waiting)
    kwargs = service.call_kwargs(method, path)
    checks = [not_a_server_error, schemathesis.checks.response_schema_conformance, service.no_echo]

    @FUZZ_SETTINGS
    @given(case=cases)
    def run(case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=service.base_url, timeout=REQUEST_TIMEOUT_S, **kwargs)
        case.validate_response(response, checks=checks)

    run()


def fuzz_and_watch_the_log(service: Service, method: str, path: str) -> None:
    """Fuzz one operation; then the process still runs and logged no unhandled error meanwhile."""
    start = service.log.stat().st_size
    fuzz(service, method, path)
    if service.process.poll() is not None:
        pytest.fail(f"the process exited ({service.process.returncode}):\n{service.log.read_text()[-4000:]}")
    with service.log.open("rb") as log:
        log.seek(start)
        logged = log.read().decode(errors="replace")
    assert "unhandled error" not in logged, logged[-STDERR_TAIL_CHARS:]


@pytest.mark.parametrize(("method", "path"), _operations(NODE_ACCESS))
def test_node_operation_fuzz(node_service: Service, method: str, path: str) -> None:
    """The node's operation answers every generated case without a 5xx, as documented, and echoes nothing."""
    fuzz_and_watch_the_log(node_service, method, path)


@pytest.mark.parametrize(("method", "path"), _operations(coordinator_access.ACCESS))
def test_coordinator_operation_fuzz(coordinator_service: Service, method: str, path: str) -> None:
    """The coordinator's operation answers every generated case without a 5xx, as documented, and echoes nothing."""
    fuzz_and_watch_the_log(coordinator_service, method, path)


def test_the_no_echo_check_fails_on_an_echo_and_not_on_the_documents_own_words() -> None:
    """A 400 that quotes a submitted value fails the check; one that names a field the case also sent does not."""
    raw: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "probe", "version": "1"},
        "paths": {
            "/probe": {
                "get": {
                    "parameters": [{"name": "status", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    operation = schemathesis.openapi.from_dict(raw)["/probe"]["GET"]
    check = no_echo_check(document_words(raw))
    request = httpx.Request("GET", "http://127.0.0.1/probe")

    def answer(text: str, status: int = 400) -> schemathesis.Response:
        response = httpx.Response(status, text=text, request=request)
        response.elapsed = datetime.timedelta(0)  # what a client sets once the response is read
        return schemathesis.Response.from_any(response)

    sent = operation.Case(query={"status": "Zephyrwald"})
    with pytest.raises(AssertionError, match="Zephyrwald"):
        check(None, answer('{"error": {"code": "invalid_request", "hint": "status: Zephyrwald"}}'), sent)
    check(None, answer('{"ok": "Zephyrwald"}', status=200), sent)  # a success may return what it stored
    own_word = operation.Case(query={"status": "status"})
    check(None, answer('{"error": {"code": "invalid_request", "hint": "query.status: enum"}}'), own_word)
