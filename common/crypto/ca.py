"""A private certificate authority for medfed's TLS: the coordinator's server certificate, tests, deployments.

The coordinator is reached over TLS that trusts *only* the network's own CA (and nodes pin the
coordinator's certificate fingerprint from their enrolment code), never the system's public CAs: a
hospital's TLS-inspecting proxy or a mis-issued public certificate must not be able to stand in for the
coordinator.

Choices and why:

- ECDSA P-256 with SHA-256 for every key: universally supported by TLS stacks (unlike Ed25519
  certificates), small, fast.
- The CA is ``CA:TRUE, pathlen:0`` with only ``keyCertSign``/``cRLSign``: it signs leaf certificates
  and nothing else, and cannot create sub-CAs. Leaves are ``CA:FALSE`` with ``digitalSignature`` and one
  extended key usage (``serverAuth`` or ``clientAuth``), subject and authority key identifiers, so
  they pass OpenSSL's strict RFC 5280 checks (``VERIFY_X509_STRICT``, which both contexts enable).
- Validity starts five minutes in the past (clock skew between machines) and a leaf never outlives its
  CA. Serial numbers are 159 random bits.
- TLS 1.2 is the floor; TLS 1.2 suites are limited to ECDHE with AES-GCM or ChaCha20-Poly1305 (forward
  secrecy, AEAD only); TLS 1.3 suites are OpenSSL's, all of which qualify.

``ssl`` loads a certificate chain and its key only from files, so :func:`server_ssl_context` and
:func:`client_ssl_context` write them to a fresh private temporary directory (mode 0700, files 0600),
load them and delete them at once. Trusted CAs are passed in memory (``cadata``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

# common/crypto is the one home of cryptography.hazmat; ruff's TID251 ban applies everywhere else.
from cryptography.hazmat.primitives import hashes, serialization  # noqa: TID251
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: TID251
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.errors import ConfigError, ErrorCode, InputError

__all__ = [
    "CertificateAuthority",
    "certificate_fingerprint",
    "client_ssl_context",
    "create_ca",
    "issue_client_certificate",
    "issue_server_certificate",
    "server_ssl_context",
]

_BACKDATE = timedelta(minutes=5)
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
_DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"(?:\*\.)?{_DNS_LABEL}(?:\.{_DNS_LABEL})*", re.IGNORECASE)
_MAX_COMMON_NAME = 64  # RFC 5280 upper bound for commonName


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate and its private key, both PEM. The key is left out of ``repr``."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)


def _now() -> datetime:
    return datetime.now(UTC)


def _check_common_name(common_name: str) -> None:
    if not isinstance(common_name, str) or not 1 <= len(common_name) <= _MAX_COMMON_NAME:
        raise InputError(ErrorCode.INVALID_REQUEST, detail=f"a common name is 1 to {_MAX_COMMON_NAME} characters")


def _check_valid_days(valid_days: int) -> None:
    if not isinstance(valid_days, int) or valid_days < 1:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="valid_days must be a positive number of days")


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cn(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def create_ca(common_name: str, *, valid_days: int = 3650) -> CertificateAuthority:
    """A new self-signed CA (ECDSA P-256, ``CA:TRUE pathlen:0``, ``keyCertSign``) valid for ``valid_days``."""
    _check_common_name(common_name)
    _check_valid_days(valid_days)
    key = _new_key()
    now = _now()
    name = _cn(common_name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(
        cert_pem=certificate.public_bytes(serialization.Encoding.PEM),
        key_pem=_key_pem(key),
    )


def _load_ca(ca: CertificateAuthority) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA's certificate and key, checked to belong together; ConfigError (no key bytes) otherwise."""
    try:
        certificate = x509.load_pem_x509_certificate(ca.cert_pem)
        key = serialization.load_pem_private_key(ca.key_pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(detail="the CA certificate or key is not unencrypted PEM") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != certificate.public_key():
        raise ConfigError(detail="the CA key is not an ECDSA key that matches the CA certificate")
    return certificate, key


def _issue(
    ca: CertificateAuthority,
    *,
    common_name: str,
    usage: x509.ObjectIdentifier,
    valid_days: int,
    san: x509.SubjectAlternativeName | None = None,
) -> tuple[bytes, bytes]:
    _check_common_name(common_name)
    _check_valid_days(valid_days)
    ca_certificate, ca_key = _load_ca(ca)
    key = _new_key()
    now = _now()
    not_after = min(now + timedelta(days=valid_days), ca_certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_cn(common_name))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_server_certificate(
    ca: CertificateAuthority,
    *,
    hostnames: Sequence[str],
    ip_addresses: Sequence[str] = (),
    valid_days: int = 825,
) -> tuple[bytes, bytes]:
    """A new server key and certificate signed by ``ca``: ``(cert_pem, key_pem)``.

    The certificate names every hostname (DNS, ``*.`` wildcards allowed) and IP address in its subject
    alternative names, is for ``serverAuth`` only, and its common name is the first of them. At least
    one name is required; a malformed hostname or IP address is an InputError.
    """
    if isinstance(hostnames, str) or isinstance(ip_addresses, str):
        raise InputError(ErrorCode.INVALID_REQUEST, detail="hostnames and ip_addresses are sequences of strings")
    names: list[x509.GeneralName] = []
    for hostname in hostnames:
        if not isinstance(hostname, str) or len(hostname) > 253 or _HOSTNAME.fullmatch(hostname) is None:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="a hostname is not a valid DNS name")
        names.append(x509.DNSName(hostname.lower()))
    for address in ip_addresses:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="an IP address is not valid") from None
    if not names:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="a server certificate needs a hostname or IP address")
    # The common name is informational (clients match the SANs); a hostname longer than its limit is cut.
    common_name = hostnames[0].lower() if hostnames else str(ipaddress.ip_address(ip_addresses[0]))
    return _issue(
        ca,
        common_name=common_name[:_MAX_COMMON_NAME],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        valid_days=valid_days,
        san=x509.SubjectAlternativeName(names),
    )


