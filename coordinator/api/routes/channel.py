"""The node channel: long-poll for messages, replies, heartbeats (signed node requests over TLS).

Nodes dial out; the coordinator never connects to a hospital. A node keeps one long-poll open
(``/channel/v1/poll``, answered as soon as a message is queued for it, or empty after ``wait_s``).
A reply the node has ready when it polls again rides on that poll (``replies``: stored in the poll's
write transaction, before it waits), so a quick message costs the node one signed request, not two;
a reply that takes longer (a training round) goes back on its own (``/channel/v1/reply``). Long-poll
over HTTPS rather than WebSocket: it is plain request/response, so it passes every HTTPS proxy and
TLS-inspecting middlebox a hospital may run, and it costs one round trip per delivery (see
benchmarks/README.md).

Every message an envelope carries (:mod:`coordinator.api.envelopes`) is the Flower message serialised by
:mod:`common.flower`, plus the job's app and allowed message types from the job's spec. It also carries
what the node's policy decides on (``spec``: the spec's fields that name the kind, study, analysis,
source, columns, learning inputs, rounds and privacy request; ``submitter``: the researcher), and the
message's ``deadline_at`` (epoch microseconds, None for none), after which a node holding it for a
person's approval drops it.

Nodes do not take the coordinator's word for any of that (``docs/trust.md``): each envelope of a signed
job also carries ``signed_job`` (the document the researcher signed) and ``membership`` (the researcher's
newest certificate, signed by the network-admin key), and a node builds the job from those alone; the
fields above are hints it checks against them. A poll answer that carries messages, and every heartbeat
answer, carry ``revocations``: the newest signed revocation list (None before the first).
"""

from __future__ import annotations

import base64
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from common.errors import ErrorCode, InputError, NotFoundError
from coordinator.api.deps import EngineDep
from coordinator.api.envelopes import Envelopes
from coordinator.api.node_auth import AuthenticatedNode, VerifiedNode, VerifiedRequest
from coordinator.federation.notifier import ChannelNotifier
from coordinator.store import messages, nodes, researchers
from coordinator.store.db import now_micros, write_transaction

__all__ = ["router"]

router = APIRouter(prefix="/channel/v1")
log = logging.getLogger("medfed.coordinator.channel")

MAX_WAIT_S = 30.0
# A node acknowledges a delivery on its very next poll, which it sends at once; a delivery still
# unacknowledged after this long went to a connection that died.
ACK_TIMEOUT_S = 2 * MAX_WAIT_S
SKEW_REPORT_MS = 30_000
MAX_SKEW_MS = 2**31 - 1
LIVENESS_EVERY_S = 1.0


class ReplyRequest(BaseModel):
    """A node's reply to one message."""

    message_id: str = Field(min_length=1, max_length=200)
    payload: str = Field(description="base64 of the serialised Flower reply")

    def decoded(self) -> bytes:
        """The serialised reply; InputError when the payload is not base64."""
        try:
            return base64.b64decode(self.payload, validate=True)
        except ValueError:
            raise InputError(ErrorCode.INVALID_REQUEST, hints=["payload: not base64"]) from None


class PollRequest(BaseModel):
    """Acknowledge what arrived, hand in the replies ready, say whether this is a (re)connect, and how long to
    wait for more."""

    acks: list[str] = Field(default_factory=list, max_length=1000)
    replies: list[ReplyRequest] = Field(default_factory=list, max_length=100)
    wait_s: float = Field(default=25.0, ge=0.0, le=MAX_WAIT_S)
    hello: bool = False


class HeartbeatRequest(BaseModel):
    """Liveness, what the node runs, and its clock."""

    version: str = Field(max_length=64)
    capabilities: dict[str, Any] = Field(default_factory=dict)
    node_time: float = Field(ge=0, le=1e11, allow_inf_nan=False, description="The node's clock, epoch seconds")


def _notifier(request: Request) -> ChannelNotifier:
    notifier: ChannelNotifier = request.app.state.notifier
    return notifier


def _envelopes(request: Request) -> Envelopes:
    envelopes: Envelopes = request.app.state.envelopes
    return envelopes


@dataclass(slots=True)
class _Delivery:
    """What one look at the node's queue did: the envelopes due (with the newest revocation list when there are
    any), and the jobs a reply was stored for."""

    envelopes: list[dict[str, Any]] = field(default_factory=list)
    revocations: dict[str, Any] | None = None
    answered_jobs: set[str] = field(default_factory=set)
    refused_replies: int = 0


