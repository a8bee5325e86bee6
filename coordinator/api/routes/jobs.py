"""Jobs: researchers submit them signed; researchers and admins cancel them; every role reads them.

A submission carries the job signed by a registered researcher (:mod:`common.trust.jobs`; the SDK and
``medfed job submit --key`` sign). Before anything is stored the coordinator checks, and refuses early
with the code a node would give: the token belongs to a registered researcher, the document is signed
with that researcher's key (``job_signature_invalid``) and fresh (``job_stale``), the study is one of the
researcher's (``researcher_not_in_study``), the spec is a built-in kind already in its normal form
(:mod:`coordinator.federation.jobs.specs`; signing what nodes will compare message by message), and the
document was never submitted before (``job_replayed``). The job is stored with the normal spec, the
researcher's name as submitter, and the signed document, which goes with every message of the job to
the nodes; they verify it for themselves (``docs/trust.md``). The job's nodes are the enrolled nodes
online at submission; the runner (``app.state.runner``) starts it at once in a worker thread.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from common.crypto import VerifyKey
from common.errors import AccessError, ConflictError, ErrorCode, InputError, NotFoundError
from common.trust import read_signed_job
from common.trust.jobs import DEFAULT_MAX_AGE_S, DEFAULT_MAX_SKEW_S
from coordinator.api.deps import Authenticated, EngineDep, SettingsDep
from coordinator.federation.jobs.specs import parse_spec
from coordinator.federation.runner import JobRunner
from coordinator.store import checkpoints, jobs, nodes, researchers
from coordinator.store.db import now_micros, write_transaction
from coordinator.store.tokens import Principal, Role

__all__ = ["JobDetail", "JobList", "JobResults", "JobSubmission", "JobView", "router"]

router = APIRouter(prefix="/api")


def _submitter(principal: Authenticated) -> Principal:
    if principal.role not in (Role.ADMIN, Role.RESEARCHER):
        raise AccessError(ErrorCode.FORBIDDEN)
    return principal


Submitter = Annotated[Principal, Depends(_submitter)]


def _runner(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.runner
    return runner


RunnerDep = Annotated[JobRunner, Depends(_runner)]


def _instant(micros: int | None) -> datetime | None:
    return None if micros is None else datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


class JobSubmission(BaseModel):
    """A job to run: the researcher's signed job (its spec a built-in kind in normal form) and, optionally, its
    seed (a random one otherwise). A bare ``spec`` is refused with ``job_not_signed``."""

    model_config = ConfigDict(extra="forbid")

    signed: dict[str, Any] | None = None
    spec: dict[str, Any] | None = Field(default=None, description="Not accepted any more: sign the job.")
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)


class JobView(BaseModel):
    """One job's summary (times in UTC)."""

    id: str
    kind: str
    status: jobs.JobStatus
    submitter: str
    seed: int
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, job: jobs.JobRecord) -> JobView:
        """The view of ``job``."""
        created = _instant(job.created_at)
        assert created is not None
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status,
            submitter=job.submitter,
            seed=job.seed,
            spec=job.spec,
            created_at=created,
            started_at=_instant(job.started_at),
            finished_at=_instant(job.finished_at),
            error=job.error,
        )


class JobNodeView(BaseModel):
    """One node's part in a job."""

    node_id: str
    status: jobs.JobNodeStatus
    detail: str | None


class RoundView(BaseModel):
    """One round: timings, replies, and each node's outcome per phase (``train_ms``: reply time)."""

    round: int
    status: jobs.RoundStatus
    started_at: datetime
    deadline_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    replies: int
    per_node: dict[str, Any]


class JobDetail(JobView):
    """A job with its nodes and rounds."""

    nodes: list[JobNodeView]
    rounds: list[RoundView]


class JobList(BaseModel):
    """Jobs, newest first."""

    jobs: list[JobView]


class JobResults(BaseModel):
    """An ended job's outcome: its result on success, its reason on failure."""

    id: str
    status: jobs.JobStatus
    result: dict[str, Any] | None
    error: str | None


def _detail(engine: EngineDep, job_id: str) -> JobDetail:
    job = jobs.get_job(engine, job_id=job_id)
    rounds = [
        RoundView(
            round=r.round,
            status=r.status,
            started_at=_instant(r.started_at) or datetime.now(UTC),
            deadline_at=_instant(r.deadline_at),
            finished_at=_instant(r.finished_at),
            duration_ms=None if r.finished_at is None else round((r.finished_at - r.started_at) / 1000, 1),
            replies=r.replies,
            per_node=r.per_node,
        )
        for r in jobs.list_rounds(engine, job_id=job_id)
    ]
    parts = [
        JobNodeView(node_id=p.node_id, status=p.status, detail=p.detail)
        for p in jobs.list_job_nodes(engine, job_id=job_id)
    ]
    return JobDetail(**JobView.of(job).model_dump(), nodes=parts, rounds=rounds)


