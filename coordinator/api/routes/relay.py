"""The record locator's relay and key certificates (signed node requests over TLS).

- ``GET /relay/v1/certificates/{node_id}``: the node's key certificate, signed by the network-admin
  key (the coordinator's identity key, pinned by every node at enrolment);
- ``POST /relay/v1/send``: queue a sealed payload for another enrolled node (the coordinator cannot
  read it; see :mod:`common.locator.envelopes`);
- ``POST /relay/v1/poll``: acknowledge (which deletes) and take the node's messages of one kind —
  ``request`` for a node's responder, ``reply`` with the request's ``correlation`` for the waiting
  asker — waiting up to ``wait_s`` for one to be queued.

Additive to the job channel (``/channel/v1``), which it does not touch.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from common.errors import ConfigError, ErrorCode, InputError
from common.locator.certificates import KeyCertificate
from common.locator.envelopes import MAX_PAYLOAD_BYTES
from common.locator.index_wire import REF_PATTERN
from coordinator.api.node_auth import AuthenticatedNode, require_tls
from coordinator.identity import CoordinatorIdentity
from coordinator.index.certificates import certificate_for
from coordinator.index.notifier import RelayNotifier
from coordinator.store import relay
from coordinator.store.nodes import require_enrolled

__all__ = ["router"]

router = APIRouter(prefix="/relay/v1", dependencies=[Depends(require_tls)])

MAX_WAIT_S = 30.0
TTL_S = 300.0
REDELIVER_AFTER_S = 60.0
PRUNE_EVERY_S = 60.0
Kind = Literal["request", "reply"]


class SendRequest(BaseModel):
    """A sealed payload for one node."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=64)
    kind: Kind
    correlation: str = Field(pattern=REF_PATTERN)
    payload: str = Field(max_length=MAX_PAYLOAD_BYTES * 2, description="base64 of the sealed payload")


class PollRequest(BaseModel):
    """Acknowledge what arrived; ask for messages of one kind (a reply: of one correlation)."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    correlation: str | None = Field(default=None, pattern=REF_PATTERN)
    acks: list[str] = Field(default_factory=list, max_length=100)
    wait_s: float = Field(default=20.0, ge=0.0, le=MAX_WAIT_S)


def _notifier(request: Request) -> RelayNotifier:
    notifier: RelayNotifier | None = getattr(request.app.state, "relay_notifier", None)
    if notifier is None:  # made in the event loop, where every relay route runs
        notifier = request.app.state.relay_notifier = RelayNotifier()
    return notifier


def _identity(request: Request) -> CoordinatorIdentity:
    identity: CoordinatorIdentity | None = getattr(request.app.state, "identity", None)
    if identity is None:
        raise ConfigError(detail="the coordinator has no identity; run medfed coordinator init")
    return identity


NotifierDep = Annotated[RelayNotifier, Depends(_notifier)]
IdentityDep = Annotated[CoordinatorIdentity, Depends(_identity)]


def _maybe_prune(request: Request) -> None:
    state = request.app.state
    now = time.monotonic()
    if now - getattr(state, "relay_pruned_at", 0.0) >= PRUNE_EVERY_S:
        state.relay_pruned_at = now
        relay.prune_relayed(state.engine)


@router.get("/certificates/{node_id}", name="relay.certificate")
async def certificate(request: Request, node: AuthenticatedNode, node_id: str, identity: IdentityDep) -> KeyCertificate:
    """A node's key certificate under the network-admin key."""
    del node  # any enrolled node may fetch any node's certificate
    return await run_in_threadpool(certificate_for, request.app.state.engine, identity.signing_key, node_id=node_id)


@router.post("/send", name="relay.send")
async def send(request: Request, node: AuthenticatedNode, body: SendRequest, notifier: NotifierDep) -> dict[str, str]:
    """Queue a sealed payload for ``to``."""
    try:
        payload = base64.b64decode(body.payload, validate=True)
    except ValueError:
        raise InputError(ErrorCode.INVALID_REQUEST, hints=["payload: not base64"]) from None
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InputError(ErrorCode.PAYLOAD_TOO_LARGE)
    engine = request.app.state.engine
    await run_in_threadpool(require_enrolled, engine, node_id=body.to)
    message_id = await run_in_threadpool(
        relay.relay_message,
        engine,
        from_node=node.id,
        to_node=body.to,
        kind=body.kind,
        correlation=body.correlation,
        payload=payload,
        ttl_s=TTL_S,
    )
    notifier.queued(body.to, body.kind, body.correlation)
    return {"id": message_id}


def _take(request: Request, node_id: str, body: PollRequest) -> list[dict[str, Any]]:
    engine = request.app.state.engine
    if body.acks:
        relay.ack_relayed(engine, to_node=node_id, message_ids=body.acks)
    _maybe_prune(request)
    taken = relay.take_relayed(
        engine, to_node=node_id, kind=body.kind, correlation=body.correlation, redeliver_after_s=REDELIVER_AFTER_S
    )
    return [
        {
            "id": message.id,
            "from": message.from_node,
            "kind": message.kind,
            "correlation": message.correlation,
            "payload": base64.b64encode(message.payload).decode(),
        }
        for message in taken
    ]


@router.post("/poll", name="relay.poll")
async def poll(request: Request, node: AuthenticatedNode, body: PollRequest, notifier: NotifierDep) -> dict[str, Any]:
    """Acknowledge, then deliver the node's messages of the kind asked for, waiting up to ``wait_s``."""
    async with notifier.armed(node.id, body.kind, body.correlation) as queued:
        messages = await run_in_threadpool(_take, request, node.id, body)
        if not messages and body.wait_s > 0:
            await notifier.wait(queued, body.wait_s)
            if await request.is_disconnected():
                return {"messages": []}
            messages = await run_in_threadpool(_take, request, node.id, body.model_copy(update={"acks": []}))
    return {"messages": messages}
