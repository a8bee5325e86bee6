"""The registry of nodes: registering an enrolled node, heartbeats, revocation and look-ups.

A node's id is a slug of its name (``"St Mary's Hospital"`` -> ``st-mary-s-hospital``), readable in
logs and URLs; Flower's Grid addresses nodes by an integer, so each node also gets a random
``flower_node_id``. Enrolment itself (one-time codes) is :mod:`coordinator.store.enrolment`.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from common.errors import AccessError, ConflictError, ErrorCode, InputError, NotFoundError
from common.ids import NodeId
from coordinator.store._json import JsonObject, dump_object, load_object
from coordinator.store.db import Db, insert_ignoring_duplicates, now_micros, reading, writing
from coordinator.store.models import Node

__all__ = [
    "MAX_NAME_LENGTH",
    "NodeRecord",
    "NodeStatus",
    "get_node",
    "get_node_by_flower_id",
    "list_nodes",
    "node_slug",
    "record_heartbeat",
    "register_node",
    "require_enrolled",
    "revoke_node",
]

NODE: sa.Table = Node.__table__  # type: ignore[attr-defined]
# Look-ups on every channel request, built once: reusing a statement skips SQLAlchemy's expression and
# cache-key work, most of the cost of a one-row read.
_NODE_BY_ID = sa.select(NODE).where(NODE.c.id == sa.bindparam("node_id"))
_NODE_BY_FLOWER_ID = sa.select(NODE).where(NODE.c.flower_node_id == sa.bindparam("flower_node_id"))
MAX_NAME_LENGTH = 200
_SLUG_LENGTH = 64
_KEY_BYTES = 32  # Ed25519 and X25519 public keys
# Flower node ids are unsigned 64-bit; 0 is unset and 1 is Flower's own SuperLink. Staying below
# 2**63 keeps every id a positive BIGINT on PostgreSQL without a signed/unsigned conversion.
_FLOWER_ID_LOW = 2
_FLOWER_ID_HIGH = 2**63 - 1


class NodeStatus(StrEnum):
    """Whether a node may use the channel."""

    ENROLLED = "enrolled"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One row of the registry. Times are epoch microseconds."""

    id: NodeId
    flower_node_id: int
    display_name: str
    public_key: str
    seal_public_key: str | None
    status: NodeStatus
    enrolled_at: int
    last_seen_at: int | None
    version: str | None
    capabilities: JsonObject
    clock_skew_ms: int | None

    def is_online(self, *, now: int, offline_after_s: float) -> bool:
        """True for an enrolled node heard from within ``offline_after_s`` seconds of ``now``."""
        if self.status is not NodeStatus.ENROLLED or self.last_seen_at is None:
            return False
        return now - self.last_seen_at <= offline_after_s * 1_000_000


def _record(row: sa.Row[Any]) -> NodeRecord:
    values = row._mapping
    return NodeRecord(
        id=NodeId(values["id"]),
        flower_node_id=int(values["flower_node_id"]),
        display_name=values["display_name"],
        public_key=values["public_key"],
        seal_public_key=values["seal_public_key"],
        status=NodeStatus(values["status"]),
        enrolled_at=int(values["enrolled_at"]),
        last_seen_at=values["last_seen_at"],
        version=values["version"],
        capabilities=load_object(values["capabilities"]) or {},
        clock_skew_ms=values["clock_skew_ms"],
    )


def node_slug(name: str) -> NodeId:
    """The node id for a node name: lower-case ASCII letters and digits joined by single hyphens.

    InputError when the name is empty, too long, or has no letter or digit to make an id from.
    """
    if not name.strip() or len(name) > MAX_NAME_LENGTH or any(unicodedata.category(c) == "Cc" for c in name):
        raise InputError(ErrorCode.INVALID_REQUEST, detail="node name empty, too long or with control characters")
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")[:_SLUG_LENGTH].strip("-")
    if not slug:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="node name has no letter or digit")
    return NodeId(slug)