@router.post("/jobs", name="submit_job", status_code=201)
def submit_job(
    body: JobSubmission, principal: Submitter, engine: EngineDep, settings: SettingsDep, runner: RunnerDep
) -> JobDetail:
    """Check the signed job (see the module docstring), record it and start it; 400 for an unknown kind or an
    invalid spec, 403 for a job its researcher did not sign validly, 409 for one submitted before."""
    signed = read_signed_job(body.signed)  # 400 job_not_signed for a submission without a signed job
    researcher = researchers.researcher_for_token(engine, token_id=principal.token_id)
    if researcher is None or researcher.revoked_at is not None:
        raise AccessError(ErrorCode.RESEARCHER_UNKNOWN, detail="the token belongs to no registered researcher")
    signed.verify(VerifyKey.from_text(researcher.public_key))
    signed.check_fresh(now=time.time(), max_age_s=DEFAULT_MAX_AGE_S, max_skew_s=DEFAULT_MAX_SKEW_S)
    certificate = researchers.current_membership(engine, researcher=researcher.name)
    if certificate is None:
        raise AccessError(ErrorCode.RESEARCHER_UNKNOWN, detail="the researcher's membership has expired")
    if signed.study not in certificate["body"]["studies"]:
        raise AccessError(ErrorCode.RESEARCHER_NOT_IN_STUDY, detail="the study is not one of the researcher's")
    spec = parse_spec(signed.spec)
    normal = spec.model_dump(mode="json")
    if normal != signed.spec:
        raise InputError(detail="the signed spec is not in normal form", hints=["signed.spec: not normalised"])
    if normal.get("study") not in (None, signed.study):
        raise InputError(detail="the spec names another study", hints=["signed.spec.study: not the signed study"])
    now = now_micros()
    online = [
        node.id
        for node in nodes.list_nodes(engine, status=nodes.NodeStatus.ENROLLED)
        if node.is_online(now=now, offline_after_s=settings.node_offline_after_s)
    ]
    try:
        with write_transaction(engine) as conn:
            job = jobs.create_job(
                conn,
                kind=spec.kind,
                spec=normal,
                submitter=researcher.name,
                seed=secrets.randbits(63) if body.seed is None else body.seed,
                node_ids=online,
            )
            researchers.keep_job_signature(
                conn, job_id=job.id, researcher=researcher.name, digest=signed.digest, document=body.signed or {}
            )
    except ConflictError as exc:
        raise ConflictError(ErrorCode.JOB_REPLAYED, detail=exc.detail, hints=exc.hints) from None
    runner.submit(job.id)
    return _detail(engine, job.id)


@router.get("/jobs", name="list_jobs")
def get_jobs(_reader: Authenticated, engine: EngineDep) -> JobList:
    """The latest jobs (at most 100), newest first."""
    return JobList(jobs=[JobView.of(job) for job in jobs.list_jobs(engine)])


@router.get("/jobs/{job_id}", name="get_job")
def get_job(job_id: str, _reader: Authenticated, engine: EngineDep) -> JobDetail:
    """The job with its per-node status and its rounds with timings."""
    return _detail(engine, job_id)


@router.get("/jobs/{job_id}/results", name="get_job_results")
def get_job_results(job_id: str, _reader: Authenticated, engine: EngineDep) -> JobResults:
    """The outcome of an ended job; 409 while it has not ended."""
    job = jobs.get_job(engine, job_id=job_id)
    if not job.status.is_terminal:
        raise ConflictError(detail="the job has not ended")
    return JobResults(id=job.id, status=job.status, result=job.result, error=job.error)


MODEL_MEDIA_TYPE = "application/vnd.medfed.model"
"""Model bytes (:mod:`common.models.checkpoints`): a JSON header of names, dtypes and shapes, then the arrays."""


@router.get("/jobs/{job_id}/model", name="get_job_model")
def get_job_model(
    job_id: str,
    _reader: Authenticated,
    engine: EngineDep,
    round: Annotated[int | None, Query(ge=1, description="A completed round; default: the last one.")] = None,
) -> Response:
    """The job's model as saved after its last completed round (its checkpoint; the final model once the job
    has succeeded), or after ``round`` (:mod:`coordinator.store.checkpoints`); ``X-Medfed-Round`` names that
    round. 404 before a round has completed, for a round not kept, or for a job kind without a model."""
    job = jobs.get_job(engine, job_id=job_id)
    state = jobs.load_job_state(engine, job_id=job_id)
    if state is None:
        raise NotFoundError(detail="no model saved for this job yet", hints=["model: no completed round"])
    arrays, server_round = state.arrays, state.round
    if round is not None and round != state.round:
        kept = checkpoints.load_checkpoint(engine, job_id=job_id, round=round)
        if kept is None:
            raise NotFoundError(detail="no model kept for this round", hints=["round: not a kept, completed round"])
        arrays, server_round = kept.arrays, kept.round
    final = job.status is jobs.JobStatus.SUCCEEDED and server_round == state.round
    headers = {"X-Medfed-Round": str(server_round), "X-Medfed-Final": "true" if final else "false"}
    return Response(content=arrays, media_type=MODEL_MEDIA_TYPE, headers=headers)


@router.post("/jobs/{job_id}/cancel", name="cancel_job")
async def cancel_job(job_id: str, _submitter: Submitter, engine: EngineDep, runner: RunnerDep) -> JobDetail:
    """Cancel a submitted or running job (its worker stops before the next round); 409 once it has ended."""
    await run_in_threadpool(runner.cancel, job_id)
    return await run_in_threadpool(_detail, engine, job_id)
