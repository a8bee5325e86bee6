"""Node key certificates: the network-admin key vouches for a node's signing and sealing keys.

Every node pinned one Ed25519 key at enrolment, the coordinator's (``coordinator_public_key`` in
``identity/coordinator.json``); in this network it is also the **network-admin key**. Before a node
seals anything to another node, or believes a message signed by one, it fetches that node's
certificate from the coordinator and checks it against the pinned key:

    signed = canonical_json({"type": "medfed/node-key-certificate/v1", "node_id", "public_key",
                             "seal_public_key", "issued_at"})
    signature = Ed25519(network-admin key, signed)

A certificate that does not verify, names another node, or holds keys that are not Ed25519/X25519
points is refused with ``KEY_NOT_CERTIFIED`` (403). The coordinator relays ciphertext it cannot read
only as long as it cannot hand out a key of its own making; a certificate is what binds a node's keys
to its id, so a tampered key table at the coordinator is caught by every node.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from common.crypto import SealPublicKey, SigningKey, VerifyKey, b64url_decode, b64url_encode, canonical_json
from common.errors import AccessError, ErrorCode, InputError

__all__ = ["CERTIFICATE_TYPE", "CertifiedNode", "KeyCertificate", "issue_certificate", "verify_certificate"]

CERTIFICATE_TYPE = "medfed/node-key-certificate/v1"


class KeyCertificate(BaseModel):
    """A node's public keys and the network-admin key's signature over them (as the coordinator serves it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node_id: str = Field(min_length=1, max_length=64)
    public_key: str = Field(min_length=1, max_length=64)
    seal_public_key: str = Field(min_length=1, max_length=64)
    issued_at: int = Field(ge=0)
    signature: str = Field(min_length=1, max_length=128)

    def signed_bytes(self) -> bytes:
        """The bytes the signature covers."""
        return _signed_bytes(self.node_id, self.public_key, self.seal_public_key, self.issued_at)


@dataclass(frozen=True, slots=True)
class CertifiedNode:
    """A node whose keys verified: its id, the key its messages are signed with, the key to seal to."""

    node_id: str
    verify_key: VerifyKey
    seal_key: SealPublicKey


def _signed_bytes(node_id: str, public_key: str, seal_public_key: str, issued_at: int) -> bytes:
    return canonical_json(
        {
            "type": CERTIFICATE_TYPE,
            "node_id": node_id,
            "public_key": public_key,
            "seal_public_key": seal_public_key,
            "issued_at": issued_at,
        }
    )


def issue_certificate(
    admin_key: SigningKey, *, node_id: str, public_key: str, seal_public_key: str, issued_at: int
) -> KeyCertificate:
    """Sign a node's keys with the network-admin key."""
    signature = admin_key.sign(_signed_bytes(node_id, public_key, seal_public_key, issued_at))
    return KeyCertificate(
        node_id=node_id,
        public_key=public_key,
        seal_public_key=seal_public_key,
        issued_at=issued_at,
        signature=b64url_encode(signature),
    )


def _refused(detail: str) -> AccessError:
    return AccessError(ErrorCode.KEY_NOT_CERTIFIED, detail=detail)


def verify_certificate(certificate: KeyCertificate, admin_key: VerifyKey, *, node_id: str) -> CertifiedNode:
    """The node's keys, when ``certificate`` is the network admin's for ``node_id``; KEY_NOT_CERTIFIED otherwise."""
    if certificate.node_id != node_id:
        raise _refused("the certificate names another node")
    try:
        signature = b64url_decode(certificate.signature)
        admin_key.verify(certificate.signed_bytes(), signature)
        return CertifiedNode(
            node_id=node_id,
            verify_key=VerifyKey.from_text(certificate.public_key),
            seal_key=SealPublicKey.from_text(certificate.seal_public_key),
        )
    except (AccessError, InputError):
        raise _refused("the node's key certificate does not verify against the network-admin key") from None
