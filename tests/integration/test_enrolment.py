"""Enrolment with a pinned coordinator identity, and signed node requests, over real TLS on loopback.

The coordinator app runs under uvicorn with its TLS certificate in a background thread (on SQLite and
on PostgreSQL); nodes enrol through :func:`node.identity.enrol` and talk through
:class:`node.coordinator_client.CoordinatorClient`, exactly as ``medfed node enrol`` and the channel do.
"Changes nothing" is checked on the coordinator's node, enrolment-code and nonce tables and on the
node's data directory.
"""

from __future__ import annotations

import logging
import select
import socket
import socketserver
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from typer.testing import CliRunner

from common.crypto import (
    SIGNATURE_HEADER,
    SigningKey,
    b64url_decode,
    b64url_encode,
    canonical_json,
    client_ssl_context,
    create_ca,
    issue_server_certificate,
    server_ssl_context,
    sign_request,
)
from common.discovery import CoordinatorAdvertiser
from common.errors import CATALOG, AccessError, ConfigError, ErrorCode, InternalError
from common.logs import JsonFormatter
from common.net import listening_socket
from coordinator.api.node_auth import NONCE_RETENTION_S, NoncePruner
from coordinator.api.routes.enrol import FailureLimiter
from coordinator.app import create_app
from coordinator.config import CoordinatorSettings
from coordinator.identity import CoordinatorIdentity, create_identity
from coordinator.runtime import start_advertising, uvicorn_tls_options
from coordinator.store.db import make_engine, now_micros
from coordinator.store.enrolment import create_enrolment_code
from coordinator.store.migrate import upgrade
from coordinator.store.nodes import get_node, revoke_node
from coordinator.store.nonces import check_and_insert_nonce
from medfed.cli import EXIT_CONFIG, app
from node.coordinator_client import WHOAMI_PATH, CoordinatorClient
from node.identity import (
    COORDINATOR_FILE,
    IDENTITY_DIR,
    SEALING_KEY_FILE,
    SIGNING_KEY_FILE,
    NodeIdentity,
    enrol,
    parse_enrolment_code,
)
from tests.conftest import temporary_postgres_database

START_TIMEOUT_S = 30.0
POLL_PATH = "/channel/v1/poll"
LOOPBACK = ["127.0.0.1"]
VERSION = "0.1.0+test"
TABLES = ("node", "enrolment_code", "request_nonce")
REFUSED = {"error": {"code": "unauthenticated", "message": CATALOG[ErrorCode.UNAUTHENTICATED].message}}


class _Server(uvicorn.Server):
    """A uvicorn server that says when it is listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@contextmanager
def serve_tls(asgi_app: Any, tls_options: dict[str, Any]) -> Iterator[int]:
    """Serve ``asgi_app`` over TLS on 127.0.0.1 in a background thread; yields the port."""
    listener = listening_socket("127.0.0.1", 0)
    port: int = listener.getsockname()[1]
    config = uvicorn.Config(asgi_app, log_config=None, access_log=False, ws="none", lifespan="on", **tls_options)
    server = _Server(config)
    # Server.run picks the event loop as `medfed coordinator start` does (uvloop where installed).
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        if not server.ready.wait(START_TIMEOUT_S) or not server.started:
            pytest.fail("the TLS test server did not start")
        yield port
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
        listener.close()


@dataclass
class Coordinator:
    """A coordinator served over TLS: its URL, identity, app and database."""

    url: str
    port: int
    settings: CoordinatorSettings
    identity: CoordinatorIdentity
    app: FastAPI
    engine: sa.Engine

    def code(self, name: str, *, ttl_s: float = 60, now: int | None = None) -> str:
        """A printed enrolment code for ``name`` that names this coordinator's URL."""
        return create_enrolment_code(
            self.engine,
            node_name=name,
            ttl_s=ttl_s,
            now=now,
            fingerprint=self.identity.ca_fingerprint,
            public_url=self.url,
        ).code

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of the node, enrolment-code and nonce tables."""
        with self.engine.connect() as conn:
            return {
                table: sorted(tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {table}"))) for table in TABLES
            }

    def client(self) -> httpx.Client:
        """A plain httpx client that trusts this coordinator's CA (no signing)."""
        return httpx.Client(base_url=self.url, verify=client_ssl_context(self.identity.ca_pem), timeout=10)