def _public_key(value: str, what: str) -> str:
    """The key in canonical form (base64url, no padding); InputError unless it decodes to 32 bytes."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InputError(
            ErrorCode.INVALID_REQUEST, detail=f"{what} is not base64url", hints=[f"{what}: format"]
        ) from exc
    if len(raw) != _KEY_BYTES or len(value) > 64:
        raise InputError(ErrorCode.INVALID_REQUEST, detail=f"{what} is not a 32-byte key", hints=[f"{what}: length"])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _short_text(value: str | None, what: str, limit: int = 64) -> str | None:
    if value is not None and (len(value) > limit or any(unicodedata.category(c) == "Cc" for c in value)):
        raise InputError(
            ErrorCode.INVALID_REQUEST, detail=f"{what} too long or not printable", hints=[f"{what}: format"]
        )
    return value


def register_node(
    db: Db,
    *,
    name: str,
    public_key: str,
    seal_public_key: str | None = None,
    version: str | None = None,
    capabilities: Mapping[str, Any] | None = None,
    now: int | None = None,
) -> NodeRecord:
    """Add an enrolled node under the slug of ``name``, with a fresh random Flower node id.

    ConflictError when a node with that id exists (enrolled or revoked: ids are never reused);
    InputError for a bad name or a key that is not 32 bytes of base64url.
    """
    node_id = node_slug(name)
    values: dict[str, Any] = {
        "id": node_id,
        "display_name": name.strip(),
        "public_key": _public_key(public_key, "public_key"),
        "seal_public_key": None if seal_public_key is None else _public_key(seal_public_key, "seal_public_key"),
        "status": str(NodeStatus.ENROLLED),
        "enrolled_at": now_micros() if now is None else now,
        "last_seen_at": None,
        "version": _short_text(version, "version"),
        "capabilities": dump_object(capabilities or {}, what="capabilities", max_bytes=64 * 1024),
        "clock_skew_ms": None,
    }
    with writing(db) as conn:
        if conn.execute(sa.select(NODE.c.id).where(NODE.c.id == node_id)).first() is not None:
            raise ConflictError(detail="a node with this id exists")
        while True:
            flower_id = _FLOWER_ID_LOW + secrets.randbelow(_FLOWER_ID_HIGH - _FLOWER_ID_LOW + 1)
            taken = conn.execute(sa.select(NODE.c.id).where(NODE.c.flower_node_id == flower_id)).first()
            if taken is None:
                break
        values["flower_node_id"] = flower_id
        if not insert_ignoring_duplicates(conn, NODE, values):  # a concurrent registration won the race
            raise ConflictError(detail="a node with this id exists")
    return NodeRecord(
        id=node_id,
        flower_node_id=flower_id,
        display_name=values["display_name"],
        public_key=values["public_key"],
        seal_public_key=values["seal_public_key"],
        status=NodeStatus.ENROLLED,
        enrolled_at=values["enrolled_at"],
        last_seen_at=None,
        version=values["version"],
        capabilities=load_object(values["capabilities"]) or {},
        clock_skew_ms=None,
    )


def get_node(db: Db, *, node_id: str) -> NodeRecord:
    """The node with this id; NotFoundError when there is none."""
    with reading(db) as conn:
        row = conn.execute(_NODE_BY_ID, {"node_id": node_id}).first()
    if row is None:
        raise NotFoundError(detail="no such node")
    return _record(row)


def get_node_by_flower_id(db: Db, *, flower_node_id: int) -> NodeRecord:
    """The node with this Flower node id; NotFoundError when there is none."""
    with reading(db) as conn:
        row = conn.execute(_NODE_BY_FLOWER_ID, {"flower_node_id": flower_node_id}).first()
    if row is None:
        raise NotFoundError(detail="no such node")
    return _record(row)


def require_enrolled(db: Db, *, node_id: str) -> NodeRecord:
    """The node, when it exists and is enrolled; NotFoundError, or AccessError (forbidden) when revoked."""
    node = get_node(db, node_id=node_id)
    if node.status is not NodeStatus.ENROLLED:
        raise AccessError(ErrorCode.FORBIDDEN, detail="the node is revoked")
    return node


def list_nodes(db: Db, *, status: NodeStatus | None = None) -> list[NodeRecord]:
    """Every node (or those with ``status``), ordered by id."""
    query = sa.select(NODE).order_by(NODE.c.id)
    if status is not None:
        query = query.where(NODE.c.status == str(status))
    with reading(db) as conn:
        return [_record(row) for row in conn.execute(query)]


def record_heartbeat(
    db: Db,
    *,
    node_id: str,
    version: str | None = None,
    capabilities: Mapping[str, Any] | None = None,
    clock_skew_ms: int | None = None,
    now: int | None = None,
) -> None:
    """Note that an enrolled node was heard from at ``now``, with what it reported.

    ``version``, ``capabilities`` and ``clock_skew_ms`` replace the stored values when given and
    leave them as they are when None. NotFoundError for an unknown node, AccessError (forbidden)
    for a revoked one.
    """
    values: dict[str, Any] = {"last_seen_at": now_micros() if now is None else now}
    if version is not None:
        values["version"] = _short_text(version, "version")
    if capabilities is not None:
        values["capabilities"] = dump_object(capabilities, what="capabilities", max_bytes=64 * 1024)
    if clock_skew_ms is not None:
        values["clock_skew_ms"] = int(clock_skew_ms)
    with writing(db) as conn:
        result = conn.execute(
            NODE.update().where(NODE.c.id == node_id, NODE.c.status == str(NodeStatus.ENROLLED)).values(**values)
        )
        if not result.rowcount:
            require_enrolled(conn, node_id=node_id)  # no enrolled row matched: raises why


def revoke_node(db: Db, *, node_id: str) -> bool:
    """Revoke a node: it may no longer use the channel. False when it was already revoked.

    NotFoundError for an unknown node. The row stays: its id is never given to another node.
    """
    with writing(db) as conn:
        result = conn.execute(
            NODE.update()
            .where(NODE.c.id == node_id, NODE.c.status == str(NodeStatus.ENROLLED))
            .values(status=str(NodeStatus.REVOKED))
        )
        if not result.rowcount:
            get_node(conn, node_id=node_id)
            return False
    return True
