"""Node key certificates: the coordinator's identity key, acting as the network-admin key, signs each
node's Ed25519 and X25519 public keys.

A certificate is issued once per node, from the keys it registered at enrolment, the first time
anyone asks for it (the node itself at start-up, or a peer about to seal to it), and then served as
stored: nodes verify it against the key they pinned at enrolment
(:func:`common.locator.certificates.verify_certificate`), so a key swapped in the coordinator's
database afterwards is refused by every node instead of being signed anew.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from common.crypto import SigningKey
from common.errors import ErrorCode, NotFoundError
from common.locator.certificates import KeyCertificate, issue_certificate
from coordinator.store import relay
from coordinator.store.db import now_micros
from coordinator.store.nodes import NodeStatus, get_node

__all__ = ["certificate_for"]


def certificate_for(engine: Engine, admin_key: SigningKey, *, node_id: str) -> KeyCertificate:
    """The node's certificate (issued now if it has none); NotFoundError for an unknown, revoked or keyless node."""
    node = get_node(engine, node_id=node_id)
    if node.status is not NodeStatus.ENROLLED or node.seal_public_key is None:
        raise NotFoundError(ErrorCode.NOT_FOUND, detail="no certified keys for this node")
    stored = relay.get_certificate(engine, node_id=node_id)
    if stored is None:
        issued = issue_certificate(
            admin_key,
            node_id=node.id,
            public_key=node.public_key,
            seal_public_key=node.seal_public_key,
            issued_at=now_micros(),
        )
        stored = relay.put_certificate(
            engine,
            relay.StoredCertificate(
                node_id=issued.node_id,
                public_key=issued.public_key,
                seal_public_key=issued.seal_public_key,
                issued_at=issued.issued_at,
                signature=issued.signature,
            ),
        )
    return KeyCertificate(
        node_id=stored.node_id,
        public_key=stored.public_key,
        seal_public_key=stored.seal_public_key,
        issued_at=stored.issued_at,
        signature=stored.signature,
    )
