"""Nodes' audit chain-head receipts: the newest per node, kept where the node cannot reach it.

A node's audit log proves itself against edits, deletions and reordering; what it cannot prove on its
own is that its newest entries were not cut off, or that an older copy of its database was not put back.
So nodes send signed receipts (:mod:`common.audit_receipt`) here, and an auditor checks the node's chain
against the newest one (``medfed node audit verify --against RECEIPT``).

:func:`keep_receipt` keeps the receipt with the highest ``seq``. A receipt that goes backwards (a lower
``seq``), or names another hash for the same ``seq``, is exactly what a rollback or a rewrite at the node
looks like: it is not stored over the newer one, it is counted (``conflicts``, ``last_conflict_at``) and
the caller is told. The coordinator cannot check continuity between two receipts (it has no entries);
the node's chain and the newest receipt together can.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from common.audit_receipt import Receipt
from common.errors import NotFoundError
from coordinator.store._json import dump_object, load_object
from coordinator.store.db import Db, insert_ignoring_duplicates, now_micros, reading, writing
from coordinator.store.models import AuditReceipt

__all__ = ["ReceiptOutcome", "StoredReceipt", "get_receipt", "keep_receipt"]

AUDIT_RECEIPT: sa.Table = AuditReceipt.__table__  # type: ignore[attr-defined]
_MAX_RECEIPT_BYTES = 4096


class ReceiptOutcome(StrEnum):
    """What :func:`keep_receipt` did with a receipt."""

    STORED = "stored"  # the first, or newer than the one kept
    SAME = "same"  # the head kept already (no new entries since)
    CONFLICT = "conflict"  # older than, or different from, the one kept: counted, not stored


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    """The newest receipt of a node, as it sent it, and how many of its receipts conflicted with it."""

    node_id: str
    seq: int
    hash: str
    node_time: int
    received_at: int
    receipt: dict[str, Any]
    conflicts: int
    last_conflict_at: int | None


def _stored(row: sa.Row[Any]) -> StoredReceipt:
    values = dict(row._mapping)
    values["receipt"] = load_object(values["receipt"]) or {}
    return StoredReceipt(**values)


def keep_receipt(
    db: Db, *, node_id: str, receipt: Receipt, document: Mapping[str, Any], now: int | None = None
) -> ReceiptOutcome:
    """Keep ``receipt`` (already verified, of ``node_id``) if it is the node's newest; see the module docstring."""
    at = now_micros() if now is None else now
    values = {
        "node_id": node_id,
        "seq": receipt.seq,
        "hash": receipt.hash,
        "node_time": receipt.time,
        "received_at": at,
        "receipt": dump_object(document, what="receipt", max_bytes=_MAX_RECEIPT_BYTES),
        "conflicts": 0,
        "last_conflict_at": None,
    }
    with writing(db) as conn:
        if insert_ignoring_duplicates(conn, AUDIT_RECEIPT, values):
            return ReceiptOutcome.STORED
        kept = conn.execute(
            sa.select(AUDIT_RECEIPT.c.seq, AUDIT_RECEIPT.c.hash)
            .where(AUDIT_RECEIPT.c.node_id == node_id)
            .with_for_update()
        ).one()
        where = AUDIT_RECEIPT.c.node_id == node_id
        if receipt.seq > kept.seq:
            conn.execute(
                AUDIT_RECEIPT.update()
                .where(where)
                .values({k: values[k] for k in values if k != "conflicts" and k != "last_conflict_at"})
            )
            return ReceiptOutcome.STORED
        if receipt.seq == kept.seq and receipt.hash == kept.hash:
            conn.execute(AUDIT_RECEIPT.update().where(where).values(received_at=at))
            return ReceiptOutcome.SAME
        conn.execute(
            AUDIT_RECEIPT.update().where(where).values(conflicts=AUDIT_RECEIPT.c.conflicts + 1, last_conflict_at=at)
        )
        return ReceiptOutcome.CONFLICT


def get_receipt(db: Db, *, node_id: str) -> StoredReceipt:
    """The newest receipt of ``node_id``; NotFoundError when it sent none."""
    with reading(db) as conn:
        row = conn.execute(sa.select(AUDIT_RECEIPT).where(AUDIT_RECEIPT.c.node_id == node_id)).first()
    if row is None:
        raise NotFoundError(detail="no receipt from this node")
    return _stored(row)
