"""Approval and release queues: jobs wait for a person, results for a steward; deadlines turn into timeouts.

Everything is driven the ways a hospital would: the gate (as the channel calls it), the admin API and
the CLI; each decision and each timeout is an audit entry with its actor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from common.errors import ConflictError, NotFoundError
from medfed.cli import app as cli
from node.audit import AuditLog
from node.policy import queue
from node.policy.decision import Outcome
from node.policy.gate import PolicyGate
from node.policy.jobs import job_from_spec
from node.store.db import make_engine
from tests.integration.conftest import NodeClient
from tests.integration.policy_cli import cli_node_with_policy
from tests.unit.policy.cases import POLICY

HOUR = 3_600_000_000
LEARNING = {"kind": "fedavg_mlp", "rounds": 10}


def _audit(node: NodeClient) -> AuditLog:
    log: AuditLog = node.client.app.state.audit_log  # type: ignore[attr-defined]
    return log


def _gate(node: NodeClient, tmp_path: Path) -> PolicyGate:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return PolicyGate(node.engine, _audit(node), path)


def _entries(engine: sa.Engine, *kinds: str) -> list[tuple[str, str, dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, actor, details FROM audit_entry ORDER BY seq")).all()
    return [(row[0], row[1], orjson.loads(row[2])) for row in rows if row[0] in kinds]


def test_a_job_that_needs_a_person_waits_until_approved_over_the_api(node: NodeClient, tmp_path: Path) -> None:
    """A learning job is queued pending; an admin approves it; the gate then says approved; a second decision is 409."""
    gate = _gate(node, tmp_path)
    job = job_from_spec(LEARNING, job_id="job-42", study="diabetes", researcher="alice")
    assert gate.decide_job(job).outcome is Outcome.NEEDS_APPROVAL
    assert gate.approval_state("job-42") is queue.ApprovalState.PENDING
    assert gate.approval_state("never-seen") is queue.ApprovalState.UNKNOWN
    listed = node.client.get("/admin/v1/approvals", params={"state": "pending"}, headers=node.admin)
    assert [(a["job_id"], a["kind"], a["rule"]) for a in listed.json()] == [
        ("job-42", "learning", "studies.diabetes.jobs.learning.approval")
    ]
    assert node.client.get("/admin/v1/approvals", headers=node.clinician).status_code == 403
    approved = node.client.post("/admin/v1/approvals/job-42/approve", json={"note": "IRB 2026-17"}, headers=node.admin)
    assert approved.status_code == 200
    assert approved.json()["state"] == "approved"
    assert gate.approval_state("job-42") is queue.ApprovalState.APPROVED
    again = node.client.post("/admin/v1/approvals/job-42/reject", headers=node.admin)
    assert again.status_code == 409
    assert node.client.post("/admin/v1/approvals/nope/approve", headers=node.admin).status_code == 404
    ((_, actor, details),) = _entries(node.engine, "job.approved")
    assert actor.startswith("token:")
    assert actor.endswith(":admin")
    assert details == {"job_id": "job-42", "note": "IRB 2026-17"}


def test_asking_twice_queues_a_job_once(node: NodeClient, tmp_path: Path) -> None:
    """request_approval for a queued job returns the existing entry (deadline unchanged)."""
    gate = _gate(node, tmp_path)
    job = job_from_spec(LEARNING, job_id="job-1", study="diabetes", researcher="alice")
    decision = gate.evaluate(job)
    first = queue.request_approval(node.engine, _audit(node), job, decision, now=1_000)
    second = queue.request_approval(node.engine, _audit(node), job, decision, now=9_000)
    assert first == second
    assert first.deadline_at == 1_000 + HOUR  # approval_timeout_hours: 1


def test_a_job_nobody_decides_on_times_out_and_is_audited(node: NodeClient, tmp_path: Path) -> None:
    """Past its deadline a pending job reads timed_out (once audited), and can no longer be approved."""
    gate = _gate(node, tmp_path)
    job = job_from_spec(LEARNING, job_id="job-7", study="diabetes", researcher="bob")
    queue.request_approval(node.engine, _audit(node), job, gate.evaluate(job), now=0)
    audit = _audit(node)
    assert queue.approval_state(node.engine, audit, "job-7", now=HOUR - 1) is queue.ApprovalState.PENDING
    assert queue.approval_state(node.engine, audit, "job-7", now=HOUR) is queue.ApprovalState.TIMED_OUT
    assert queue.approval_state(node.engine, audit, "job-7", now=2 * HOUR) is queue.ApprovalState.TIMED_OUT
    with pytest.raises(ConflictError):
        queue.decide_approval(node.engine, audit, "job-7", approve=True, actor="cli:x", now=2 * HOUR)
    assert [details for _, _, details in _entries(node.engine, "job.timed_out")] == [
        {"job_id": "job-7", "result_ref": None}
    ]


def _hold(node: NodeClient, ref: str = "msg-1", *, now: int | None = None) -> queue.Hold:
    return queue.hold_result(
        node.engine,
        _audit(node),
        job_id="job-9",
        result_ref=ref,
        payload=b"\x00reply bytes",
        summary={"cells": 12, "suppressed": 2, "rows": 340, "epsilon": 0.5},
        timeout_s=7200,
        now=now,
    )


def test_a_held_result_leaves_only_when_a_steward_releases_it(node: NodeClient) -> None:
    """The held bytes are not given out while held; after release over the API they are, and it is audited."""
    hold = _hold(node)
    assert queue.released_payload(node.engine, hold.id) is None
    listed = node.client.get("/admin/v1/releases", headers=node.admin).json()
    assert [(h["id"], h["summary"]["cells"], h["state"]) for h in listed] == [(hold.id, 12, "held")]
    assert "payload" not in listed[0]
    response = node.client.post(f"/admin/v1/releases/{hold.id}/release", headers=node.admin)
    assert (response.status_code, response.json()["state"]) == (200, "released")
    assert queue.released_payload(node.engine, hold.id) == b"\x00reply bytes"
    assert node.client.post(f"/admin/v1/releases/{hold.id}/withhold", headers=node.admin).status_code == 409
    kinds = [kind for kind, _, _ in _entries(node.engine, "result.held", "result.released")]
    assert kinds == ["result.held", "result.released"]
    ((_, _, released),) = _entries(node.engine, "result.released")
    assert (released["cells"], released["epsilon"], released["result_ref"]) == (12, 0.5, "msg-1")


def test_a_withheld_or_timed_out_result_never_leaves(node: NodeClient) -> None:
    """Withholding keeps the bytes in; a hold past its deadline is timed out and reported by expire_overdue."""
    withheld = _hold(node, "msg-1")
    queue.decide_release(node.engine, _audit(node), withheld.id, release=False, actor="cli:steward")
    assert queue.released_payload(node.engine, withheld.id) is None
    late = _hold(node, "msg-2", now=0)
    overdue = queue.expire_overdue(node.engine, _audit(node), now=7200 * 1_000_000)
    assert overdue == {"approvals": [], "releases": [("job-9", "msg-2")]}
    assert queue.release_state(node.engine, _audit(node), late.id) is queue.ReleaseState.TIMED_OUT
    assert queue.release_state(node.engine, _audit(node), 999_999) is queue.ReleaseState.UNKNOWN
    with pytest.raises(NotFoundError):
        queue.decide_release(node.engine, _audit(node), 999_999, release=True, actor="cli:steward")


runner = CliRunner()


def test_the_cli_lists_approves_and_rejects(tmp_path: Path) -> None:
    """`approvals` lists pending jobs as JSON lines; `approve`/`reject` decide (exit 1 when not pending)."""
    node = cli_node_with_policy(tmp_path)
    engine, env, gate = node.engine, node.env, node.gate
    for job_id in ("job-a", "job-b"):
        gate.decide_job(job_from_spec(LEARNING, job_id=job_id, study="diabetes", researcher="alice"))
    listed = runner.invoke(cli, ["node", "approvals"], env=env)
    assert listed.exit_code == 0
    assert [orjson.loads(line)["job_id"] for line in listed.stdout.splitlines()] == ["job-a", "job-b"]
    assert runner.invoke(cli, ["node", "approve", "job-a", "--by", "dr-who"], env=env).exit_code == 0
    assert runner.invoke(cli, ["node", "reject", "job-b", "--note", "out of scope"], env=env).exit_code == 0
    assert runner.invoke(cli, ["node", "approve", "job-b"], env=env).exit_code == 1
    assert gate.approval_state("job-a") is queue.ApprovalState.APPROVED
    assert gate.approval_state("job-b") is queue.ApprovalState.REJECTED
    assert runner.invoke(cli, ["node", "approvals"], env=env).stdout == ""
    with engine.connect() as conn:
        actors = conn.execute(sa.text("SELECT actor FROM audit_entry WHERE kind = 'job.approved'")).scalars().all()
    assert actors == ["cli:dr-who"]
    engine.dispose()


def test_the_cli_releases_and_withholds(tmp_path: Path) -> None:
    """`releases` lists held results; `release ID` frees one, `withhold ID` keeps another; repeats exit 1."""
    data = tmp_path / "node"
    env = {"MEDFED_NODE_DATA_DIR": str(data)}
    assert runner.invoke(cli, ["node", "init"], env=env).exit_code == 0
    engine = make_engine(f"sqlite:///{data / 'node.db'}")
    audit = AuditLog.open(engine, data)
    holds = [
        queue.hold_result(engine, audit, job_id="j", result_ref=ref, payload=b"x", summary={"cells": 3}, timeout_s=60)
        for ref in ("r1", "r2")
    ]
    listed = runner.invoke(cli, ["node", "releases"], env=env)
    assert [orjson.loads(line)["id"] for line in listed.stdout.splitlines()] == [hold.id for hold in holds]
    assert runner.invoke(cli, ["node", "release", str(holds[0].id)], env=env).exit_code == 0
    assert runner.invoke(cli, ["node", "withhold", str(holds[1].id)], env=env).exit_code == 0
    assert runner.invoke(cli, ["node", "release", str(holds[1].id)], env=env).exit_code == 1
    assert queue.released_payload(engine, holds[0].id) == b"x"
    assert queue.released_payload(engine, holds[1].id) is None
    engine.dispose()
