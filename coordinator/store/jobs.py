"""Jobs, the nodes taking part in them, their rounds, and the state a job resumes from.

A job's status moves forward only::

    submitted ──▶ running ──▶ succeeded
        │            ├──────▶ failed
        ├────────────┴──────▶ cancelled
        └──────────────────▶ failed

The spec is stored as submitted (a JSON object; the trust step adds its signature). ``job_state``
holds what the round driver needs to resume a job bit for bit after a restart: the arrays, the
strategy's state and the RNG state after the last finished round (opaque bytes here).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from common.errors import ConflictError, ErrorCode, InputError, NotFoundError
from common.ids import JobId, NodeId
from coordinator.store._json import JsonObject, dump_object, load_object
from coordinator.store.db import Db, now_micros, reading, writing
from coordinator.store.models import Job, JobNode, JobRound, JobState
from coordinator.store.nodes import require_enrolled

__all__ = [
    "JobNodeRecord",
    "JobNodeStatus",
    "JobRecord",
    "JobStateRecord",
    "JobStatus",
    "RoundRecord",
    "RoundStatus",
    "create_job",
    "finish_round",
    "get_job",
    "list_job_nodes",
    "list_jobs",
    "list_rounds",
    "load_job_state",
    "save_job_state",
    "set_job_node_status",
    "set_job_status",
    "start_round",
]

JOB: sa.Table = Job.__table__  # type: ignore[attr-defined]
JOB_NODE: sa.Table = JobNode.__table__  # type: ignore[attr-defined]
JOB_ROUND: sa.Table = JobRound.__table__  # type: ignore[attr-defined]
JOB_STATE: sa.Table = JobState.__table__  # type: ignore[attr-defined]
_MAX_TEXT = 500
_INT64 = 2**63


class JobStatus(StrEnum):
    """Where a job stands."""

    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for succeeded, failed and cancelled: nothing follows."""
        return self in _TERMINAL


_TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
_NEXT: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.SUBMITTED: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.RUNNING: _TERMINAL,
}


class JobNodeStatus(StrEnum):
    """One node's part in a job."""

    SELECTED = "selected"  # chosen for the job, not yet answering
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    REFUSED = "refused"  # the node's policy declined the job
    DROPPED = "dropped"  # left out by the driver (deadline missed, revoked)


class RoundStatus(StrEnum):
    """Where a round stands."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job. Times are epoch microseconds."""

    id: JobId
    kind: str
    spec: JsonObject
    submitter: str
    status: JobStatus
    created_at: int
    started_at: int | None
    finished_at: int | None
    error: str | None
    result: JsonObject | None
    seed: int


@dataclass(frozen=True, slots=True)
class JobNodeRecord:
    """One node's part in one job."""

    job_id: JobId
    node_id: NodeId
    status: JobNodeStatus
    detail: str | None


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """One round of one job; ``per_node`` maps node ids to their timings and outcome."""

    job_id: JobId
    round: int
    started_at: int
    deadline_at: int | None
    finished_at: int | None
    status: RoundStatus
    replies: int
    per_node: JsonObject


@dataclass(frozen=True, slots=True)
class JobStateRecord:
    """What a job resumes from: the state after ``round``."""

    job_id: JobId
    round: int
    arrays: bytes
    strategy_state: bytes
    rng_state: bytes
    updated_at: int


def _job(row: sa.Row[Any]) -> JobRecord:
    values = row._mapping
    return JobRecord(
        id=JobId(values["id"]),
        kind=values["kind"],
        spec=load_object(values["spec"]) or {},
        submitter=values["submitter"],
        status=JobStatus(values["status"]),
        created_at=int(values["created_at"]),
        started_at=values["started_at"],
        finished_at=values["finished_at"],
        error=values["error"],
        result=load_object(values["result"]),
        seed=int(values["seed"]),
    )


def _round(row: sa.Row[Any]) -> RoundRecord:
    values = row._mapping
    return RoundRecord(
        job_id=JobId(values["job_id"]),
        round=int(values["round"]),
        started_at=int(values["started_at"]),
        deadline_at=values["deadline_at"],
        finished_at=values["finished_at"],
        status=RoundStatus(values["status"]),
        replies=int(values["replies"]),
        per_node=load_object(values["per_node"]) or {},
    )


def _time(now: int | None) -> int:
    return now_micros() if now is None else now


def _text(value: str | None) -> str | None:
    return None if value is None else value[:_MAX_TEXT]


