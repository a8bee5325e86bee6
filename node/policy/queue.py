"""The approval queue (jobs that wait for a person) and the release queue (results that wait for a steward).

Approvals: a job whose decision is NEEDS_APPROVAL is queued by :func:`request_approval` (once per job;
asking again returns the same entry). It is ``pending`` until a person approves or rejects it
(``medfed node approve|reject JOB``, ``POST /admin/v1/approvals/{job}/approve|reject``), or until its
deadline passes, when it is ``timed_out``. The channel asks :func:`approval_state` before it runs any
message of the job, and reports ``timed_out`` and ``rejected`` to the coordinator as such.

Releases: a result whose decision says ``release: steward`` is kept by :func:`hold_result` after the
automatic disclosure checks, as the exact bytes that would have been sent. It is ``held`` until a
steward releases or withholds it (``medfed node release|withhold ID``), or ``timed_out``;
:func:`released_payload` gives the channel the bytes once released.

A deadline that passed is noticed whenever the entry is read (:func:`approval_state`,
:func:`release_state`, the listings) and by :func:`expire_overdue`, which the channel may call on a
timer to report every timeout promptly. Each state change is one conditional UPDATE (``WHERE state =
pending|held``), so two stewards, or a steward and the deadline, cannot both win; the change is then
audited (a separate transaction: the audit chain has its own lock).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from common.errors import ConflictError, InputError, NotFoundError
from node.audit import AuditLog
from node.policy.decision import Decision, Outcome, PolicyJob
from node.store.db import write_transaction
from node.store.models import PolicyApproval, PolicyReleaseHold

__all__ = [
    "Approval",
    "ApprovalState",
    "Hold",
    "ReleaseState",
    "approval_state",
    "decide_approval",
    "decide_release",
    "expire_overdue",
    "get_approval",
    "get_hold",
    "hold_result",
    "list_approvals",
    "list_holds",
    "release_state",
    "released_payload",
    "request_approval",
]

APPROVAL: sa.Table = PolicyApproval.__table__  # type: ignore[attr-defined]
HOLD: sa.Table = PolicyReleaseHold.__table__  # type: ignore[attr-defined]


class ApprovalState(StrEnum):
    """Where a job that needs a person stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    UNKNOWN = "unknown"  # never queued (it did not need a person, or never arrived)


class ReleaseState(StrEnum):
    """Where a held result stands."""

    HELD = "held"
    RELEASED = "released"
    WITHHELD = "withheld"
    TIMED_OUT = "timed_out"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Approval:
    """A queued job (names only: study, researcher, kind, sources and columns; never data)."""

    job_id: str
    study: str
    researcher: str
    kind: str
    rule: str
    job: dict[str, Any]
    state: ApprovalState
    requested_at: int
    deadline_at: int
    decided_at: int | None
    decided_by: str | None
    note: str | None


@dataclass(frozen=True, slots=True)
class Hold:
    """A held result: its summary (sizes, cells, epsilon) and state; the bytes stay in the store."""

    id: int
    job_id: str
    result_ref: str
    summary: dict[str, Any]
    state: ReleaseState
    held_at: int
    deadline_at: int
    decided_at: int | None
    decided_by: str | None


def _now(now: int | None) -> int:
    return time.time_ns() // 1000 if now is None else now


_APPROVAL_COLUMNS = [APPROVAL.c[name] for name in Approval.__dataclass_fields__]
_HOLD_COLUMNS = [HOLD.c[name] for name in Hold.__dataclass_fields__]


def _approval(row: sa.Row[Any]) -> Approval:
    values = dict(row._mapping)
    values["job"] = orjson.loads(values["job"])
    values["state"] = ApprovalState(values["state"])
    return Approval(**values)


def _hold(row: sa.Row[Any]) -> Hold:
    values = dict(row._mapping)
    values["summary"] = orjson.loads(values["summary"])
    values["state"] = ReleaseState(values["state"])
    return Hold(**values)


def _time_out(
    engine: Engine,
    key: sa.Column[Any],
    condition: sa.ColumnElement[bool],
    now: int,
    timed_out: StrEnum,
    *columns: sa.Column[Any],
) -> list[tuple[Any, ...]]:
    """Mark the overdue entries of ``key``'s table (``condition``) timed out; their ``key`` and ``columns``.

    The UPDATE repeats ``condition`` (which requires the waiting state), so an entry decided meanwhile
    is left as it is.
    """
    with engine.connect() as conn:  # the common case, nothing overdue, costs one read and no write lock
        if conn.execute(sa.select(key).where(condition).limit(1)).first() is None:
            return []
    with write_transaction(engine) as conn:
        rows = [tuple(row) for row in conn.execute(sa.select(key, *columns).where(condition))]
        if rows:
            conn.execute(
                key.table.update()
                .where(condition, key.in_([row[0] for row in rows]))
                .values(state=str(timed_out), decided_at=now, decided_by="timeout")
            )
    return rows


