"""Audit chain-head receipts from nodes (signed node requests), and the newest one for admins and observers.

``POST /channel/v1/receipts``: a node sends the signed receipt of its audit chain's head (at a fixed
interval, and the channel with every job result). The request is a signed node request
(:data:`~coordinator.api.node_auth.AuthenticatedNode`) and the receipt itself must be signed by the same
node's registered key and name that node: a node cannot file receipts for another. A receipt that goes
backwards is refused with 409 and counted (see :mod:`coordinator.store.receipts`).

``GET /api/nodes/{node_id}/audit-receipt``: the newest receipt exactly as the node signed it (what
``medfed node audit verify --against`` takes), with the count of conflicting receipts.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Body
from starlette.concurrency import run_in_threadpool

from common.audit_receipt import read_receipt
from common.crypto import VerifyKey
from common.errors import AccessError, ConflictError, ErrorCode
from coordinator.api.deps import EngineDep, NetworkViewer
from coordinator.api.node_auth import AuthenticatedNode
from coordinator.store import receipts

__all__ = ["router"]

router = APIRouter()
log = logging.getLogger("medfed.coordinator.receipts")


@router.post("/channel/v1/receipts", name="channel.receipts")
async def post_receipt(
    node: AuthenticatedNode,
    engine: EngineDep,
    receipt: dict[str, Any] = Body(...),  # noqa: B008
) -> dict[str, Any]:
    """Keep a node's chain-head receipt if it is its newest; 409 (counted) when it goes backwards."""
    verified = read_receipt(receipt, VerifyKey.from_text(node.public_key))
    if verified.node != node.id:
        raise AccessError(ErrorCode.FORBIDDEN, detail="a receipt for another node")
    outcome = await run_in_threadpool(
        receipts.keep_receipt, engine, node_id=node.id, receipt=verified, document=receipt
    )
    if outcome is receipts.ReceiptOutcome.CONFLICT:
        log.warning(
            "a node's audit receipt went backwards (rollback or rewrite at the node?)",
            extra={"fields": {"node": node.id, "seq": verified.seq}},
        )
        raise ConflictError(detail="the receipt is older than, or differs from, the node's newest receipt")
    return {"outcome": str(outcome), "seq": verified.seq}


@router.get("/api/nodes/{node_id}/audit-receipt", name="node_audit_receipt")
async def get_receipt(node_id: str, _viewer: NetworkViewer, engine: EngineDep) -> dict[str, Any]:
    """The node's newest receipt as it signed it, when it arrived, and how many receipts conflicted with it."""
    stored = await run_in_threadpool(receipts.get_receipt, engine, node_id=node_id)
    return {
        "receipt": stored.receipt,
        "received_at": stored.received_at,
        "conflicts": stored.conflicts,
        "last_conflict_at": stored.last_conflict_at,
    }
