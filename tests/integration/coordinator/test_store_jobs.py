"""Jobs: submission with their nodes, forward-only status, rounds with timings, and resumable state."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from common.errors import ConflictError, InputError, NotFoundError
from coordinator.store.jobs import (
    JobNodeStatus,
    JobStatus,
    RoundStatus,
    create_job,
    finish_round,
    get_job,
    list_job_nodes,
    list_jobs,
    list_rounds,
    load_job_state,
    save_job_state,
    set_job_node_status,
    set_job_status,
    start_round,
)
from coordinator.store.nodes import register_node
from tests.integration.coordinator.conftest import new_public_key

SECOND = 1_000_000


@pytest.fixture
def nodes(engine: sa.Engine) -> list[str]:
    """Two enrolled nodes, registered out of name order."""
    return [register_node(engine, name=name, public_key=new_public_key()).id for name in ("Site B", "Site A")]


def test_a_submitted_job_keeps_its_spec_seed_and_nodes(engine: sa.Engine, nodes: list[str]) -> None:
    """create_job stores the spec and a 64-bit seed as given and selects each node once, listed by id."""
    spec = {"handler": "count", "view": "patients", "filters": [{"column": "age", "ge": 18}]}
    job = create_job(
        engine, kind="count", spec=spec, submitter="dr-r", seed=2**63 - 1, node_ids=[*nodes, nodes[0]], now=SECOND
    )
    stored = get_job(engine, job_id=job.id)
    assert stored == job
    assert (stored.spec, stored.seed, stored.status, stored.created_at) == (
        spec,
        2**63 - 1,
        JobStatus.SUBMITTED,
        SECOND,
    )
    assert [(n.node_id, n.status) for n in list_job_nodes(engine, job_id=job.id)] == [
        ("site-a", JobNodeStatus.SELECTED),
        ("site-b", JobNodeStatus.SELECTED),
    ]


def test_jobs_with_unknown_nodes_or_taken_ids_are_not_created(engine: sa.Engine, nodes: list[str]) -> None:
    """An unknown node leaves no job behind; a taken job id is a conflict; bad seeds are input errors."""
    with pytest.raises(NotFoundError):
        create_job(engine, kind="count", spec={}, submitter="r", seed=1, node_ids=[nodes[0], "nobody"], job_id="j1")
    with pytest.raises(NotFoundError):
        get_job(engine, job_id="j1")
    create_job(engine, kind="count", spec={}, submitter="r", seed=1, job_id="j1")
    with pytest.raises(ConflictError):
        create_job(engine, kind="count", spec={}, submitter="r", seed=1, job_id="j1")
    with pytest.raises(InputError):
        create_job(engine, kind="count", spec={}, submitter="r", seed=2**63)


def test_jobs_list_newest_first_and_by_status(engine: sa.Engine) -> None:
    """list_jobs returns the newest first, filtered by status when asked, up to the limit."""
    ids = [create_job(engine, kind="count", spec={}, submitter="r", seed=n, now=n * SECOND).id for n in range(3)]
    set_job_status(engine, job_id=ids[1], status=JobStatus.RUNNING)
    assert [j.id for j in list_jobs(engine)] == ids[::-1]
    assert [j.id for j in list_jobs(engine, limit=2)] == ids[:0:-1]
    assert [j.id for j in list_jobs(engine, status=JobStatus.RUNNING)] == [ids[1]]


def test_job_status_moves_forward_only(engine: sa.Engine) -> None:
    """running sets started_at; a terminal status sets finished_at and the result; nothing follows it."""
    job = create_job(engine, kind="fedavg", spec={}, submitter="r", seed=7)
    with pytest.raises(ConflictError):
        set_job_status(engine, job_id=job.id, status=JobStatus.SUCCEEDED)
    running = set_job_status(engine, job_id=job.id, status=JobStatus.RUNNING, now=2 * SECOND)
    assert (running.status, running.started_at, running.finished_at) == (JobStatus.RUNNING, 2 * SECOND, None)
    done = set_job_status(engine, job_id=job.id, status=JobStatus.SUCCEEDED, result={"auc": 0.8}, now=3 * SECOND)
    assert (done.status, done.finished_at, done.result) == (JobStatus.SUCCEEDED, 3 * SECOND, {"auc": 0.8})
    for status in JobStatus:
        with pytest.raises(ConflictError):
            set_job_status(engine, job_id=job.id, status=status)
    with pytest.raises(NotFoundError):
        set_job_status(engine, job_id="nothing", status=JobStatus.RUNNING)
    failed = create_job(engine, kind="count", spec={}, submitter="r", seed=1)
    record = set_job_status(engine, job_id=failed.id, status=JobStatus.FAILED, error="e" * 600, now=4 * SECOND)
    assert (record.started_at, record.finished_at, record.error) == (None, 4 * SECOND, "e" * 500)


def test_node_status_within_a_job(engine: sa.Engine, nodes: list[str]) -> None:
    """A node's status and detail in a job change; a node outside the job is not found."""
    job = create_job(engine, kind="count", spec={}, submitter="r", seed=1, node_ids=nodes[:1])
    set_job_node_status(engine, job_id=job.id, node_id=nodes[0], status=JobNodeStatus.REFUSED, detail="policy")
    assert [(n.status, n.detail) for n in list_job_nodes(engine, job_id=job.id)] == [(JobNodeStatus.REFUSED, "policy")]
    with pytest.raises(NotFoundError):
        set_job_node_status(engine, job_id=job.id, node_id=nodes[1], status=JobNodeStatus.DONE)