# ------------------------------------------------------------------ approvals


def request_approval(
    engine: Engine, audit: AuditLog, job: PolicyJob, decision: Decision, *, now: int | None = None
) -> Approval:
    """Queue ``job`` for a person (its decision must be NEEDS_APPROVAL); the existing entry if queued before."""
    if decision.outcome is not Outcome.NEEDS_APPROVAL or decision.approval_timeout_s is None:
        raise InputError(detail="only a job that needs approval is queued")
    at = _now(now)
    with write_transaction(engine) as conn:
        existing = conn.execute(sa.select(*_APPROVAL_COLUMNS).where(APPROVAL.c.job_id == job.job_id)).first()
        if existing is not None:
            return _approval(existing)
        conn.execute(
            APPROVAL.insert().values(
                job_id=job.job_id,
                study=job.study,
                researcher=job.researcher,
                kind=job.kind,
                rule=decision.rule[:300],
                job=orjson.dumps(job.describe()).decode(),
                state=str(ApprovalState.PENDING),
                requested_at=at,
                deadline_at=at + int(decision.approval_timeout_s * 1_000_000),
            )
        )
    return get_approval(engine, job.job_id)


def get_approval(engine: Engine, job_id: str) -> Approval:
    """The queued job; NotFoundError when there is none."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(*_APPROVAL_COLUMNS).where(APPROVAL.c.job_id == job_id)).first()
    if row is None:
        raise NotFoundError(detail="no such job in the approval queue")
    return _approval(row)


def _expire_approvals(engine: Engine, audit: AuditLog, now: int, job_id: str | None = None) -> list[str]:
    condition = sa.and_(APPROVAL.c.state == str(ApprovalState.PENDING), APPROVAL.c.deadline_at <= now)
    if job_id is not None:
        condition = sa.and_(condition, APPROVAL.c.job_id == job_id)
    rows = _time_out(engine, APPROVAL.c.job_id, condition, now, ApprovalState.TIMED_OUT)
    expired = [str(row[0]) for row in rows]
    for expired_id in expired:
        audit.timed_out(job_id=expired_id, what="approval")
    return expired


def approval_state(engine: Engine, audit: AuditLog, job_id: str, *, now: int | None = None) -> ApprovalState:
    """Is job ``job_id`` approved, pending, rejected or timed out (UNKNOWN: never queued)?"""
    _expire_approvals(engine, audit, _now(now), job_id)
    with engine.connect() as conn:
        state = conn.execute(sa.select(APPROVAL.c.state).where(APPROVAL.c.job_id == job_id)).scalar()
    return ApprovalState.UNKNOWN if state is None else ApprovalState(state)


def decide_approval(
    engine: Engine,
    audit: AuditLog,
    job_id: str,
    *,
    approve: bool,
    actor: str,
    note: str | None = None,
    now: int | None = None,
) -> Approval:
    """Approve or reject a pending job. NotFoundError if it is not queued; ConflictError if not pending."""
    at = _now(now)
    _expire_approvals(engine, audit, at, job_id)
    state = ApprovalState.APPROVED if approve else ApprovalState.REJECTED
    with write_transaction(engine) as conn:
        updated = conn.execute(
            APPROVAL.update()
            .where(APPROVAL.c.job_id == job_id, APPROVAL.c.state == str(ApprovalState.PENDING))
            .values(state=str(state), decided_at=at, decided_by=actor[:200], note=None if note is None else note[:500])
        ).rowcount
    if not updated:
        current = get_approval(engine, job_id)  # NotFoundError when it was never queued
        raise ConflictError(detail=f"the job is {current.state}, not pending")
    audit.job_decided_by_person(job_id=job_id, approved=approve, actor=actor, note=note)
    return get_approval(engine, job_id)


def list_approvals(
    engine: Engine, audit: AuditLog, *, state: ApprovalState | None = None, now: int | None = None
) -> list[Approval]:
    """Queued jobs, oldest first (deadlines that passed are applied first)."""
    _expire_approvals(engine, audit, _now(now))
    stmt = sa.select(*_APPROVAL_COLUMNS).order_by(APPROVAL.c.requested_at, APPROVAL.c.job_id)
    if state is not None:
        stmt = stmt.where(APPROVAL.c.state == str(state))
    with engine.connect() as conn:
        return [_approval(row) for row in conn.execute(stmt)]


# ------------------------------------------------------------------- releases


def hold_result(
    engine: Engine,
    audit: AuditLog,
    *,
    job_id: str,
    result_ref: str,
    payload: bytes,
    summary: Mapping[str, Any],
    timeout_s: float,
    now: int | None = None,
) -> Hold:
    """Keep a result for a steward; the existing hold when this (job, result) was held before.

    ``summary`` is what the steward decides on and what the audit records: sizes, cells, suppressed
    cells, epsilon — counts only, never values.
    """
    at = _now(now)
    with write_transaction(engine) as conn:
        existing = conn.execute(
            sa.select(*_HOLD_COLUMNS).where(HOLD.c.job_id == job_id, HOLD.c.result_ref == result_ref)
        ).first()
        if existing is not None:
            return _hold(existing)
        hold_id = conn.execute(
            HOLD.insert().values(
                job_id=job_id,
                result_ref=result_ref,
                summary=orjson.dumps(dict(summary)).decode(),
                payload=payload,
                state=str(ReleaseState.HELD),
                held_at=at,
                deadline_at=at + int(timeout_s * 1_000_000),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    audit.result_held(job_id=job_id, result_ref=result_ref, summary=summary)
    return get_hold(engine, int(hold_id))


def get_hold(engine: Engine, hold_id: int) -> Hold:
    """The held result; NotFoundError when there is none."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(*_HOLD_COLUMNS).where(HOLD.c.id == hold_id)).first()
    if row is None:
        raise NotFoundError(detail="no such held result")
    return _hold(row)


