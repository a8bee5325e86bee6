"""Every round's global model of a job, kept so that a researcher can export any round, not only the last.

``job_state`` (:mod:`coordinator.store.jobs`) holds what a job resumes from and is replaced after every
round; ``job_checkpoint`` keeps the model bytes (:mod:`common.models.checkpoints`) of each round, one row
per (job, round). The runner writes both in one transaction after a round, so a checkpoint exists for
every round a job resumes after, and a round run again after a restart writes the same bytes again
(the driver is deterministic; the row is replaced, never duplicated).

**Retention** is bounded per job by a byte budget (the coordinator's ``checkpoint_budget_bytes``, 256 MiB
by default): a job whose rounds x model size fits keeps every round; a larger one keeps every k-th round
(k = ceil(rounds x model size / budget)) and its last round. k depends only on the spec and the model
size, so which rounds exist is known before the job runs (:func:`checkpoint_interval`) and does not
change on resume. A 200-round job keeps every round of models up to 1.3 MB under the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa

from common.ids import JobId
from coordinator.store.db import Db, now_micros, reading, writing
from coordinator.store.models import JobCheckpoint

__all__ = [
    "DEFAULT_BUDGET_BYTES",
    "CheckpointRecord",
    "checkpoint_interval",
    "keeps_round",
    "list_checkpoint_rounds",
    "load_checkpoint",
    "save_checkpoint",
]

DEFAULT_BUDGET_BYTES: Final[int] = 256 * 1024 * 1024
"""Bytes of model checkpoints one job may keep (the coordinator setting's default)."""

JOB_CHECKPOINT: sa.Table = JobCheckpoint.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """The global model of ``job_id`` after ``round``, as model bytes."""

    job_id: JobId
    round: int
    arrays: bytes
    saved_at: int


def checkpoint_interval(*, rounds: int, model_bytes: int, budget_bytes: int) -> int:
    """k: a job of ``rounds`` rounds keeps every k-th round's model (and its last) within ``budget_bytes``."""
    if rounds < 1 or model_bytes < 0 or budget_bytes < 1:
        raise ValueError("rounds and budget_bytes must be positive, model_bytes not negative")
    return max(1, math.ceil(rounds * model_bytes / budget_bytes))


def keeps_round(server_round: int, *, rounds: int, interval: int) -> bool:
    """True when round ``server_round`` of a ``rounds``-round job is kept at interval ``interval``."""
    return server_round % interval == 0 or server_round == rounds


def save_checkpoint(db: Db, *, job_id: str, round: int, arrays: bytes, now: int | None = None) -> None:
    """Keep ``arrays`` as the job's model after ``round``, replacing what that round had (a round run again)."""
    values = {"arrays": arrays, "saved_at": now_micros() if now is None else now}
    with writing(db) as conn:
        key = (JOB_CHECKPOINT.c.job_id == job_id) & (JOB_CHECKPOINT.c.round == round)
        if not conn.execute(JOB_CHECKPOINT.update().where(key).values(**values)).rowcount:
            conn.execute(JOB_CHECKPOINT.insert().values(job_id=job_id, round=round, **values))


def load_checkpoint(db: Db, *, job_id: str, round: int) -> CheckpointRecord | None:
    """The job's model after ``round``, or None when that round is not kept (or has not run)."""
    with reading(db) as conn:
        row = conn.execute(
            sa.select(JOB_CHECKPOINT).where(JOB_CHECKPOINT.c.job_id == job_id, JOB_CHECKPOINT.c.round == round)
        ).first()
    if row is None:
        return None
    return CheckpointRecord(JobId(row.job_id), int(row.round), bytes(row.arrays), int(row.saved_at))


def list_checkpoint_rounds(db: Db, *, job_id: str) -> list[int]:
    """The rounds of the job whose models are kept, in order."""
    with reading(db) as conn:
        rows = conn.execute(
            sa.select(JOB_CHECKPOINT.c.round).where(JOB_CHECKPOINT.c.job_id == job_id).order_by(JOB_CHECKPOINT.c.round)
        )
        return [int(row.round) for row in rows]
