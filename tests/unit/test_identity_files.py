"""Identities on disk: the coordinator's keys, CA and certificate; the node's keys and pinned coordinator."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from fastapi.testclient import TestClient

from common.crypto import (
    SealingKey,
    SigningKey,
    b64url_encode,
    canonical_json,
    certificate_fingerprint,
    create_ca,
    save_private_key,
)
from common.errors import ConfigError
from coordinator.app import create_app
from coordinator.config import CoordinatorSettings
from coordinator.identity import CoordinatorIdentity, create_identity
from coordinator.store.db import make_engine
from coordinator.store.migrate import upgrade
from node.identity import COORDINATOR_FILE, IDENTITY_DIR, SEALING_KEY_FILE, SIGNING_KEY_FILE, NodeIdentity, enrol


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_coordinator_init_creates_keys_ca_and_certificate_once(tmp_path: Path) -> None:
    """create_identity writes private files 0600 in 0700 folders, names the hosts, and a second run changes nothing."""
    identity = create_identity(tmp_path, hostnames=["coord.example", "localhost"], ip_addresses=["127.0.0.1", "::1"])
    for key in ("identity/coordinator_signing.key", "tls/ca.key", "tls/server.key"):
        assert _mode(tmp_path / key) == 0o600, key
    assert _mode(tmp_path / "identity") == _mode(tmp_path / "tls") == 0o700
    assert identity.ca_pem == (tmp_path / "tls" / "ca.pem").read_bytes()
    assert identity.ca_fingerprint == certificate_fingerprint(identity.ca_pem)
    assert (identity.server_cert_path, identity.server_key_path) == (
        tmp_path / "tls" / "server.pem",
        tmp_path / "tls" / "server.key",
    )
    names = x509.load_pem_x509_certificate(identity.server_cert_path.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert set(names.value.get_values_for_type(x509.DNSName)) == {"coord.example", "localhost"}
    assert set(names.value.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }

    files = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    again = create_identity(tmp_path, hostnames=["other.example"])
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == files
    assert again.ca_fingerprint == identity.ca_fingerprint
    assert again.signing_key.public_key() == identity.signing_key.public_key()


def test_a_missing_or_half_present_coordinator_identity_is_a_config_error(tmp_path: Path) -> None:
    """Loading before init names init; a certificate without its key (or a key others may read) is refused."""
    with pytest.raises(ConfigError, match="run medfed coordinator init"):
        CoordinatorIdentity.load(tmp_path)
    create_identity(tmp_path)
    (tmp_path / "tls" / "server.key").unlink()
    with pytest.raises(ConfigError, match=r"server\.pem exists without"):
        create_identity(tmp_path)
    os.chmod(tmp_path / "identity" / "coordinator_signing.key", 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        CoordinatorIdentity.load(tmp_path)


@contextmanager
def _app_client(tmp_path: Path, *, https: bool, with_identity: bool = True) -> Iterator[TestClient]:
    if with_identity:
        create_identity(tmp_path)
    url = f"sqlite:///{tmp_path / 'coordinator.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    app = create_app(CoordinatorSettings(data_dir=tmp_path, database_url=url))
    with TestClient(app, base_url="https://testserver" if https else "http://testserver") as client:
        yield client
    app.state.engine.dispose()


def test_the_channel_answers_over_tls_only(tmp_path: Path) -> None:
    """Over plain HTTP the channel routes answer 403; over HTTPS /channel/v1/ca is the CA's PEM and nothing else."""
    with _app_client(tmp_path, https=False) as client:
        for method, path in (("GET", "/channel/v1/ca"), ("POST", "/channel/v1/enrol"), ("POST", "/channel/v1/whoami")):
            response = client.request(method, path, content=b"{}")
            assert response.status_code == 403, path
            assert response.json()["error"]["code"] == "forbidden"
        assert client.get("/healthz").status_code == 200
    with _app_client(tmp_path, https=True) as client:
        response = client.get("/channel/v1/ca")
    assert response.status_code == 200
    assert response.content == (tmp_path / "tls" / "ca.pem").read_bytes()
    assert response.headers["content-type"] == "application/x-pem-file"


def test_without_an_identity_the_enrolment_routes_say_misconfigured(tmp_path: Path) -> None:
    """An app over a data directory that init never gave an identity answers 500 config_invalid on /channel/v1/ca."""
    with _app_client(tmp_path, https=True, with_identity=False) as client:
        response = client.get("/channel/v1/ca")
    assert (response.status_code, response.json()["error"]["code"]) == (500, "config_invalid")


def _write_node_identity(data_dir: Path, **changes: object) -> dict[str, object]:
    directory = data_dir / IDENTITY_DIR
    directory.mkdir(mode=0o700, parents=True)
    save_private_key(directory / SIGNING_KEY_FILE, SigningKey.generate().to_pem())
    save_private_key(directory / SEALING_KEY_FILE, SealingKey.generate().to_pem())
    ca_pem = create_ca("test CA").cert_pem
    record: dict[str, object] = {
        "coordinator_url": "https://127.0.0.1:8443",
        "ca_pem": ca_pem.decode(),
        "ca_fingerprint": certificate_fingerprint(ca_pem),
        "coordinator_public_key": SigningKey.generate().public_key().to_text(),
        "node_id": "site-a",
        "flower_node_id": 12345,
        "enrolled_at": "2025-01-02T03:04:05+00:00",
        **changes,
    }
    path = directory / COORDINATOR_FILE
    path.write_bytes(orjson.dumps(record))
    path.chmod(0o600)
    return record


def test_a_node_identity_loads_only_when_complete_and_consistent(tmp_path: Path) -> None:
    """Before enrolment load is None; a written identity loads; a CA that is not its fingerprint's is refused."""
    assert NodeIdentity.load(tmp_path) is None
    record = _write_node_identity(tmp_path / "good")
    identity = NodeIdentity.load(tmp_path / "good")
    assert identity is not None
    assert (identity.node_id, identity.flower_node_id, identity.coordinator_url) == (
        "site-a",
        12345,
        record["coordinator_url"],
    )
    assert "PRIVATE" not in repr(identity)

    _write_node_identity(tmp_path / "mismatch", ca_fingerprint="sha256:" + "0" * 64)
    with pytest.raises(ConfigError, match="does not match"):
        NodeIdentity.load(tmp_path / "mismatch")
    _write_node_identity(tmp_path / "damaged", flower_node_id="12345")
    with pytest.raises(ConfigError, match="damaged"):
        NodeIdentity.load(tmp_path / "damaged")
    (tmp_path / "damaged" / IDENTITY_DIR / COORDINATOR_FILE).chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        NodeIdentity.load(tmp_path / "damaged")


def test_an_enrolled_node_does_not_enrol_again(tmp_path: Path) -> None:
    """enrol refuses before contacting anyone when an identity is present, and leaves it as it was."""
    _write_node_identity(tmp_path)
    before = {path: path.read_bytes() for path in (tmp_path / IDENTITY_DIR).iterdir()}
    code = "mfe_" + b64url_encode(canonical_json({"v": 1, "s": "x", "f": "sha256:" + "ab" * 32, "n": "Site A"}))
    with pytest.raises(ConfigError, match="enrolled already"):
        enrol(tmp_path, code, version="0", coordinator_url="https://127.0.0.1:1")
    assert {path: path.read_bytes() for path in (tmp_path / IDENTITY_DIR).iterdir()} == before
    with pytest.raises(ConfigError, match="https"):
        enrol(tmp_path / "fresh", code, version="0", coordinator_url="http://127.0.0.1:1")
    assert not (tmp_path / "fresh").exists()
