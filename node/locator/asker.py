"""Node A's side of the record locator: where else is this patient known, and what do they hold?

:func:`locate`, for one of this node's patients and a purpose of use (treatment only):

1. the patient's demographics are read from this node's store and turned into probe tokens under the
   network linkage key (the record's own tokens and its query-side probes, :func:`common.linkage.
   query_tokens`); the coordinator's lookup answers ``(node, ref, MATCH|POSSIBLE)`` for other nodes;
2. for each hit (at most :data:`MAX_HITS`), the holder's key certificate is checked against the
   network-admin key (an uncertified holder gets nothing: ``refused``, ``key_not_certified``; nor does a
   holder on the node's revocation list: ``refused``, ``node_revoked``), and a request — the reference,
   the purpose and this node's demographics of the patient — is signed and sealed to the holder and sent
   through the relay;
3. the answers are awaited (at most ``timeout_s`` in all), opened and verified with the holder's
   certified key: ``released`` with a searchset Bundle, ``refused`` with a reason, or ``no_answer``.

Each request and each answer is audited (``outbound``), with the local user's token id and the purpose.
The result names each answer's origin: the node whose certified key signed it.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from common.errors import AccessError, ErrorCode, InputError, MedfedError, NotFoundError
from common.linkage import from_fhir_patient, query_tokens
from common.locator.envelopes import open_message, seal_message
from common.locator.index_wire import LookupRequest, LookupResponse, WireToken
from node.locator import relay
from node.locator.audit import LocatorEvent
from node.locator.context import LocatorContext
from node.locator.messages import PURPOSES, REPLY, REQUEST, Refusal, demographics_to_wire
from node.store.resources import get_current

__all__ = ["MAX_HITS", "LocateResult", "LocatedRecord", "locate"]

LOOKUP_PATH = "/index/v1/lookup"
MAX_HITS = 10
POLL_SLICE_S = 5.0


@dataclass(frozen=True, slots=True)
class LocatedRecord:
    """One other node's answer: where it came from, the index's decision, and what it released."""

    origin: str
    decision: str
    status: str  # released | refused | no_answer | failed
    reason: str | None = None
    bundle: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form shown to the clinician (the holder's reference is not shown)."""
        shown: dict[str, Any] = {"origin": self.origin, "decision": self.decision, "status": self.status}
        if self.reason is not None:
            shown["reason"] = self.reason
        if self.bundle is not None:
            shown["bundle"] = self.bundle
        return shown


