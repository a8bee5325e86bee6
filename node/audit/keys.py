"""The node's audit key: the Ed25519 key that signs every audit entry, and the subject-pseudonym key.

Why a key of its own and not the identity key of enrolment (``identity/node_signing.key``): the audit
log starts at ``medfed node init``, before a node is enrolled (a hospital can serve FHIR without ever
joining a network), and it must stay verifiable across a re-enrolment that replaces the identity. The
identity key still vouches for the chain: every receipt it signs names the audit key
(:mod:`common.audit_receipt`), and enrolment is itself an audit entry.

``audit_signing.key`` (PKCS#8 PEM, mode 0600) sits in the data directory next to ``disclosure.key``;
back it up with the database. The public half is in the chain's first entry and in every export and
receipt. Subject pseudonyms use an HMAC key derived (HKDF, its own label) from the node's disclosure
secret, so there is one secret less to keep, and the same subject gets the same pseudonym for as long
as the node keeps that secret.
"""

from __future__ import annotations

from pathlib import Path

from common.crypto import SigningKey, VerifyKey, derive_key, load_private_key_pem, save_private_key
from common.errors import ConfigError
from node.privacy.secret import ensure_disclosure_secret, load_disclosure_secret

__all__ = ["AUDIT_KEY_FILE", "audit_public_key", "ensure_audit_key", "subject_key"]

AUDIT_KEY_FILE = "audit_signing.key"
_SUBJECT_INFO = b"medfed audit subject pseudonym v1"


def ensure_audit_key(data_dir: Path) -> SigningKey:
    """The node's audit key, created (mode 0600) on first use; ConfigError for a damaged or open file."""
    directory = Path(data_dir)
    path = directory / AUDIT_KEY_FILE
    if not path.exists():
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(detail=f"cannot create the data directory ({type(exc).__name__})") from exc
        try:
            save_private_key(path, SigningKey.generate().to_pem())
        except ConfigError:
            if not path.exists():  # not a race with another process creating it: a real failure
                raise
    return SigningKey.from_pem(load_private_key_pem(path))


def audit_public_key(data_dir: Path) -> VerifyKey | None:
    """The public half of the audit key in ``data_dir``; None when the node has none yet."""
    path = Path(data_dir) / AUDIT_KEY_FILE
    if not path.exists():
        return None
    return SigningKey.from_pem(load_private_key_pem(path)).public_key()


def subject_key(data_dir: Path) -> bytes:
    """The HMAC key of subject pseudonyms (derived from the disclosure secret, created if absent)."""
    ensure_disclosure_secret(data_dir)
    return derive_key(load_disclosure_secret(data_dir), info=_SUBJECT_INFO)