@contextmanager
def running_coordinator(data_dir: Path, database_url: str, **settings: Any) -> Iterator[Coordinator]:
    """A coordinator with its own identity in ``data_dir``, served over TLS on a free loopback port."""
    identity = create_identity(data_dir)
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    coordinator_settings = CoordinatorSettings(data_dir=data_dir, database_url=database_url, **settings)
    application = create_app(coordinator_settings)
    with serve_tls(application, uvicorn_tls_options(identity)) as port:
        yield Coordinator(
            url=f"https://127.0.0.1:{port}",
            port=port,
            settings=coordinator_settings,
            identity=identity,
            app=application,
            engine=application.state.engine,
        )
    application.state.engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def coordinator(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coordinator]:
    """The coordinator under test, on SQLite and on PostgreSQL (shared by the module's tests)."""
    data_dir = tmp_path_factory.mktemp(f"coordinator-{request.param}")
    if request.param == "sqlite":
        with running_coordinator(data_dir, f"sqlite:///{data_dir / 'coordinator.db'}") as made:
            yield made
        return
    with temporary_postgres_database("medfed_enrol") as url, running_coordinator(data_dir, url) as made:
        yield made


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coordinator]:
    """A second coordinator with a CA of its own."""
    data_dir = tmp_path_factory.mktemp("stranger")
    with running_coordinator(data_dir, f"sqlite:///{data_dir / 'coordinator.db'}") as made:
        yield made


@pytest.fixture(scope="module")
def lan_coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coordinator]:
    """A coordinator for the discovery tests (on SQLite only: discovery does not touch the database)."""
    data_dir = tmp_path_factory.mktemp("lan")
    with running_coordinator(data_dir, f"sqlite:///{data_dir / 'coordinator.db'}") as made:
        yield made


@pytest.fixture(scope="module")
def enrolled(coordinator: Coordinator, tmp_path_factory: pytest.TempPathFactory) -> NodeIdentity:
    """A node enrolled with the coordinator under test."""
    return enrol(tmp_path_factory.mktemp("enrolled"), coordinator.code(_name("Enrolled")), version=VERSION)


def _name(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:10]}"


def _nothing_written(data_dir: Path) -> bool:
    return not (data_dir / IDENTITY_DIR).exists() or not any((data_dir / IDENTITY_DIR).iterdir())


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


# --- enrolment -------------------------------------------------------------------------------------------


