"""The record locator's relay mailbox and the nodes' key certificates.

**Relay.** Node A cannot reach node B (nodes only dial out), so a locator request and its answer
travel through the coordinator: A posts a sealed payload for B, B's long-poll takes it, B
acknowledges it and the row is **deleted** — the coordinator keeps no copy after delivery. Payloads
are opaque bytes here (sealed to the receiver, :mod:`common.locator.envelopes`). A message not
acknowledged within its TTL is deleted unread. Requests and replies are kept apart (``kind``), and a
reply is taken only by the waiter that names its request (``correlation``), so a node's responder
and a clinician's waiting lookup never take each other's messages. Separate from the job channel's
mailbox on purpose: different lifetimes (seconds, deleted on delivery) and no Flower payloads.

**Key certificates.** The network-admin key's signature over each node's keys, issued once from the
keys the node registered at enrolment and kept (:mod:`coordinator.index.certificates`).
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa

from common.errors import InternalError
from coordinator.store.db import Db, insert_ignoring_duplicates, now_micros, reading, writing
from coordinator.store.models import NodeKeyCertificate, RelayMessage

__all__ = [
    "RelayedMessage",
    "StoredCertificate",
    "ack_relayed",
    "get_certificate",
    "prune_relayed",
    "put_certificate",
    "relay_message",
    "take_relayed",
]

RELAY: sa.Table = RelayMessage.__table__  # type: ignore[attr-defined]
CERTIFICATE: sa.Table = NodeKeyCertificate.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class RelayedMessage:
    """One relayed message as its receiver gets it."""

    id: str
    from_node: str
    kind: str
    correlation: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class StoredCertificate:
    """A node's certified keys and the signature, as stored."""

    node_id: str
    public_key: str
    seal_public_key: str
    issued_at: int
    signature: str


def relay_message(
    db: Db, *, from_node: str, to_node: str, kind: str, correlation: str, payload: bytes, ttl_s: float
) -> str:
    """Queue ``payload`` for ``to_node``; its id."""
    now = now_micros()
    message_id = secrets.token_urlsafe(24)
    with writing(db) as conn:
        conn.execute(
            RELAY.insert().values(
                id=message_id,
                from_node=from_node,
                to_node=to_node,
                kind=kind,
                correlation=correlation,
                payload=payload,
                created_at=now,
                expires_at=now + int(ttl_s * 1_000_000),
                delivered_at=None,
            )
        )
    return message_id


def take_relayed(
    db: Db, *, to_node: str, kind: str, correlation: str | None, redeliver_after_s: float, limit: int = 20
) -> list[RelayedMessage]:
    """The node's unexpired messages of ``kind`` (and ``correlation``) not delivered in the last ``redeliver_after_s``.

    Marks them delivered; they stay until acknowledged (:func:`ack_relayed`) or expired.
    """
    now = now_micros()
    c = RELAY.c
    query = (
        sa.select(c.id, c.from_node, c.kind, c.correlation, c.payload)
        .where(
            c.to_node == to_node,
            c.kind == kind,
            c.expires_at > now,
            sa.or_(c.delivered_at.is_(None), c.delivered_at < now - int(redeliver_after_s * 1_000_000)),
        )
        .order_by(c.created_at)
        .limit(limit)
    )
    if correlation is not None:
        query = query.where(c.correlation == correlation)
    with writing(db) as conn:
        rows = conn.execute(query).all()
        if rows:
            conn.execute(RELAY.update().where(c.id.in_([row.id for row in rows])).values(delivered_at=now))
    return [RelayedMessage(row.id, row.from_node, row.kind, row.correlation, bytes(row.payload)) for row in rows]


def ack_relayed(db: Db, *, to_node: str, message_ids: Collection[str]) -> int:
    """Delete the node's acknowledged messages; how many went."""
    if not message_ids:
        return 0
    with writing(db) as conn:
        result = conn.execute(RELAY.delete().where(RELAY.c.to_node == to_node, RELAY.c.id.in_(list(message_ids))))
    return int(result.rowcount)


def prune_relayed(db: Db, *, now: int | None = None) -> int:
    """Delete expired messages, delivered or not; how many went."""
    cutoff = now_micros() if now is None else now
    with writing(db) as conn:
        result = conn.execute(RELAY.delete().where(RELAY.c.expires_at <= cutoff))
    return int(result.rowcount)


def get_certificate(db: Db, *, node_id: str) -> StoredCertificate | None:
    """The node's stored certificate, if one was issued."""
    with reading(db) as conn:
        row = conn.execute(sa.select(CERTIFICATE).where(CERTIFICATE.c.node_id == node_id)).first()
    if row is None:
        return None
    values = row._mapping
    return StoredCertificate(
        node_id=values["node_id"],
        public_key=values["public_key"],
        seal_public_key=values["seal_public_key"],
        issued_at=int(values["issued_at"]),
        signature=values["signature"],
    )


def put_certificate(db: Db, certificate: StoredCertificate) -> StoredCertificate:
    """Store a certificate unless the node has one; the one that is stored."""
    with writing(db) as conn:
        insert_ignoring_duplicates(
            conn,
            CERTIFICATE,
            {
                "node_id": certificate.node_id,
                "public_key": certificate.public_key,
                "seal_public_key": certificate.seal_public_key,
                "issued_at": certificate.issued_at,
                "signature": certificate.signature,
            },
        )
        stored = get_certificate(conn, node_id=certificate.node_id)
    if stored is None:  # pragma: no cover - inserted or present in this very transaction
        raise InternalError(detail="a certificate vanished while it was stored")
    return stored
