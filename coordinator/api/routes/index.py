"""The patient index over the channel: ``/index/v1/publish``, ``/withdraw`` and ``/lookup`` (signed node requests).

Every call is audited (``index_audit``: node, action, how many items and hits, status — never a
token or a reference). Lookups are rate-limited per node (:class:`~coordinator.index.limits.
TokenBucketLimiter`): past its budget a node gets 429 with the catalog message, audited too.
The re-keying secret is loaded (created on a coordinator initialised before the index) on first use.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from common.errors import MedfedError
from common.locator.index_wire import (
    LookupRequest,
    LookupResponse,
    PublishRequest,
    PublishResponse,
    WithdrawRequest,
    WithdrawResponse,
)
from coordinator.api.node_auth import AuthenticatedNode, require_tls
from coordinator.config import CoordinatorSettings
from coordinator.index.limits import TokenBucketLimiter, lookup_limiter
from coordinator.index.secret import load_rekey_key
from coordinator.index.service import IndexService

__all__ = ["index_service", "router"]

router = APIRouter(prefix="/index/v1", dependencies=[Depends(require_tls)])
_SETUP_LOCK = threading.Lock()


def index_service(request: Request) -> IndexService:
    """The app's index service, made on first use."""
    state = request.app.state
    with _SETUP_LOCK:
        service: IndexService | None = getattr(state, "index_service", None)
        if service is None:
            settings: CoordinatorSettings = state.settings
            service = state.index_service = IndexService(state.engine, load_rekey_key(settings.data_dir))
    return service


def _limiter(request: Request) -> TokenBucketLimiter:
    state = request.app.state
    with _SETUP_LOCK:
        limiter: TokenBucketLimiter | None = getattr(state, "index_limiter", None)
        if limiter is None:
            limiter = state.index_limiter = lookup_limiter()
    return limiter


ServiceDep = Annotated[IndexService, Depends(index_service)]
LimiterDep = Annotated[TokenBucketLimiter, Depends(_limiter)]


@router.post("/publish", name="index.publish")
async def publish(node: AuthenticatedNode, body: PublishRequest, service: ServiceDep) -> PublishResponse:
    """Add or replace records' tokens."""
    try:
        answer = await run_in_threadpool(service.publish, node.id, body)
    except MedfedError as exc:
        await run_in_threadpool(
            service.audit, node.id, action="publish", items=len(body.records), hits=None, status=exc.status
        )
        raise
    await run_in_threadpool(service.audit, node.id, action="publish", items=answer.stored, hits=None, status=200)
    return answer


@router.post("/withdraw", name="index.withdraw")
async def withdraw(node: AuthenticatedNode, body: WithdrawRequest, service: ServiceDep) -> WithdrawResponse:
    """Remove references (with ``person``: every record of the person, everywhere)."""
    answer = await run_in_threadpool(service.withdraw, node.id, body)
    await run_in_threadpool(
        service.audit, node.id, action="withdraw", items=len(body.refs), hits=answer.withdrawn, status=200
    )
    return answer


@router.post("/lookup", name="index.lookup")
async def lookup(
    node: AuthenticatedNode, body: LookupRequest, service: ServiceDep, limiter: LimiterDep
) -> LookupResponse:
    """Where else is this patient known: ``(node, ref, MATCH|POSSIBLE)`` of other nodes' records."""
    try:
        limiter.take(node.id, detail="index lookups over the node's rate")
        hits = await run_in_threadpool(service.lookup, node.id, body.tokens)
    except MedfedError as exc:
        await run_in_threadpool(
            service.audit, node.id, action="lookup", items=len(body.tokens), hits=None, status=exc.status
        )
        raise
    await run_in_threadpool(service.audit, node.id, action="lookup", items=len(body.tokens), hits=len(hits), status=200)
    return LookupResponse(hits=hits)
