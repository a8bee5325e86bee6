"""The node's API over HTTPS (`medfed node start --tls-cert/--tls-key`), on loopback, with the private-CA helper."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from common.crypto import client_ssl_context, create_ca, issue_server_certificate
from common.errors import ConfigError
from medfed.cli import app as cli
from node.app import create_app
from node.config import NodeSettings
from node.runtime import init_node, uvicorn_tls_options
from node.store.tokens import Role, create_token
from tests.integration.test_enrolment import serve_tls


def _certificate(tmp_path: Path, name: str = "node") -> tuple[Path, Path, bytes]:
    ca = create_ca(f"{name} test CA")
    cert_pem, key_pem = issue_server_certificate(ca, hostnames=["localhost"], ip_addresses=["127.0.0.1"])
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    key.chmod(0o600)
    return cert, key, ca.cert_pem


def test_the_node_serves_its_api_over_tls_with_a_configured_certificate(tmp_path: Path) -> None:
    """With tls_cert/tls_key the API answers HTTPS verified against the CA; plain HTTP and other CAs fail."""
    cert, key, ca_pem = _certificate(tmp_path)
    settings = NodeSettings(data_dir=tmp_path / "data", tls_cert=cert, tls_key=key)
    init_node(settings)
    app = create_app(settings)
    _, token = create_token(app.state.engine, Role.CLINICIAN)
    with serve_tls(app, uvicorn_tls_options(settings)) as port:
        url = f"https://127.0.0.1:{port}"
        with httpx.Client(verify=client_ssl_context(ca_pem), timeout=10) as client:
            assert client.get(url + "/healthz").status_code == 200
            search = client.get(url + "/fhir/Patient", headers={"Authorization": f"Bearer {token}"})
            assert search.status_code == 200
            assert search.json()["resourceType"] == "Bundle"
        _, _, other_ca = _certificate(tmp_path, "other")
        with (
            httpx.Client(verify=client_ssl_context(other_ca), timeout=10) as stranger,
            pytest.raises(httpx.ConnectError) as refused,
        ):
            stranger.get(url + "/healthz")
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
        with httpx.Client(timeout=10) as plain, pytest.raises(httpx.TransportError):
            plain.get(f"http://127.0.0.1:{port}/healthz")
    app.state.engine.dispose()


def test_tls_settings_go_together(tmp_path: Path) -> None:
    """A certificate without its key (or the reverse) is a settings error, not a plain-HTTP node."""
    cert, key, _ = _certificate(tmp_path)
    with pytest.raises(ValidationError, match="tls_cert and tls_key go together"):
        NodeSettings(data_dir=tmp_path, tls_cert=cert)
    with pytest.raises(ValidationError, match="tls_cert and tls_key go together"):
        NodeSettings(data_dir=tmp_path, tls_key=key)
    assert uvicorn_tls_options(NodeSettings(data_dir=tmp_path)) == {}


def test_a_key_that_does_not_match_or_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """The files are read and checked before serving: another key, or no file, is a ConfigError."""
    cert, _, _ = _certificate(tmp_path)
    _, other_key, _ = _certificate(tmp_path, "other")
    with pytest.raises(ConfigError):
        uvicorn_tls_options(NodeSettings(data_dir=tmp_path, tls_cert=cert, tls_key=other_key))
    with pytest.raises(ConfigError):
        uvicorn_tls_options(NodeSettings(data_dir=tmp_path, tls_cert=tmp_path / "missing.crt", tls_key=other_key))


def test_node_start_takes_the_tls_options(tmp_path: Path) -> None:
    """`medfed node start` has --tls-cert and --tls-key; one without the other exits 3 (configuration)."""
    result = CliRunner().invoke(cli, ["node", "start", "--help"])
    assert "--tls-cert" in result.stdout
    assert "--tls-key" in result.stdout
    cert, _, _ = _certificate(tmp_path)
    alone = CliRunner().invoke(cli, ["node", "start", "--data-dir", str(tmp_path), "--tls-cert", str(cert)])
    assert alone.exit_code == 3