def _expire_holds(engine: Engine, audit: AuditLog, now: int, hold_id: int | None = None) -> list[tuple[str, str]]:
    condition = sa.and_(HOLD.c.state == str(ReleaseState.HELD), HOLD.c.deadline_at <= now)
    if hold_id is not None:
        condition = sa.and_(condition, HOLD.c.id == hold_id)
    rows = _time_out(engine, HOLD.c.id, condition, now, ReleaseState.TIMED_OUT, HOLD.c.job_id, HOLD.c.result_ref)
    expired = [(str(row[1]), str(row[2])) for row in rows]
    for job_id, ref in expired:
        audit.timed_out(job_id=job_id, what="release", ref=ref)
    return expired


def release_state(engine: Engine, audit: AuditLog, hold_id: int, *, now: int | None = None) -> ReleaseState:
    """Is the held result released, still held, withheld or timed out (UNKNOWN: no such hold)?"""
    _expire_holds(engine, audit, _now(now), hold_id)
    with engine.connect() as conn:
        state = conn.execute(sa.select(HOLD.c.state).where(HOLD.c.id == hold_id)).scalar()
    return ReleaseState.UNKNOWN if state is None else ReleaseState(state)


def decide_release(
    engine: Engine, audit: AuditLog, hold_id: int, *, release: bool, actor: str, now: int | None = None
) -> Hold:
    """Release or withhold a held result. NotFoundError if there is none; ConflictError if it is not held."""
    at = _now(now)
    _expire_holds(engine, audit, at, hold_id)
    state = ReleaseState.RELEASED if release else ReleaseState.WITHHELD
    with write_transaction(engine) as conn:
        updated = conn.execute(
            HOLD.update()
            .where(HOLD.c.id == hold_id, HOLD.c.state == str(ReleaseState.HELD))
            .values(state=str(state), decided_at=at, decided_by=actor[:200])
        ).rowcount
    hold = get_hold(engine, hold_id)
    if not updated:
        raise ConflictError(detail=f"the result is {hold.state}, not held")
    if release:
        audit.result_released(job_id=hold.job_id, result_ref=hold.result_ref, summary=hold.summary, actor=actor)
    else:
        audit.result_withheld(job_id=hold.job_id, result_ref=hold.result_ref, actor=actor)
    return hold


def released_payload(engine: Engine, hold_id: int) -> bytes | None:
    """The held bytes once a steward released them; None while held, withheld or timed out."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(HOLD.c.payload).where(HOLD.c.id == hold_id, HOLD.c.state == str(ReleaseState.RELEASED))
        ).first()
    return None if row is None else bytes(row[0])


def list_holds(
    engine: Engine, audit: AuditLog, *, state: ReleaseState | None = None, now: int | None = None
) -> list[Hold]:
    """Held results, oldest first (deadlines that passed are applied first)."""
    _expire_holds(engine, audit, _now(now))
    stmt = sa.select(*_HOLD_COLUMNS).order_by(HOLD.c.held_at, HOLD.c.id)
    if state is not None:
        stmt = stmt.where(HOLD.c.state == str(state))
    with engine.connect() as conn:
        return [_hold(row) for row in conn.execute(stmt)]


def expire_overdue(engine: Engine, audit: AuditLog, *, now: int | None = None) -> dict[str, list[Any]]:
    """Apply every passed deadline; what timed out now: ``{"approvals": [job ids], "releases": [(job, ref)]}``."""
    at = _now(now)
    return {"approvals": _expire_approvals(engine, audit, at), "releases": _expire_holds(engine, audit, at)}
