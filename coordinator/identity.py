"""The coordinator's identity on disk: its Ed25519 signing key, its private CA and its TLS server certificate.

``medfed coordinator init`` creates, in the data directory, whatever of these is absent::

    identity/coordinator_signing.key   Ed25519 signing key, PKCS#8 PEM, mode 0600
    identity/network_admin.key         the network-admin Ed25519 key, PKCS#8 PEM, mode 0600 (see below)
    identity/network_admin.pub         its public key, base64url text (what enrolment hands to nodes)
    tls/ca.pem                         the private CA certificate (public; its fingerprint is in every enrolment code)
    tls/ca.key                         the CA's key, mode 0600
    tls/server.pem                     the TLS server certificate, issued by the CA for the given names
    tls/server.key                     its key, mode 0600

The network-admin key signs researchers' membership certificates and revocation lists
(:mod:`coordinator.researchers`); nodes pin its public key at enrolment and believe nothing about a
researcher that it did not sign. The running coordinator needs only ``network_admin.pub``: a network
that keeps the private key offline moves ``network_admin.key`` away after init and passes it to the
commands that sign (``medfed coordinator researcher add|revoke --admin-key PATH``).

Nodes pin the CA, not the server certificate, so the server certificate can be re-issued (new names,
renewal) by deleting ``server.pem`` and ``server.key`` and running init again, without re-enrolling any
node. Nothing present is ever overwritten: a key file is written with ``save_private_key`` (which refuses
to replace one), and a half-present pair (a certificate without its key, or the reverse) is a
ConfigError rather than something init repairs by guessing.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.crypto import (
    CertificateAuthority,
    SigningKey,
    VerifyKey,
    certificate_fingerprint,
    create_ca,
    issue_server_certificate,
    load_private_key_pem,
    save_private_key,
)
from common.errors import ConfigError, InputError

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "DEFAULT_HOSTNAMES",
    "DEFAULT_IP_ADDRESSES",
    "IDENTITY_DIR",
    "NETWORK_ADMIN_KEY_FILE",
    "NETWORK_ADMIN_PUBLIC_FILE",
    "SERVER_CERT_FILE",
    "SERVER_KEY_FILE",
    "SIGNING_KEY_FILE",
    "TLS_DIR",
    "CoordinatorIdentity",
    "create_identity",
    "identity_exists",
    "load_network_admin_key",
]

IDENTITY_DIR = "identity"
TLS_DIR = "tls"
SIGNING_KEY_FILE = "coordinator_signing.key"
NETWORK_ADMIN_KEY_FILE = "network_admin.key"
NETWORK_ADMIN_PUBLIC_FILE = "network_admin.pub"
CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server.key"
DEFAULT_HOSTNAMES = ("localhost",)
DEFAULT_IP_ADDRESSES = ("127.0.0.1",)
_CA_COMMON_NAME = "medfed coordinator CA"
_MAX_PEM_BYTES = 64 * 1024


@dataclass(frozen=True)
class CoordinatorIdentity:
    """What a running coordinator needs of its identity; the signing key prints as its fingerprint only."""

    signing_key: SigningKey = field(repr=False)
    ca_pem: bytes
    ca_fingerprint: str
    server_cert_path: Path
    server_key_path: Path
    network_admin_public_key: VerifyKey | None = None  # None: a data directory from before the key existed

    @classmethod
    def load(cls, data_dir: Path) -> CoordinatorIdentity:
        """The identity in ``data_dir``; ConfigError naming the missing file when init has not created it."""
        data_dir = Path(data_dir)
        tls = data_dir / TLS_DIR
        for path in (data_dir / IDENTITY_DIR / SIGNING_KEY_FILE, tls / CA_CERT_FILE, tls / SERVER_CERT_FILE):
            if not path.is_file():
                raise ConfigError(detail=f"{path} is missing; run medfed coordinator init")
        # load_private_key_pem refuses a key file that others may read; the server key gets the same check.
        signing_key = SigningKey.from_pem(load_private_key_pem(data_dir / IDENTITY_DIR / SIGNING_KEY_FILE))
        load_private_key_pem(tls / SERVER_KEY_FILE)
        ca_pem = _read_pem(tls / CA_CERT_FILE)
        try:
            fingerprint = certificate_fingerprint(ca_pem)
        except InputError:
            raise ConfigError(detail=f"{tls / CA_CERT_FILE} is not a PEM certificate") from None
        return cls(
            signing_key=signing_key,
            ca_pem=ca_pem,
            ca_fingerprint=fingerprint,
            server_cert_path=tls / SERVER_CERT_FILE,
            server_key_path=tls / SERVER_KEY_FILE,
            network_admin_public_key=_network_admin_public_key(data_dir / IDENTITY_DIR),
        )


def _network_admin_public_key(identity_dir: Path) -> VerifyKey | None:
    path = identity_dir / NETWORK_ADMIN_PUBLIC_FILE
    if not path.is_file():
        return None
    try:
        return VerifyKey.from_text(_read_pem(path).decode("ascii").strip())
    except (InputError, UnicodeDecodeError):
        raise ConfigError(detail=f"{path} is not a base64url Ed25519 public key") from None


def load_network_admin_key(data_dir: Path, path: Path | None = None) -> SigningKey:
    """The network-admin signing key: ``path``, else the data directory's; ConfigError when it is missing, is
    readable by others, or does not match the public key the nodes pinned (``network_admin.pub``)."""
    identity_dir = Path(data_dir) / IDENTITY_DIR
    key_path = path or identity_dir / NETWORK_ADMIN_KEY_FILE
    if not key_path.is_file():
        raise ConfigError(detail=f"{key_path} is missing; give the network-admin key with --admin-key")
    key = SigningKey.from_pem(load_private_key_pem(key_path))
    pinned = _network_admin_public_key(identity_dir)
    if pinned is not None and key.public_key() != pinned:
        raise ConfigError(detail=f"{key_path} is not the network-admin key whose public key nodes pinned")
    return key


def identity_exists(data_dir: Path) -> bool:
    """True when init has created the signing key, the CA certificate and the server certificate."""
    data_dir = Path(data_dir)
    tls = data_dir / TLS_DIR
    paths = (data_dir / IDENTITY_DIR / SIGNING_KEY_FILE, tls / CA_CERT_FILE, tls / SERVER_CERT_FILE)
    return all(path.is_file() for path in paths)


def create_identity(
    data_dir: Path,
    *,
    hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
    ip_addresses: Sequence[str] = DEFAULT_IP_ADDRESSES,
) -> CoordinatorIdentity:
    """Create whatever of the identity is absent in ``data_dir`` (idempotent) and return it.

    The server certificate names ``hostnames`` and ``ip_addresses`` (InputError for a malformed one);
    an existing certificate is kept as it is, whatever names it was issued for. ConfigError when a
    certificate or key is present without its partner, or a directory cannot be created.
    """
    data_dir = Path(data_dir)
    identity_dir = data_dir / IDENTITY_DIR
    tls = data_dir / TLS_DIR
    for directory in (identity_dir, tls):
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(detail=f"cannot create {directory} ({type(exc).__name__})") from exc
    if not (identity_dir / SIGNING_KEY_FILE).exists():
        save_private_key(identity_dir / SIGNING_KEY_FILE, SigningKey.generate().to_pem())
    if not (identity_dir / NETWORK_ADMIN_PUBLIC_FILE).exists():
        # Only on a first init (or one from before this key): a key moved offline is not replaced.
        if (identity_dir / NETWORK_ADMIN_KEY_FILE).exists():
            admin = SigningKey.from_pem(load_private_key_pem(identity_dir / NETWORK_ADMIN_KEY_FILE))
        else:
            admin = SigningKey.generate()
            save_private_key(identity_dir / NETWORK_ADMIN_KEY_FILE, admin.to_pem())
        _write_new(identity_dir / NETWORK_ADMIN_PUBLIC_FILE, (admin.public_key().to_text() + "\n").encode("ascii"))
    ca = _ensure_ca(tls)
    if not _pair_present(tls / SERVER_CERT_FILE, tls / SERVER_KEY_FILE):
        cert_pem, key_pem = issue_server_certificate(ca, hostnames=list(hostnames), ip_addresses=list(ip_addresses))
        save_private_key(tls / SERVER_KEY_FILE, key_pem)  # the key first: a certificate never names a lost key
        _write_new(tls / SERVER_CERT_FILE, cert_pem)
    return CoordinatorIdentity.load(data_dir)


def _ensure_ca(tls: Path) -> CertificateAuthority:
    if _pair_present(tls / CA_CERT_FILE, tls / CA_KEY_FILE):
        return CertificateAuthority(
            cert_pem=_read_pem(tls / CA_CERT_FILE), key_pem=load_private_key_pem(tls / CA_KEY_FILE)
        )
    if (tls / SERVER_CERT_FILE).exists() or (tls / SERVER_KEY_FILE).exists():
        raise ConfigError(detail=f"{tls} holds a server certificate but no CA; remove it or restore the CA")
    ca = create_ca(_CA_COMMON_NAME)
    save_private_key(tls / CA_KEY_FILE, ca.key_pem)
    _write_new(tls / CA_CERT_FILE, ca.cert_pem)
    return ca


def _pair_present(cert: Path, key: Path) -> bool:
    """True when both files exist, False when neither does; ConfigError for one without the other."""
    if cert.exists() != key.exists():
        present, missing = (cert, key) if cert.exists() else (key, cert)
        raise ConfigError(detail=f"{present} exists without {missing}; restore it or remove both")
    return cert.exists()


def _read_pem(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise ConfigError(detail=f"cannot read {path} ({type(exc).__name__})") from exc
    if len(data) > _MAX_PEM_BYTES:
        raise ConfigError(detail=f"{path} is too large for a certificate")
    return data


def _write_new(path: Path, data: bytes) -> None:
    """Write a public file (mode 0644) atomically, never over an existing one."""
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)  # fails if path exists: nothing is overwritten
    except FileExistsError:
        raise ConfigError(detail=f"refusing to overwrite {path}") from None
    except OSError as exc:
        raise ConfigError(detail=f"cannot write {path} ({type(exc).__name__})") from exc
    finally:
        temporary.unlink(missing_ok=True)