def _deliver(
    engine: Engine,
    envelopes: Envelopes,
    caller: VerifiedRequest,
    body: PollRequest | None,
    replies: Sequence[tuple[str, bytes]] = (),
) -> _Delivery:
    """One write transaction per look: confirm the caller, take the acknowledgements and replies, note liveness,
    take what is due.

    ``body`` is None for the second look after a wake-up (the caller was confirmed by the first; nothing to
    acknowledge then); ``replies`` are the poll's replies, decoded (message id, serialised reply). Liveness
    is written at most every :data:`LIVENESS_EVERY_S`: a poll is a request a second under load, and the
    offline window is a minute. A reply to no message of this node is left out and counted, and the rest
    of the poll goes on.
    """
    now = now_micros()
    delivery = _Delivery()
    node_id = caller.node_id
    with write_transaction(engine) as conn:
        if body is not None:
            node = caller.confirm(conn)
            if body.acks:
                messages.ack_messages(conn, node_id=node_id, message_ids=body.acks, now=now)
            for message_id, payload in replies:
                try:
                    stored = messages.store_reply(
                        conn, message_id=message_id, node_id=node_id, payload=payload, now=now
                    )
                except NotFoundError:
                    delivery.refused_replies += 1
                    continue
                if stored.job_id is not None and stored.status is messages.ReplyStatus.STORED:
                    delivery.answered_jobs.add(stored.job_id)
            if node.last_seen_at is None or now - node.last_seen_at >= LIVENESS_EVERY_S * 1e6:
                nodes.record_heartbeat(conn, node_id=node_id, now=now)
        # On a (re)connect, whatever was sent but never acknowledged goes out again; otherwise only a
        # delivery unacknowledged for ACK_TIMEOUT_S, which went to a connection that died.
        redeliver_before = now + 1 if body is not None and body.hello else now - int(ACK_TIMEOUT_S * 1_000_000)
        pending = messages.take_deliverable(conn, node_id=node_id, redeliver_before=redeliver_before, now=now)
        if pending:
            # Revocations travel with the messages they may forbid (one indexed read per look that delivers).
            delivery.revocations = researchers.current_revocations(conn)
    if pending:
        delivery.envelopes = envelopes.build(pending)
    return delivery


@router.post("/poll", name="channel.poll")
async def poll(request: Request, caller: VerifiedNode, body: PollRequest, engine: EngineDep) -> dict[str, Any]:
    """Keep the replies that came with the poll, then deliver the node's queued messages, waiting up to
    ``wait_s`` for one to be queued."""
    # A payload that is not base64 refuses the whole poll before anything is written.
    replies = [(item.message_id, item.decoded()) for item in body.replies]
    delivery = await run_in_threadpool(_deliver, engine, _envelopes(request), caller, body, replies)
    for job_id in delivery.answered_jobs:
        _notifier(request).reply_arrived(job_id)
    if delivery.refused_replies:
        log.warning(
            "a poll carried replies to no message of the node", extra={"fields": {"replies": delivery.refused_replies}}
        )
    if not delivery.envelopes and body.wait_s > 0:
        await _notifier(request).wait_for_message(caller.node_id, body.wait_s)
        if await request.is_disconnected():  # nobody to deliver to: leave the messages queued
            return {"messages": []}
        delivery = await run_in_threadpool(_deliver, engine, _envelopes(request), caller, None)
    if not delivery.envelopes:
        return {"messages": []}
    return {"messages": delivery.envelopes, "revocations": delivery.revocations}


@router.post("/reply", name="channel.reply")
async def reply(request: Request, node: AuthenticatedNode, body: ReplyRequest, engine: EngineDep) -> dict[str, str]:
    """Keep a reply (once: a repeated reply to the same message changes nothing) and wake the job."""
    payload = body.decoded()
    stored = await run_in_threadpool(
        functools.partial(messages.store_reply, engine, message_id=body.message_id, node_id=node.id, payload=payload)
    )
    if stored.job_id is not None and stored.status is messages.ReplyStatus.STORED:
        _notifier(request).reply_arrived(stored.job_id)
    return {"status": str(stored.status)}


@router.post("/heartbeat", name="channel.heartbeat")
async def heartbeat(node: AuthenticatedNode, body: HeartbeatRequest, engine: EngineDep) -> dict[str, Any]:
    """Record liveness, version, installed apps and clock skew (over 30 s is reported)."""
    # Kept in a 32-bit column: a clock off by more than about 24 days is recorded as off by that much.
    skew_ms = max(-MAX_SKEW_MS, min(MAX_SKEW_MS, int((body.node_time - time.time()) * 1000)))
    await run_in_threadpool(
        nodes.record_heartbeat,
        engine,
        node_id=node.id,
        version=body.version,
        capabilities=body.capabilities,
        clock_skew_ms=skew_ms,
    )
    if abs(skew_ms) > SKEW_REPORT_MS:
        log.warning("a node's clock is off by more than 30 s", extra={"fields": {"skew_ms": skew_ms}})
    revocations = await run_in_threadpool(researchers.current_revocations, engine)
    return {"server_time": now_micros() / 1_000_000, "clock_skew_ms": skew_ms, "revocations": revocations}