def create_job(
    db: Db,
    *,
    kind: str,
    spec: Mapping[str, Any],
    submitter: str,
    seed: int,
    node_ids: Collection[str] = (),
    job_id: str | None = None,
    now: int | None = None,
) -> JobRecord:
    """Record a submitted job and its nodes (each ``selected``); the id is a new UUID unless given.

    NotFoundError for an unknown node, AccessError (forbidden) for a revoked one, ConflictError
    when ``job_id`` is taken, InputError for a seed outside 64 bits or a spec that is not an object.
    """
    if not -_INT64 <= seed < _INT64:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="seed outside 64 bits", hints=["seed: range"])
    if not kind or len(kind) > 64 or not submitter or len(submitter) > 200:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="kind or submitter empty or too long")
    record = JobRecord(
        id=JobId(job_id or str(uuid.uuid4())),
        kind=kind,
        spec=dict(spec),
        submitter=submitter,
        status=JobStatus.SUBMITTED,
        created_at=_time(now),
        started_at=None,
        finished_at=None,
        error=None,
        result=None,
        seed=seed,
    )
    spec_text = dump_object(spec, what="spec")
    with writing(db) as conn:
        if conn.execute(sa.select(JOB.c.id).where(JOB.c.id == record.id)).first() is not None:
            raise ConflictError(detail="a job with this id exists")
        for node_id in node_ids:
            require_enrolled(conn, node_id=node_id)
        conn.execute(
            JOB.insert().values(
                id=record.id,
                kind=kind,
                spec=spec_text,
                submitter=submitter,
                status=str(record.status),
                created_at=record.created_at,
                seed=seed,
            )
        )
        if node_ids:
            conn.execute(
                JOB_NODE.insert(),
                [{"job_id": record.id, "node_id": n, "status": str(JobNodeStatus.SELECTED)} for n in set(node_ids)],
            )
    return record


def get_job(db: Db, *, job_id: str) -> JobRecord:
    """The job with this id; NotFoundError when there is none."""
    with reading(db) as conn:
        row = conn.execute(sa.select(JOB).where(JOB.c.id == job_id)).first()
    if row is None:
        raise NotFoundError(detail="no such job")
    return _job(row)