def issue_client_certificate(
    ca: CertificateAuthority, *, common_name: str, valid_days: int = 825
) -> tuple[bytes, bytes]:
    """A new client key and certificate signed by ``ca``, for ``clientAuth`` (mutual TLS): ``(cert_pem, key_pem)``."""
    return _issue(ca, common_name=common_name, usage=ExtendedKeyUsageOID.CLIENT_AUTH, valid_days=valid_days)


def certificate_fingerprint(cert_pem: bytes) -> str:
    """``"sha256:"`` + hex SHA-256 of the certificate's DER encoding, as pinned at enrolment.

    DER is accepted too, so the certificate a TLS peer presented (``getpeercert(binary_form=True)``)
    can be compared with a pinned fingerprint directly. Anything else is an InputError.
    """
    data = bytes(cert_pem)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            certificate = x509.load_pem_x509_certificate(data)
        else:
            certificate = x509.load_der_x509_certificate(data)
    except ValueError:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="not an X.509 certificate in PEM or DER") from None
    return "sha256:" + certificate.fingerprint(hashes.SHA256()).hex()


def _base_context(*, server: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(_TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def _trust(context: ssl.SSLContext, ca_pem: bytes) -> None:
    try:
        context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    except (UnicodeDecodeError, ssl.SSLError, ValueError):
        raise ConfigError(detail="the trusted CA is not a PEM certificate") from None


def _load_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Load a certificate (chain) and key through 0600 files in a private temporary directory."""
    with tempfile.TemporaryDirectory(prefix="medfed-tls-") as directory:  # created with mode 0700
        paths = []
        for name, data in (("cert.pem", cert_pem), ("key.pem", key_pem)):
            path = Path(directory) / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            paths.append(path)
        try:
            context.load_cert_chain(certfile=paths[0], keyfile=paths[1])
        except ssl.SSLError:
            raise ConfigError(detail="the TLS certificate and key do not load or do not belong together") from None


def server_ssl_context(cert_pem: bytes, key_pem: bytes, *, client_ca_pem: bytes | None = None) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or later) presenting ``cert_pem``.

    With ``client_ca_pem``, every client must present a certificate that chains to that CA (mutual TLS).
    A certificate or key that does not load is a ConfigError.
    """
    context = _base_context(server=True)
    _load_chain(context, cert_pem, key_pem)
    if client_ca_pem is not None:
        _trust(context, client_ca_pem)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_ssl_context(ca_pem: bytes, *, client_cert: tuple[bytes, bytes] | None = None) -> ssl.SSLContext:
    """A TLS client context (TLS 1.2 or later) that trusts only ``ca_pem`` and checks the server's hostname.

    The system's CA store is not loaded. ``client_cert`` is ``(cert_pem, key_pem)`` for mutual TLS.
    """
    context = _base_context(server=False)  # CERT_REQUIRED and check_hostname by default
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    _trust(context, ca_pem)
    if client_cert is not None:
        _load_chain(context, *client_cert)
    return context
