"""The private CA and TLS contexts: certificates, fingerprints and real handshakes on 127.0.0.1."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.crypto import (
    CertificateAuthority,
    certificate_fingerprint,
    client_ssl_context,
    create_ca,
    issue_client_certificate,
    issue_server_certificate,
    server_ssl_context,
)
from common.errors import ConfigError, InputError

_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    """The network's CA."""
    return create_ca("medfed test network CA")


@pytest.fixture(scope="module")
def other_ca() -> CertificateAuthority:
    """A CA that the network does not trust."""
    return create_ca("someone else's CA")


@pytest.fixture(scope="module")
def server_cert(ca: CertificateAuthority) -> tuple[bytes, bytes]:
    """The coordinator's certificate for localhost and 127.0.0.1."""
    return issue_server_certificate(ca, hostnames=["localhost", "coordinator.medfed.test"], ip_addresses=["127.0.0.1"])


@dataclass
class _ServerSide:
    """What the one-connection echo server saw."""

    error: BaseException | None = None
    peer_common_name: str | None = None


@contextmanager
def _serve_once(context: ssl.SSLContext) -> Iterator[tuple[tuple[str, int], _ServerSide]]:
    """Accept one TLS connection on 127.0.0.1 and echo one message in upper case.

    The listening socket exists before the thread starts, so a client can connect at once: no sleeps.
    On leaving, the thread is joined and the listener closed.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(_TIMEOUT_S)
    seen = _ServerSide()

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            connection.settimeout(_TIMEOUT_S)
            with context.wrap_socket(connection, server_side=True) as tls:
                presented = tls.getpeercert(binary_form=True)
                if presented:
                    subject = x509.load_der_x509_certificate(presented).subject
                    seen.peer_common_name = str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
                tls.sendall(tls.recv(64).upper())
        except OSError as exc:  # ssl.SSLError is an OSError
            seen.error = exc

    thread = threading.Thread(target=serve, name="tls-echo-server", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[:2], seen
    finally:
        thread.join(_TIMEOUT_S)
        listener.close()
        assert not thread.is_alive(), "the echo server did not finish"


def _exchange(context: ssl.SSLContext, address: tuple[str, int], server_hostname: str) -> bytes:
    """Connect, say "ping" and return the reply; raises whatever the TLS layer raises."""
    with (
        socket.create_connection(address, timeout=_TIMEOUT_S) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        tls.sendall(b"ping")
        return tls.recv(64)


# --- handshakes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("hostname", ["localhost", "coordinator.medfed.test", "127.0.0.1"])
def test_handshake_succeeds_for_the_right_ca_and_hostname(
    ca: CertificateAuthority, server_cert: tuple[bytes, bytes], hostname: str
) -> None:
    """A client that trusts the CA reaches a server whose certificate names the host (DNS or IP SAN)."""
    with _serve_once(server_ssl_context(*server_cert)) as (address, seen):
        assert _exchange(client_ssl_context(ca.cert_pem), address, hostname) == b"PING"
    assert seen.error is None


def test_handshake_fails_for_a_certificate_from_another_ca(
    other_ca: CertificateAuthority, server_cert: tuple[bytes, bytes]
) -> None:
    """A client that trusts only another CA refuses the server's certificate."""
    with _serve_once(server_ssl_context(*server_cert)) as (address, seen):
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            _exchange(client_ssl_context(other_ca.cert_pem), address, "localhost")
        assert caught.value.verify_code == 20  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    assert seen.error is not None  # the server's handshake ended with the client's alert


def test_handshake_fails_for_a_wrong_hostname(ca: CertificateAuthority, server_cert: tuple[bytes, bytes]) -> None:
    """A valid certificate for other names is refused: the client checks the hostname."""
    with _serve_once(server_ssl_context(*server_cert)) as (address, seen):
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            _exchange(client_ssl_context(ca.cert_pem), address, "evil.medfed.test")
        assert caught.value.verify_code == 62  # X509_V_ERR_HOSTNAME_MISMATCH
    assert seen.error is not None