def test_rounds_start_in_running_jobs_and_finish_once(engine: sa.Engine, nodes: list[str]) -> None:
    """A round starts once in a running job and finishes once, with its replies and per-node timings."""
    job = create_job(engine, kind="fedavg", spec={}, submitter="r", seed=1, node_ids=nodes)
    with pytest.raises(ConflictError):
        start_round(engine, job_id=job.id, round=1)
    set_job_status(engine, job_id=job.id, status=JobStatus.RUNNING)
    started = start_round(engine, job_id=job.id, round=1, deadline_at=60 * SECOND, now=SECOND)
    with pytest.raises(ConflictError):
        start_round(engine, job_id=job.id, round=1)
    start_round(engine, job_id=job.id, round=2, now=70 * SECOND)
    per_node = {"site-a": {"train_s": 0.11, "reply_at": 2}, "site-b": {"missed": True}}
    finish_round(
        engine, job_id=job.id, round=1, status=RoundStatus.COMPLETED, replies=1, per_node=per_node, now=5 * SECOND
    )
    with pytest.raises(ConflictError):
        finish_round(engine, job_id=job.id, round=1, status=RoundStatus.FAILED, replies=0, per_node={})
    with pytest.raises(ConflictError):
        finish_round(engine, job_id=job.id, round=2, status=RoundStatus.RUNNING, replies=0, per_node={})
    with pytest.raises(NotFoundError):
        finish_round(engine, job_id=job.id, round=3, status=RoundStatus.FAILED, replies=0, per_node={})
    rounds = list_rounds(engine, job_id=job.id)
    assert rounds[0] == started.__class__(
        job_id=job.id,
        round=1,
        started_at=SECOND,
        deadline_at=60 * SECOND,
        finished_at=5 * SECOND,
        status=RoundStatus.COMPLETED,
        replies=1,
        per_node=per_node,
    )
    assert [(r.round, r.status) for r in rounds] == [(1, RoundStatus.COMPLETED), (2, RoundStatus.RUNNING)]


def test_job_state_is_saved_and_replaced(engine: sa.Engine) -> None:
    """A job has no state until saved; saving again replaces it; unknown jobs are not found."""
    job = create_job(engine, kind="fedavg", spec={}, submitter="r", seed=1)
    assert load_job_state(engine, job_id=job.id) is None
    blob = bytes(range(256)) * 1000
    save_job_state(engine, job_id=job.id, round=1, arrays=blob, strategy_state=b"s1", rng_state=b"r1", now=SECOND)
    save_job_state(
        engine, job_id=job.id, round=2, arrays=blob[::-1], strategy_state=b"s2", rng_state=b"r2", now=2 * SECOND
    )
    state = load_job_state(engine, job_id=job.id)
    assert state is not None
    assert (state.round, state.arrays, state.strategy_state, state.rng_state, state.updated_at) == (
        2,
        blob[::-1],
        b"s2",
        b"r2",
        2 * SECOND,
    )
    with pytest.raises(NotFoundError):
        save_job_state(engine, job_id="nothing", round=1, arrays=b"", strategy_state=b"", rng_state=b"")