@dataclass(frozen=True, slots=True)
class LocateResult:
    """Everything one locate found."""

    patient_id: str
    purpose: str
    records: list[LocatedRecord] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON answer of ``GET /locate``."""
        return {
            "patient": self.patient_id,
            "purpose": self.purpose,
            "released": sum(1 for r in self.records if r.status == "released"),
            "records": [r.as_dict() for r in self.records],
        }


@dataclass
class _Pending:
    node: str
    decision: str
    correlation: str
    verify_key: Any
    answer: LocatedRecord | None = None


def _new_correlation() -> str:
    return secrets.token_urlsafe(18)


def locate(
    context: LocatorContext,
    patient_id: str,
    *,
    purpose: str = "treatment",
    token_id: int | None = None,
    timeout_s: float = 20.0,
) -> LocateResult:
    """Find and fetch the patient's records at other nodes (see the module docstring).

    NotFoundError for a patient this node does not have; InputError for a purpose other than
    treatment; ConfigError(LINKAGE_NOT_CONFIGURED) without a linkage key.
    """
    code = PURPOSES.get(purpose)
    if code is None:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="purpose of use", hints=["purpose: only treatment"])
    with context.service.engine.connect() as conn:
        stored = get_current(conn, "Patient", patient_id)
    if stored is None or stored.deleted:
        raise NotFoundError()
    key = context.linkage_key()
    demographics = from_fhir_patient(orjson.loads(stored.content))
    probes = [WireToken(variant=t.variant, value=t.value_hex) for t in query_tokens(demographics, key)]
    if not probes:
        return LocateResult(patient_id, purpose)
    answer = context.link.post_json(LOOKUP_PATH, LookupRequest(tokens=probes).model_dump())
    hits = LookupResponse.model_validate(answer).hits[:MAX_HITS]
    wire_demographics = demographics_to_wire(demographics)
    pending: list[_Pending] = []
    done: list[LocatedRecord] = []

    def audit(node: str, correlation: str, outcome: str, reason: str | None = None, count: int | None = None) -> None:
        context.audit.record(
            LocatorEvent(
                direction="outbound",
                request_id=correlation,
                peer_node=node,
                purpose=code,
                outcome=outcome,
                patient_id=patient_id,
                reason=reason,
                record_count=count,
                token_id=token_id,
            )
        )

    for hit in hits:
        correlation = _new_correlation()
        try:
            holder = context.certificates.certified(hit.node)
        except AccessError as exc:
            why = Refusal.NODE_REVOKED if exc.code is ErrorCode.NODE_REVOKED else Refusal.KEY_NOT_CERTIFIED
            audit(hit.node, correlation, "refused", why)
            done.append(LocatedRecord(hit.node, str(hit.decision), "refused", why))
            continue
        payload = seal_message(
            context.identity.signing_key,
            holder.seal_key,
            kind=REQUEST,
            sender=context.node_id,
            to=hit.node,
            correlation=correlation,
            issued_at=time.time_ns() // 1000,
            body={"ref": hit.ref, "purpose": code, "demographics": wire_demographics},
        )
        relay.send(context.link, to=hit.node, kind=REQUEST, correlation=correlation, payload=payload)
        audit(hit.node, correlation, "asked")
        pending.append(_Pending(hit.node, str(hit.decision), correlation, holder.verify_key))

    deadline = time.monotonic() + timeout_s
    for item in pending:
        item.answer = _await_answer(context, item, deadline)
        answered = item.answer
        count = None if answered.bundle is None else int(answered.bundle.get("total", 0))
        audit(item.node, item.correlation, answered.status, answered.reason, count)
    done.extend(item.answer for item in pending if item.answer is not None)
    order = {"released": 0, "refused": 1, "no_answer": 2, "failed": 3}
    done.sort(key=lambda r: (order.get(r.status, 4), r.decision != "MATCH", r.origin))
    return LocateResult(patient_id, purpose, done)


def _await_answer(context: LocatorContext, item: _Pending, deadline: float) -> LocatedRecord:
    acks: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if acks:
                _ack(context, item, acks)
            return LocatedRecord(item.node, item.decision, "no_answer")
        try:
            taken = relay.poll(
                context.link, kind=REPLY, correlation=item.correlation, acks=acks, wait_s=min(POLL_SLICE_S, remaining)
            )
        except MedfedError:
            return LocatedRecord(item.node, item.decision, "failed", "coordinator_unavailable")
        acks = []
        for message in taken:
            acks.append(message.id)
            if message.sender != item.node:
                continue  # not from the node asked: ignored (and acknowledged)
            try:
                opened = open_message(
                    message.payload,
                    recipient=context.node_id,
                    recipient_key=context.identity.sealing_key,
                    sender=item.node,
                    sender_key=item.verify_key,
                    kind=REPLY,
                    correlation=item.correlation,
                )
            except AccessError:
                continue  # forged or altered on the way: ignored
            _ack(context, item, acks)
            return _record(item, opened.body)


def _ack(context: LocatorContext, item: _Pending, acks: list[str]) -> None:
    with contextlib.suppress(MedfedError):  # unacknowledged answers expire at the coordinator
        relay.poll(context.link, kind=REPLY, correlation=item.correlation, acks=acks, wait_s=0)


def _record(item: _Pending, body: dict[str, Any]) -> LocatedRecord:
    status = body.get("status")
    reason = body.get("reason")
    bundle = body.get("bundle")
    if status == "released" and isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle":
        return LocatedRecord(item.node, item.decision, "released", None, bundle)
    if status == "refused":
        return LocatedRecord(item.node, item.decision, "refused", str(reason)[:64] if reason else None)
    return LocatedRecord(item.node, item.decision, "failed", "malformed")