def list_jobs(db: Db, *, status: JobStatus | None = None, limit: int = 100) -> list[JobRecord]:
    """Jobs (or those with ``status``), newest first, at most ``limit``."""
    query = sa.select(JOB).order_by(JOB.c.created_at.desc(), JOB.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(JOB.c.status == str(status))
    with reading(db) as conn:
        return [_job(row) for row in conn.execute(query)]


def set_job_status(
    db: Db,
    *,
    job_id: str,
    status: JobStatus,
    error: str | None = None,
    result: Mapping[str, Any] | None = None,
    now: int | None = None,
) -> JobRecord:
    """Move a job forward; sets ``started_at`` on running and ``finished_at`` on a terminal status.

    ``error`` (at most 500 characters kept) and ``result`` are stored when given. NotFoundError for
    an unknown job; ConflictError for a move the diagram above does not allow (from a terminal
    status, or backwards), so two drivers cannot both finish one job.
    """
    at = _time(now)
    values: dict[str, Any] = {"status": str(status)}
    if status is JobStatus.RUNNING:
        values["started_at"] = at
    if status.is_terminal:
        values["finished_at"] = at
    if error is not None:
        values["error"] = _text(error)
    if result is not None:
        values["result"] = dump_object(result, what="result", max_bytes=64 * 1024 * 1024)
    allowed_from = [str(old) for old, targets in _NEXT.items() if status in targets]
    with writing(db) as conn:
        updated = conn.execute(JOB.update().where(JOB.c.id == job_id, JOB.c.status.in_(allowed_from)).values(**values))
        if not updated.rowcount:
            get_job(conn, job_id=job_id)  # NotFoundError when absent
            raise ConflictError(detail=f"a job cannot move to {status} from its status")
        return get_job(conn, job_id=job_id)


def set_job_node_status(db: Db, *, job_id: str, node_id: str, status: JobNodeStatus, detail: str | None = None) -> None:
    """Set one node's status in a job (and its detail, replaced); NotFoundError when the node is not in the job."""
    with writing(db) as conn:
        result = conn.execute(
            JOB_NODE.update()
            .where(JOB_NODE.c.job_id == job_id, JOB_NODE.c.node_id == node_id)
            .values(status=str(status), detail=_text(detail))
        )
    if not result.rowcount:
        raise NotFoundError(detail="the node is not part of this job")


def list_job_nodes(db: Db, *, job_id: str) -> list[JobNodeRecord]:
    """The nodes of a job, ordered by node id."""
    with reading(db) as conn:
        rows = conn.execute(sa.select(JOB_NODE).where(JOB_NODE.c.job_id == job_id).order_by(JOB_NODE.c.node_id))
        return [
            JobNodeRecord(
                job_id=JobId(row.job_id),
                node_id=NodeId(row.node_id),
                status=JobNodeStatus(row.status),
                detail=row.detail,
            )
            for row in rows
        ]


def start_round(
    db: Db,
    *,
    job_id: str,
    round: int,  # the column's name: a Flower round number
    deadline_at: int | None = None,
    now: int | None = None,
) -> RoundRecord:
    """Record that a round of a running job has started; ConflictError when it exists or the job is not running."""
    at = _time(now)
    with writing(db) as conn:
        if get_job(conn, job_id=job_id).status is not JobStatus.RUNNING:
            raise ConflictError(detail="rounds start only in running jobs")
        exists = conn.execute(
            sa.select(JOB_ROUND.c.round).where(JOB_ROUND.c.job_id == job_id, JOB_ROUND.c.round == round)
        ).first()
        if exists is not None:
            raise ConflictError(detail="this round has started already")
        conn.execute(
            JOB_ROUND.insert().values(
                job_id=job_id,
                round=round,
                started_at=at,
                deadline_at=deadline_at,
                status=str(RoundStatus.RUNNING),
                replies=0,
                per_node="{}",
            )
        )
    return RoundRecord(
        job_id=JobId(job_id),
        round=round,
        started_at=at,
        deadline_at=deadline_at,
        finished_at=None,
        status=RoundStatus.RUNNING,
        replies=0,
        per_node={},
    )


def finish_round(
    db: Db,
    *,
    job_id: str,
    round: int,  # the column's name: a Flower round number
    status: RoundStatus,
    replies: int,
    per_node: Mapping[str, Any],
    now: int | None = None,
) -> None:
    """Close a running round with its outcome, reply count and per-node timings.

    NotFoundError when the round was never started; ConflictError when it is finished already or
    ``status`` is ``running``.
    """
    if status is RoundStatus.RUNNING:
        raise ConflictError(detail="a round finishes as completed or failed")
    per_node_text = dump_object(per_node, what="per_node")
    with writing(db) as conn:
        result = conn.execute(
            JOB_ROUND.update()
            .where(
                JOB_ROUND.c.job_id == job_id,
                JOB_ROUND.c.round == round,
                JOB_ROUND.c.status == str(RoundStatus.RUNNING),
            )
            .values(status=str(status), replies=replies, per_node=per_node_text, finished_at=_time(now))
        )
        if not result.rowcount:
            exists = conn.execute(
                sa.select(JOB_ROUND.c.round).where(JOB_ROUND.c.job_id == job_id, JOB_ROUND.c.round == round)
            ).first()
            if exists is None:
                raise NotFoundError(detail="no such round")
            raise ConflictError(detail="this round has finished already")


def list_rounds(db: Db, *, job_id: str) -> list[RoundRecord]:
    """The rounds of a job, in round order."""
    with reading(db) as conn:
        rows = conn.execute(sa.select(JOB_ROUND).where(JOB_ROUND.c.job_id == job_id).order_by(JOB_ROUND.c.round))
        return [_round(row) for row in rows]


def save_job_state(
    db: Db,
    *,
    job_id: str,
    round: int,  # the column's name: the round this state follows
    arrays: bytes,
    strategy_state: bytes,
    rng_state: bytes,
    now: int | None = None,
) -> None:
    """Keep the state a job resumes from, replacing the previous one; NotFoundError for an unknown job."""
    values = {
        "round": round,
        "arrays": arrays,
        "strategy_state": strategy_state,
        "rng_state": rng_state,
        "updated_at": _time(now),
    }
    with writing(db) as conn:
        get_job(conn, job_id=job_id)
        updated = conn.execute(JOB_STATE.update().where(JOB_STATE.c.job_id == job_id).values(**values))
        if not updated.rowcount:
            conn.execute(JOB_STATE.insert().values(job_id=job_id, **values))


def load_job_state(db: Db, *, job_id: str) -> JobStateRecord | None:
    """The state a job resumes from, or None when it has none yet."""
    with reading(db) as conn:
        row = conn.execute(sa.select(JOB_STATE).where(JOB_STATE.c.job_id == job_id)).first()
    if row is None:
        return None
    return JobStateRecord(
        job_id=JobId(row.job_id),
        round=int(row.round),
        arrays=bytes(row.arrays),
        strategy_state=bytes(row.strategy_state),
        rng_state=bytes(row.rng_state),
        updated_at=int(row.updated_at),
    )