def test_a_node_enrols_with_its_code_and_its_signed_requests_are_accepted(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    """Enrolment writes the keys and coordinator.json (0600), registers the node's keys, and whoami names it."""
    name = _name("Site Alpha")
    identity = enrol(tmp_path, coordinator.code(name), version=VERSION)

    directory = tmp_path / IDENTITY_DIR
    assert _mode(directory) == 0o700
    for file in (SIGNING_KEY_FILE, SEALING_KEY_FILE, COORDINATOR_FILE):
        assert _mode(directory / file) == 0o600, file
    record = orjson.loads((directory / COORDINATOR_FILE).read_bytes())
    assert set(record) == {
        "coordinator_url",
        "ca_pem",
        "ca_fingerprint",
        "coordinator_public_key",
        "network_admin_public_key",
        "node_id",
        "flower_node_id",
        "enrolled_at",
    }
    assert record["coordinator_url"] == coordinator.url
    assert record["ca_pem"].encode() == coordinator.identity.ca_pem
    assert record["ca_fingerprint"] == coordinator.identity.ca_fingerprint
    assert identity.coordinator_public_key == coordinator.identity.signing_key.public_key()
    # The network-admin key (researchers' certificates, revocation lists) is pinned too, and is not the coordinator's.
    assert identity.network_admin_public_key == coordinator.identity.network_admin_public_key
    assert identity.network_admin_public_key not in (None, identity.coordinator_public_key)

    stored = get_node(coordinator.engine, node_id=identity.node_id)
    assert stored.display_name == name
    assert stored.public_key == identity.signing_key.public_key().to_text()
    assert stored.seal_public_key == identity.sealing_key.public_key().to_text()
    assert (stored.flower_node_id, stored.version) == (identity.flower_node_id, VERSION)

    loaded = NodeIdentity.load(tmp_path)
    assert loaded is not None
    assert (loaded.node_id, loaded.flower_node_id, loaded.ca_pem) == (
        identity.node_id,
        identity.flower_node_id,
        identity.ca_pem,
    )
    assert loaded.signing_key.public_key() == identity.signing_key.public_key()
    with CoordinatorClient(loaded) as client:
        assert client.whoami() == identity.node_id


def test_a_used_code_is_refused_and_changes_nothing(coordinator: Coordinator, tmp_path: Path) -> None:
    """A second use of a code is refused with 401; the coordinator's tables and the node's directory stay unchanged."""
    code = coordinator.code(_name("Site Beta"))
    enrol(tmp_path / "first", code, version=VERSION)
    before = coordinator.snapshot()
    with pytest.raises(AccessError) as refused:
        enrol(tmp_path / "second", code, version=VERSION)
    assert refused.value.code is ErrorCode.UNAUTHENTICATED
    assert coordinator.snapshot() == before
    assert _nothing_written(tmp_path / "second")


def test_an_expired_code_is_refused_and_changes_nothing(coordinator: Coordinator, tmp_path: Path) -> None:
    """A code past its expiry is refused with 401 and nothing is written or registered."""
    code = coordinator.code(_name("Site Gamma"), ttl_s=60, now=now_micros() - 120 * 1_000_000)
    before = coordinator.snapshot()
    with pytest.raises(AccessError):
        enrol(tmp_path, code, version=VERSION)
    assert coordinator.snapshot() == before
    assert _nothing_written(tmp_path)


def test_a_node_name_other_than_the_codes_is_refused_and_the_code_stays_usable(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    """POST /channel/v1/enrol with another name is a bare 401 that leaves the code unused."""
    code = coordinator.code(_name("Site Delta"))
    before = coordinator.snapshot()
    body = {
        "code": code,
        "node_name": "Someone Else",
        "public_key": SigningKey.generate().public_key().to_text(),
        "seal_public_key": b64url_encode(bytes(32)),
        "version": VERSION,
    }
    with coordinator.client() as client:
        response = client.post("/channel/v1/enrol", json=body)
    assert response.status_code == 401
    assert response.json() == REFUSED
    assert coordinator.snapshot() == before
    assert enrol(tmp_path, code, version=VERSION).node_id


def test_a_coordinator_whose_ca_is_not_the_codes_is_refused_before_any_key_is_written(
    coordinator: Coordinator, stranger: Coordinator, tmp_path: Path
) -> None:
    """medfed node enrol --coordinator <another coordinator> exits 3; no file is written and neither side changes."""
    code = coordinator.code(_name("Site Epsilon"))
    before, stranger_before = coordinator.snapshot(), stranger.snapshot()
    runner = CliRunner()
    node_dir = tmp_path / "node"
    assert runner.invoke(app, ["node", "init", "--data-dir", str(node_dir)]).exit_code == 0
    result = runner.invoke(app, ["node", "enrol", code, "--coordinator", stranger.url, "--data-dir", str(node_dir)])
    assert result.exit_code == EXIT_CONFIG, result.output
    assert _nothing_written(node_dir)
    assert (coordinator.snapshot(), stranger.snapshot()) == (before, stranger_before)
    with pytest.raises(ConfigError, match="CA does not match"):
        enrol(node_dir, code, version=VERSION, coordinator_url=stranger.url)
    assert _nothing_written(node_dir)
    assert enrol(node_dir, code, version=VERSION).coordinator_url == coordinator.url  # the code was never spent


def test_failed_attempts_from_one_address_are_refused_for_a_while(coordinator: Coordinator, tmp_path: Path) -> None:
    """After max_failures refused codes from one address, even a valid code from it is refused until the window ends."""
    limiter = coordinator.app.state.enrol_limiter
    coordinator.app.state.enrol_limiter = FailureLimiter(max_failures=2, window_s=600)
    try:
        name = _name("Site Zeta")
        code = coordinator.code(name)
        body = {
            "node_name": name,
            "public_key": SigningKey.generate().public_key().to_text(),
            "seal_public_key": b64url_encode(bytes(32)),
            "version": VERSION,
        }
        with coordinator.client() as client:
            for _ in range(2):
                unknown = client.post("/channel/v1/enrol", json={**body, "code": "mfe_" + "A" * 43})
                assert unknown.status_code == 401
            before = coordinator.snapshot()
            blocked = client.post("/channel/v1/enrol", json={**body, "code": code})
            assert (blocked.status_code, blocked.json()) == (401, REFUSED)
            assert coordinator.snapshot() == before
    finally:
        coordinator.app.state.enrol_limiter = limiter
    assert enrol(tmp_path, code, version=VERSION).node_id


# --- signed requests ---------------------------------------------------------------------------------------


def _send(
    coordinator: Coordinator,
    headers: dict[str, str],
    body: bytes,
    *,
    path: str = WHOAMI_PATH,
) -> httpx.Response:
    with coordinator.client() as client:
        return client.post(path, content=body, headers={**headers, "Content-Type": "application/json"})


def _signed(key: SigningKey, key_id: str, body: bytes, *, path: str = WHOAMI_PATH, **overrides: Any) -> dict[str, str]:
    return sign_request(key, key_id=key_id, method="POST", path_and_query=path, body=body, **overrides)


# The poll checks its signature against the node's key as last read and records the nonce in its own transaction
# (coordinator.api.node_auth.VerifiedNode); every other signed route reads the key and records the nonce first.
SIGNED_ROUTES = pytest.mark.parametrize("path", [WHOAMI_PATH, POLL_PATH])
_BODIES = {WHOAMI_PATH: b'{"n": 1}', POLL_PATH: b'{"wait_s": 0, "n": 1}'}


@SIGNED_ROUTES
def test_a_signed_request_is_accepted_once_and_its_replay_is_refused(
    coordinator: Coordinator, enrolled: NodeIdentity, path: str
) -> None:
    """The same signed request sent twice: 200, then 401; the replay changes nothing."""
    body = _BODIES[path]
    headers = _signed(enrolled.signing_key, enrolled.node_id, body, path=path)
    first = _send(coordinator, headers, body, path=path)
    assert first.status_code == 200, first.text
    if path == WHOAMI_PATH:
        assert first.json() == {"node_id": enrolled.node_id}
    before = coordinator.snapshot()
    replay = _send(coordinator, headers, body, path=path)
    assert (replay.status_code, replay.json()) == (401, REFUSED)
    assert coordinator.snapshot() == before


@SIGNED_ROUTES
@pytest.mark.parametrize("case", ["wrong key", "unenrolled node", "revoked node", "tampered body", "stale timestamp"])
def test_badly_signed_requests_are_refused_and_change_nothing(
    coordinator: Coordinator, enrolled: NodeIdentity, tmp_path: Path, case: str, path: str
) -> None:
    """Another node's key under this node's id, an unknown or revoked node, a changed body, or an old timestamp: 401.

    The revoked node has made a request before it was revoked, so a poll may have its key at hand.
    """
    body = sent = _BODIES[path]
    key, key_id = enrolled.signing_key, str(enrolled.node_id)
    if case == "wrong key":
        key = enrol(tmp_path / "other", coordinator.code(_name("Other")), version=VERSION).signing_key
    elif case == "unenrolled node":
        key_id = "no-such-node"
    elif case == "revoked node":
        revoked = enrol(tmp_path / "revoked", coordinator.code(_name("Revoked")), version=VERSION)
        key, key_id = revoked.signing_key, str(revoked.node_id)
        accepted = _send(coordinator, _signed(key, key_id, body, path=path), body, path=path)
        assert accepted.status_code == 200, accepted.text
        revoke_node(coordinator.engine, node_id=revoked.node_id)
    elif case == "tampered body":
        sent = body.replace(b"1", b"2")
    overrides = {"timestamp": int(now_micros() / 1_000_000) - 301} if case == "stale timestamp" else {}
    headers = _signed(key, key_id, body, path=path, **overrides)
    before = coordinator.snapshot()
    response = _send(coordinator, headers, sent, path=path)
    assert (response.status_code, response.json()) == (401, REFUSED)
    assert coordinator.snapshot() == before


def test_nonces_older_than_twice_the_skew_window_are_pruned(coordinator: Coordinator, enrolled: NodeIdentity) -> None:
    """After a signed request is accepted, nonces seen more than 2 x 300 s ago are gone and recent ones stay."""
    now = now_micros()
    old, recent = b64url_encode(b"o" * 16), b64url_encode(b"r" * 16)
    check_and_insert_nonce(
        coordinator.engine, key_id=enrolled.node_id, nonce=old, now=now - (NONCE_RETENTION_S + 5) * 10**6
    )
    check_and_insert_nonce(coordinator.engine, key_id=enrolled.node_id, nonce=recent, now=now - 5 * 10**6)
    coordinator.app.state.nonce_pruner = NoncePruner()
    with CoordinatorClient(enrolled) as client:
        client.whoami()
    nonces = {row[1] for row in coordinator.snapshot()["request_nonce"]}
    assert old not in nonces
    assert recent in nonces


# --- proxies and failures ---------------------------------------------------------------------------------------


class _TunnelHandler(socketserver.BaseRequestHandler):
    """Answers one HTTP CONNECT and relays bytes both ways until either side closes."""

    server: _ConnectProxy

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target, _ = head.split(b"\r\n", 1)[0].decode("ascii").split(" ")
        if method != "CONNECT":
            self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.server.targets.append(target)
        host, port = target.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            while True:
                readable, _, _ = select.select([self.request, upstream], [], [])
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is self.request else self.request).sendall(data)


class _ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP CONNECT proxy on 127.0.0.1 that records the tunnels it opened."""

    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TunnelHandler)
        self.targets: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def connect_proxy() -> Iterator[_ConnectProxy]:
    """A running CONNECT proxy, shut down and its tunnels joined afterwards."""
    proxy = _ConnectProxy()
    thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(START_TIMEOUT_S)


def test_the_client_goes_through_an_explicit_proxy(coordinator: Coordinator, enrolled: NodeIdentity) -> None:
    """With proxy=..., the signed, pinned request travels through the proxy's CONNECT tunnel."""
    with connect_proxy() as proxy:
        with CoordinatorClient(enrolled, proxy=proxy.url) as client:
            assert client.whoami() == enrolled.node_id
        assert proxy.targets == [f"127.0.0.1:{coordinator.port}"]


def test_the_client_honours_https_proxy_and_no_proxy(
    coordinator: Coordinator, enrolled: NodeIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS_PROXY from the environment is used, and NO_PROXY naming the coordinator's host bypasses it."""
    for variable in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
        monkeypatch.delenv(variable, raising=False)
    with connect_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        with CoordinatorClient(enrolled) as client:
            assert client.whoami() == enrolled.node_id
        assert len(proxy.targets) == 1
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with CoordinatorClient(enrolled) as client:
            assert client.whoami() == enrolled.node_id
        assert len(proxy.targets) == 1


def test_an_unreachable_coordinator_is_unavailable_not_refused(enrolled: NodeIdentity) -> None:
    """A closed port raises COORDINATOR_UNAVAILABLE (retry), which the channel tells apart from a 401."""
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        closed_port = placeholder.getsockname()[1]
    gone = replace(enrolled, coordinator_url=f"https://127.0.0.1:{closed_port}")
    with CoordinatorClient(gone, timeout=5) as client, pytest.raises(InternalError) as caught:
        client.whoami()
    assert caught.value.code is ErrorCode.COORDINATOR_UNAVAILABLE
    assert caught.value.status == 503


# --- discovery and spoofing ---------------------------------------------------------------------------------------


def _without_url(code: str) -> str:
    """The same code with its coordinator URL (``u``) removed."""
    contents = orjson.loads(b64url_decode(code[4:]))
    del contents["u"]
    return "mfe_" + b64url_encode(canonical_json(contents))


@dataclass
class Impostor:
    """A TLS server with another CA's certificate that serves ``ca_answer`` and records enrolment attempts."""

    port: int
    enrol_attempts: list[bytes]


@contextmanager
def impostor(real_ca_pem: bytes, tmp_path: Path, *, append_own_ca: bool = False) -> Iterator[Impostor]:
    """Serve the real CA (and, if asked, the impostor's own CA after it) at /channel/v1/ca over TLS, with a
    certificate from the impostor's own CA."""
    ca = create_ca("impostor CA")
    cert_pem, key_pem = issue_server_certificate(ca, hostnames=["localhost"], ip_addresses=["127.0.0.1"])
    ca_answer = real_ca_pem + ca.cert_pem if append_own_ca else real_ca_pem
    attempts: list[bytes] = []
    fake = FastAPI()

    @fake.get("/channel/v1/ca")
    def ca_route() -> Response:
        return Response(ca_answer, media_type="application/x-pem-file")

    @fake.post("/channel/v1/enrol")
    async def enrol_route(request: Request) -> dict[str, str]:
        attempts.append(await request.body())
        return {"node_id": "stolen", "flower_node_id": "1", "coordinator_public_key": ""}

    def context(_config: object, _default: object) -> Any:
        return server_ssl_context(cert_pem, key_pem)

    (tmp_path / "impostor.pem").write_bytes(cert_pem)
    options = {"ssl_certfile": str(tmp_path / "impostor.pem"), "ssl_context_factory": context}
    with serve_tls(fake, options) as port:
        yield Impostor(port=port, enrol_attempts=attempts)


def test_without_a_url_the_node_finds_the_coordinator_on_the_lan(lan_coordinator: Coordinator, tmp_path: Path) -> None:
    """With no ``u`` in the code and no --coordinator, zeroconf on loopback finds the coordinator claiming the CA."""
    coordinator = lan_coordinator
    settings = coordinator.settings.model_copy(update={"advertise_addresses": LOOPBACK})
    with start_advertising(settings, coordinator.identity, port=coordinator.port):
        identity = enrol(
            tmp_path,
            _without_url(coordinator.code(_name("Site Lan"))),
            version=VERSION,
            discovery_interfaces=LOOPBACK,
            discovery_timeout_s=10,
        )
    assert identity.coordinator_url == coordinator.url
    with CoordinatorClient(identity) as client:
        assert client.whoami() == identity.node_id


def test_a_spoofed_advertiser_fails_the_pin_and_gets_nothing(lan_coordinator: Coordinator, tmp_path: Path) -> None:
    """An advertiser claiming the right fingerprint, serving the real CA but another CA's TLS certificate, is refused.

    The node never sends it the code, nothing is written, and the code still works with the real coordinator.
    """
    coordinator = lan_coordinator
    code = coordinator.code(_name("Site Spoofed"))
    before = coordinator.snapshot()
    with (
        impostor(coordinator.identity.ca_pem, tmp_path) as fake,
        CoordinatorAdvertiser(
            instance="impostor",
            port=fake.port,
            addresses=LOOPBACK,
            fingerprint=coordinator.identity.ca_fingerprint,
            interfaces=LOOPBACK,
        ),
        pytest.raises(ConfigError, match="TLS certificate does not verify against the pinned CA"),
    ):
        enrol(tmp_path / "node", _without_url(code), version=VERSION, discovery_interfaces=LOOPBACK)
    assert fake.enrol_attempts == []
    assert _nothing_written(tmp_path / "node")
    assert coordinator.snapshot() == before
    assert enrol(tmp_path / "node", code, version=VERSION).coordinator_url == coordinator.url


def test_a_ca_answer_with_a_second_certificate_is_refused(coordinator: Coordinator, tmp_path: Path) -> None:
    """The real CA followed by the impostor's own CA fails the pin: TLS would trust both, and the impostor's
    certificate with them."""
    code = coordinator.code(_name("Site Appended"))
    with (
        impostor(coordinator.identity.ca_pem, tmp_path, append_own_ca=True) as fake,
        pytest.raises(ConfigError, match="CA does not match"),
    ):
        enrol(tmp_path / "node", code, version=VERSION, coordinator_url=f"https://127.0.0.1:{fake.port}")
    assert fake.enrol_attempts == []
    assert _nothing_written(tmp_path / "node")


# --- logs ---------------------------------------------------------------------------------------------------------


def test_enrolment_and_signed_requests_leave_no_secret_or_identifier_in_the_logs(
    coordinator: Coordinator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Enrolling, a refused reuse, whoami and a refused signature log neither the code, keys, node id nor name."""
    caplog.set_level(logging.DEBUG)
    name = _name("Site Private")
    code = coordinator.code(name)
    identity = enrol(tmp_path / "node", code, version=VERSION)
    with pytest.raises(AccessError):
        enrol(tmp_path / "again", code, version=VERSION)
    with CoordinatorClient(identity) as client:
        client.whoami()
    forged = _signed(SigningKey.generate(), identity.node_id, b"{}")
    assert _send(coordinator, forged, b"{}").status_code == 401
    assert caplog.records, "the flow logged nothing, so the test proves nothing"
    logged = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    secrets_and_ids = (
        code,
        code[4:],
        parse_enrolment_code(code).secret,
        identity.signing_key.public_key().to_text(),
        identity.sealing_key.public_key().to_text(),
        forged[SIGNATURE_HEADER],
        identity.node_id,
        name,
    )
    for value in secrets_and_ids:
        assert value not in logged
