"""The node's admin API under /admin/v1 (admin role only): approvals, held results, policy, audit chain.

The same operations as ``medfed node approvals|approve|reject|releases|release|withhold``, ``medfed node
policy check`` and ``medfed node audit verify``, for the admin console and the hospital's own tools.
Every call is itself an audit entry (``api.call``, by :mod:`node.api.audit_middleware`), and each
decision taken here is audited with the token as its actor.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from node.api.deps import Admin
from node.audit import AuditLog, token_actor, verify_chain
from node.audit.verify import trusted_keys
from node.policy import queue
from node.policy.gate import PolicyGate
from node.policy.jobs import job_from_spec
from node.store import audit_chain

__all__ = ["router"]

router = APIRouter(prefix="/admin/v1")


class Note(BaseModel):
    """An optional note with a decision (kept in the queue and the audit log; no patient data)."""

    note: str | None = Field(default=None, max_length=500)


class DryRunJob(BaseModel):
    """A job as ``medfed node policy check`` reads it from a file."""

    job_id: str = Field(default="dry-run", max_length=200)
    study: str = Field(max_length=200)
    researcher: str = Field(max_length=200)
    epsilon: float = Field(default=0.0, ge=0, lt=1e6)
    delta: float = Field(default=0.0, ge=0, lt=1)
    spec: dict[str, Any]


# A hold's id is a row id in a 32-bit integer column (PostgreSQL's INTEGER): a larger one is a 400 here, not an
# overflow in the database driver (a 500).
HoldId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _audit(request: Request) -> AuditLog:
    audit: AuditLog = request.app.state.audit_log
    return audit


def _gate(request: Request) -> PolicyGate:
    gate: PolicyGate = request.app.state.policy
    return gate


@router.get("/approvals", name="admin.approvals")
async def approvals(
    request: Request,
    _: Admin,
    state: Annotated[queue.ApprovalState | None, Query()] = None,
) -> list[dict[str, Any]]:
    """Jobs that wait (or waited) for a person, oldest first."""
    audit = _audit(request)
    found = await run_in_threadpool(queue.list_approvals, audit.engine, audit, state=state)
    return [_approval_view(approval) for approval in found]


async def _decide_approval(request: Request, principal: Any, job_id: str, note: Note | None, approve: bool) -> Any:
    audit = _audit(request)
    decided = await run_in_threadpool(
        queue.decide_approval,
        audit.engine,
        audit,
        job_id,
        approve=approve,
        actor=token_actor(principal.token_id, str(principal.role)),
        note=None if note is None else note.note,
    )
    return _approval_view(decided)


@router.post("/approvals/{job_id}/approve", name="admin.approve")
async def approve(request: Request, job_id: str, principal: Admin, body: Note | None = None) -> dict[str, Any]:
    """Approve a pending job (409 when it is not pending, 404 when it was never queued)."""
    view: dict[str, Any] = await _decide_approval(request, principal, job_id, body, True)
    return view


@router.post("/approvals/{job_id}/reject", name="admin.reject")
async def reject(request: Request, job_id: str, principal: Admin, body: Note | None = None) -> dict[str, Any]:
    """Reject a pending job (409 when it is not pending, 404 when it was never queued)."""
    view: dict[str, Any] = await _decide_approval(request, principal, job_id, body, False)
    return view


@router.get("/releases", name="admin.releases")
async def releases(
    request: Request, _: Admin, state: Annotated[queue.ReleaseState | None, Query()] = None
) -> list[dict[str, Any]]:
    """Results held for a steward, oldest first (their summaries; never the results)."""
    audit = _audit(request)
    found = await run_in_threadpool(queue.list_holds, audit.engine, audit, state=state)
    return [_hold_view(hold) for hold in found]


async def _decide_release(request: Request, principal: Any, hold_id: int, release: bool) -> dict[str, Any]:
    audit = _audit(request)
    hold = await run_in_threadpool(
        queue.decide_release,
        audit.engine,
        audit,
        hold_id,
        release=release,
        actor=token_actor(principal.token_id, str(principal.role)),
    )
    return _hold_view(hold)


@router.post("/releases/{hold_id}/release", name="admin.release")
async def release(request: Request, hold_id: HoldId, principal: Admin) -> dict[str, Any]:
    """Release a held result (409 when it is not held)."""
    return await _decide_release(request, principal, hold_id, True)


@router.post("/releases/{hold_id}/withhold", name="admin.withhold")
async def withhold(request: Request, hold_id: HoldId, principal: Admin) -> dict[str, Any]:
    """Withhold a held result for good (409 when it is not held)."""
    return await _decide_release(request, principal, hold_id, False)


@router.get("/policy", name="admin.policy")
async def policy(request: Request, _: Admin) -> dict[str, Any]:
    """The policy in force: its file, hash and studies, or why there is none (then every job is refused)."""
    gate = _gate(request)
    loaded = await run_in_threadpool(gate.current)
    if loaded is None:
        return {"path": str(gate.path), "valid": False, "problem": gate.problem(), "sha256": None, "studies": []}
    return {
        "path": str(gate.path),
        "valid": True,
        "problem": None,
        "sha256": loaded.sha256,
        "studies": sorted(loaded.policy.studies),
    }


@router.post("/policy/check", name="admin.policy_check")
async def policy_check(request: Request, _: Admin, job: DryRunJob) -> dict[str, Any]:
    """The dry-run: what the policy in force decides for ``job``; nothing runs, nothing is queued."""
    gate = _gate(request)
    policy_job = job_from_spec(
        job.spec,
        job_id=job.job_id,
        study=job.study,
        researcher=job.researcher,
        epsilon=job.epsilon,
        delta=job.delta,
    )
    decision = await run_in_threadpool(gate.evaluate, policy_job)
    return {"decision": decision.as_dict(), "job": policy_job.describe()}


@router.get("/audit/head", name="admin.audit_head")
async def audit_head(request: Request, _: Admin) -> dict[str, Any]:
    """The audit chain's head: its last sequence number and hash, and the key that signs it."""
    audit = _audit(request)
    seq, digest = await run_in_threadpool(audit_chain.chain_head, audit.engine)
    return {"seq": seq, "hash": digest, "key_id": audit.key_id, "public_key": audit.public_key_text}