def test_client_does_not_trust_system_cas(ca: CertificateAuthority) -> None:
    """The client context holds exactly the one CA it was given, not the system store."""
    context = client_ssl_context(ca.cert_pem)
    assert context.cert_store_stats()["x509_ca"] == 1
    assert context.check_hostname
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_mutual_tls_accepts_a_client_certificate_from_the_ca(
    ca: CertificateAuthority, server_cert: tuple[bytes, bytes]
) -> None:
    """With client_ca_pem, a client presenting a certificate from that CA gets through and is named."""
    client_cert = issue_client_certificate(ca, common_name="node-7f3a")
    with _serve_once(server_ssl_context(*server_cert, client_ca_pem=ca.cert_pem)) as (address, seen):
        reply = _exchange(client_ssl_context(ca.cert_pem, client_cert=client_cert), address, "localhost")
    assert reply == b"PING"
    assert seen.error is None
    assert seen.peer_common_name == "node-7f3a"


def _refused_by_mtls_server(client: ssl.SSLContext, address: tuple[str, int]) -> None:
    """The client gets no reply: the handshake fails, or (TLS 1.3) the first read fails or hits EOF."""
    try:
        reply = _exchange(client, address, "localhost")
    except (ssl.SSLError, ConnectionError):
        return
    assert reply == b""


def test_mutual_tls_refuses_a_client_without_a_certificate(
    ca: CertificateAuthority, server_cert: tuple[bytes, bytes]
) -> None:
    """A server with client_ca_pem refuses a client that presents no certificate."""
    with _serve_once(server_ssl_context(*server_cert, client_ca_pem=ca.cert_pem)) as (address, seen):
        _refused_by_mtls_server(client_ssl_context(ca.cert_pem), address)
    assert isinstance(seen.error, ssl.SSLError)
    assert "certificate" in str(seen.error).lower()


def test_mutual_tls_refuses_a_client_certificate_from_another_ca(
    ca: CertificateAuthority, other_ca: CertificateAuthority, server_cert: tuple[bytes, bytes]
) -> None:
    """A client certificate issued by an untrusted CA is refused by the server."""
    foreign = issue_client_certificate(other_ca, common_name="node-7f3a")
    with _serve_once(server_ssl_context(*server_cert, client_ca_pem=ca.cert_pem)) as (address, seen):
        _refused_by_mtls_server(client_ssl_context(ca.cert_pem, client_cert=foreign), address)
    assert isinstance(seen.error, ssl.SSLError)


def test_server_context_has_a_tls_1_2_floor_and_no_client_certificates(server_cert: tuple[bytes, bytes]) -> None:
    """The server context refuses anything older than TLS 1.2 and, without client_ca_pem, asks for no client cert."""
    context = server_ssl_context(*server_cert)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_NONE  # no client certificates unless client_ca_pem is given


# --- certificates ------------------------------------------------------------------------------------


_E = TypeVar("_E", bound=x509.ExtensionType)


def _extension(certificate: x509.Certificate, kind: type[_E]) -> x509.Extension[_E]:
    return certificate.extensions.get_extension_for_class(kind)


