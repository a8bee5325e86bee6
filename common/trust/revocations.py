"""The network admin's revocation list: researchers whose jobs, and nodes whose messages, no node accepts.

Body (``type: medfed.revocations.v2``)::

    {"serial": 3, "issued_at": 1790000000, "researchers": ["mallory"], "keys": ["sha256:..."],
     "nodes": [{"node": "st-mary-s", "key": "sha256:...", "flower_node_id": 8123456789}]}

Each revocation makes a new list with the next serial, holding every earlier entry too (a list is the
whole state, never a delta). The coordinator attaches its newest list to poll answers that carry
messages and to heartbeat answers; a node keeps the newest it has verified and accepts another only when
the network-admin key signed it and its serial is not lower, so a coordinator cannot roll a revocation
back. A researcher is revoked by name and by key id, so neither a new certificate for the same key nor a
new key under the same name brings them back.

A node is revoked by its id, the fingerprint of its Ed25519 key and its Flower node id: the record
locator names peers by id and checks their keys, a secure-aggregation round names its participants by
Flower node id. Lists of the first version (``medfed.revocations.v1``: no ``nodes``) still verify, and
revoke no node; the coordinator signs only the second. The version is in the type tag, inside the
signed body, so a list cannot be read as the other version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from common.crypto import SigningKey, VerifyKey
from common.errors import AccessError, ErrorCode
from common.trust.documents import open_document, sign_document

__all__ = [
    "REVOCATIONS_TYPE",
    "REVOCATIONS_TYPE_V1",
    "Revocations",
    "RevokedNode",
    "sign_revocations",
    "verify_revocations",
]

REVOCATIONS_TYPE = "medfed.revocations.v2"
REVOCATIONS_TYPE_V1 = "medfed.revocations.v1"
MAX_ENTRIES = 100_000
_KEYS_V1 = frozenset({"type", "serial", "issued_at", "researchers", "keys"})
_KEYS = {REVOCATIONS_TYPE_V1: _KEYS_V1, REVOCATIONS_TYPE: _KEYS_V1 | {"nodes"}}
_NODE_KEYS = frozenset({"node", "key", "flower_node_id"})


@dataclass(frozen=True, slots=True)
class RevokedNode:
    """A revoked node as the list names it: its id, its key's fingerprint and its Flower node id."""

    node: str
    key: str
    flower_node_id: int

    def as_json(self) -> dict[str, Any]:
        """The list entry."""
        return {"node": self.node, "key": self.key, "flower_node_id": self.flower_node_id}


@dataclass(frozen=True, slots=True)
class Revocations:
    """A verified revocation list."""

    serial: int
    issued_at: int
    researchers: frozenset[str]
    keys: frozenset[str]
    nodes: frozenset[RevokedNode] = frozenset()

    def revoked(self, *, researcher: str, key_id: str) -> bool:
        """Whether the researcher (by name) or their key is on the list."""
        return researcher in self.researchers or key_id in self.keys

    def node_revoked(
        self, *, node_id: str | None = None, key_id: str | None = None, flower_node_id: int | None = None
    ) -> bool:
        """Whether a node named by any of its id, its key's fingerprint or its Flower node id is on the list."""
        return any(
            node.node == node_id or node.key == key_id or node.flower_node_id == flower_node_id for node in self.nodes
        )


def sign_revocations(
    admin: SigningKey,
    *,
    serial: int,
    issued_at: int,
    researchers: Iterable[str],
    keys: Iterable[str],
    nodes: Iterable[RevokedNode] = (),
) -> dict[str, Any]:
    """The list (the current version), signed by the network-admin key."""
    body = {
        "serial": int(serial),
        "issued_at": int(issued_at),
        "researchers": sorted(set(researchers)),
        "keys": sorted(set(keys)),
        "nodes": [node.as_json() for node in sorted(set(nodes), key=lambda n: (n.node, n.key, n.flower_node_id))],
    }
    return sign_document(admin, REVOCATIONS_TYPE, body)


def _refused(hint: str) -> AccessError:
    return AccessError(ErrorCode.UNAUTHENTICATED, detail="revocation list shape", hints=(f"revocations: {hint}",))


def _names(value: object) -> frozenset[str]:
    if not isinstance(value, list) or len(value) > MAX_ENTRIES or not all(isinstance(v, str) for v in value):
        raise _refused("shape")
    return frozenset(value)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _refused("shape")
    return value


def _nodes(value: object) -> frozenset[RevokedNode]:
    if not isinstance(value, list) or len(value) > MAX_ENTRIES:
        raise _refused("nodes")
    nodes = set()
    for entry in value:
        if not isinstance(entry, Mapping) or set(entry) != _NODE_KEYS:
            raise _refused("nodes")
        node, key = entry["node"], entry["key"]
        if not isinstance(node, str) or not isinstance(key, str):
            raise _refused("nodes")
        nodes.add(RevokedNode(node=node, key=key, flower_node_id=_count(entry["flower_node_id"])))
    return frozenset(nodes)


def _version(document: object) -> str:
    """The type the document claims (checked by the signature, as part of the body); the current one if none."""
    body = document.get("body") if isinstance(document, Mapping) else None
    kind = body.get("type") if isinstance(body, Mapping) else None
    return kind if kind in _KEYS else REVOCATIONS_TYPE


def verify_revocations(document: object, admin: VerifyKey) -> Revocations:
    """The list ``admin`` signed, of either version; AccessError(UNAUTHENTICATED) for anything else."""
    kind = _version(document)
    body = open_document(document, kind, admin, ErrorCode.UNAUTHENTICATED)
    if set(body) != _KEYS[kind]:
        raise _refused("keys")
    return Revocations(
        serial=_count(body.get("serial")),
        issued_at=_count(body.get("issued_at")),
        researchers=_names(body["researchers"]),
        keys=_names(body["keys"]),
        nodes=_nodes(body["nodes"]) if "nodes" in body else frozenset(),
    )