@router.get("/audit/verify", name="admin.audit_verify")
async def audit_verify(request: Request, _: Admin) -> dict[str, Any]:
    """Verify the whole chain now (as ``medfed node audit verify`` without a receipt)."""
    audit = _audit(request)

    def run() -> dict[str, Any]:
        keys = trusted_keys(audit.engine, [audit.public_key])
        report = verify_chain(audit.engine, keys=keys, subject_key=audit.subject_key)
        return {
            "ok": report.ok,
            "checked": report.checked,
            "last_seq": report.last_seq,
            "first_bad_seq": report.first_bad_seq,
            "problem": report.problem,
        }

    return await run_in_threadpool(run)


def _approval_view(approval: queue.Approval) -> dict[str, Any]:
    return {
        "job_id": approval.job_id,
        "study": approval.study,
        "researcher": approval.researcher,
        "kind": approval.kind,
        "rule": approval.rule,
        "job": approval.job,
        "state": str(approval.state),
        "requested_at": approval.requested_at,
        "deadline_at": approval.deadline_at,
        "decided_at": approval.decided_at,
        "decided_by": approval.decided_by,
    }


def _hold_view(hold: queue.Hold) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": hold.id,
        "job_id": hold.job_id,
        "result_ref": hold.result_ref,
        "summary": hold.summary,
        "state": str(hold.state),
        "held_at": hold.held_at,
        "deadline_at": hold.deadline_at,
        "decided_at": hold.decided_at,
        "decided_by": hold.decided_by,
    }
    return view