def test_ca_certificate_is_a_leaf_only_ca(ca: CertificateAuthority) -> None:
    """The CA is self-signed with CA:TRUE, pathlen 0 and keyCertSign, all critical where RFC 5280 says so."""
    certificate = x509.load_pem_x509_certificate(ca.cert_pem)
    assert certificate.subject == certificate.issuer
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "medfed test network CA"
    constraints = _extension(certificate, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = _extension(certificate, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert not usage.value.digital_signature
    validity = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert validity == timedelta(days=3650, minutes=5)


def test_server_certificate_names_its_hosts_and_is_for_server_auth(
    ca: CertificateAuthority, server_cert: tuple[bytes, bytes]
) -> None:
    """The server certificate carries the DNS and IP SANs, serverAuth only, CA:FALSE, signed by the CA."""
    certificate = x509.load_pem_x509_certificate(server_cert[0])
    ca_certificate = x509.load_pem_x509_certificate(ca.cert_pem)
    certificate.verify_directly_issued_by(ca_certificate)
    san = _extension(certificate, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "coordinator.medfed.test"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert list(_extension(certificate, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not _extension(certificate, x509.BasicConstraints).value.ca
    assert server_cert[1].startswith(b"-----BEGIN PRIVATE KEY-----")


def test_client_certificate_is_for_client_auth(ca: CertificateAuthority) -> None:
    """The client certificate has the given common name and the clientAuth usage only."""
    certificate = x509.load_pem_x509_certificate(issue_client_certificate(ca, common_name="researcher-1")[0])
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "researcher-1"
    assert list(_extension(certificate, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_leaf_never_outlives_its_ca() -> None:
    """A certificate asked for longer than the CA's remaining life ends when the CA ends."""
    short_ca = create_ca("short-lived CA", valid_days=30)
    certificate = x509.load_pem_x509_certificate(issue_server_certificate(short_ca, hostnames=["localhost"])[0])
    ca_certificate = x509.load_pem_x509_certificate(short_ca.cert_pem)
    assert certificate.not_valid_after_utc == ca_certificate.not_valid_after_utc


@pytest.mark.parametrize(
    ("hostnames", "ip_addresses"),
    [([], []), (["bad host"], []), (["-leading.dash"], []), ([], ["999.1.1.1"]), ("localhost", [])],
    ids=["no-names", "space", "leading-dash", "bad-ip", "bare-string"],
)
def test_bad_server_names_are_invalid_request(
    ca: CertificateAuthority, hostnames: list[str], ip_addresses: list[str]
) -> None:
    """No names, malformed hostnames or IPs, or a bare string instead of a list raise InputError."""
    with pytest.raises(InputError):
        issue_server_certificate(ca, hostnames=hostnames, ip_addresses=ip_addresses)


def test_ca_repr_hides_the_key(ca: CertificateAuthority) -> None:
    """repr(CertificateAuthority) shows the certificate but not the private key."""
    assert "PRIVATE" not in repr(ca)


def test_mismatched_ca_key_is_config_error(ca: CertificateAuthority, other_ca: CertificateAuthority) -> None:
    """Issuing with a CA certificate and a key that do not belong together raises ConfigError."""
    with pytest.raises(ConfigError):
        issue_client_certificate(CertificateAuthority(ca.cert_pem, other_ca.key_pem), common_name="x")


def test_server_context_with_a_foreign_key_is_config_error(
    server_cert: tuple[bytes, bytes], ca: CertificateAuthority
) -> None:
    """A certificate with someone else's key does not load: ConfigError, naming no key bytes."""
    _, other_key = issue_server_certificate(ca, hostnames=["localhost"])
    with pytest.raises(ConfigError) as caught:
        server_ssl_context(server_cert[0], other_key)
    assert b"PRIVATE" not in str(caught.value).encode()


def test_client_context_with_a_non_pem_ca_is_config_error() -> None:
    """A trusted-CA argument that is not a PEM certificate raises ConfigError."""
    with pytest.raises(ConfigError):
        client_ssl_context(b"not a certificate")


def test_certificate_fingerprint_is_stable_and_distinct(
    ca: CertificateAuthority, server_cert: tuple[bytes, bytes]
) -> None:
    """The fingerprint is the same for the same certificate (PEM or DER) and differs between certificates."""
    fingerprint = certificate_fingerprint(server_cert[0])
    assert fingerprint.startswith("sha256:")
    assert len(fingerprint) == len("sha256:") + 64
    assert certificate_fingerprint(server_cert[0]) == fingerprint
    assert certificate_fingerprint(ssl.PEM_cert_to_DER_cert(server_cert[0].decode())) == fingerprint
    assert certificate_fingerprint(ca.cert_pem) != fingerprint
    reissued = issue_server_certificate(ca, hostnames=["localhost", "coordinator.medfed.test"])
    assert certificate_fingerprint(reissued[0]) != fingerprint


def test_certificate_fingerprint_pins_the_presented_certificate(
    ca: CertificateAuthority, server_cert: tuple[bytes, bytes]
) -> None:
    """The DER a TLS server presents has the fingerprint of the PEM it was configured with."""
    with (
        _serve_once(server_ssl_context(*server_cert)) as (address, _),
        socket.create_connection(address, timeout=_TIMEOUT_S) as raw,
        client_ssl_context(ca.cert_pem).wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        presented = tls.getpeercert(binary_form=True)
        tls.sendall(b"ping")
        assert tls.recv(64) == b"PING"
    assert presented is not None
    assert certificate_fingerprint(presented) == certificate_fingerprint(server_cert[0])


def test_certificate_fingerprint_of_garbage_is_invalid_request() -> None:
    """Bytes that are not a certificate raise InputError."""
    with pytest.raises(InputError):
        certificate_fingerprint(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(InputError):
        certificate_fingerprint(b"\x30\x00")
