"""The node's policy decides every job before it runs: jobs end to end over the TLS channel.

A coordinator serves its REST API and runner; two enrolled nodes run their channels with the node's
policy gate (as ``medfed node serve`` does). Node "open" keeps the starter policy ``init_node`` wrote;
each test gives node "strict" its own policy. Each node's ``count`` app records its calls, so a test can
show that a refused or waiting job never ran.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from common.analytics.task import decode_refusal
from common.errors import ErrorCode
from common.flower import message_from_bytes
from coordinator.federation.runner import JobRunner
from coordinator.store import messages
from medfed.cli import app as cli
from medfed.sdk import Federation
from node.audit import AuditKind, AuditLog
from node.config import NodeSettings
from node.coordinator_client import CoordinatorClient
from node.federation.apps.count import count_app
from node.federation.channel import ChannelRunner
from node.federation.host import POLICY_ERROR_CODE, ClientAppHost, InstalledApp
from node.fhir.service import FhirService
from node.identity import NodeIdentity, enrol
from node.policy import queue
from node.policy.admission import JobAdmissions, Verdict
from node.policy.gate import PolicyGate
from node.policy.model import load_policy
from node.policy.starter import starter_policy
from node.runtime import init_node, open_service
from node.store import audit_chain
from node.trust import JobTrust
from tests.integration.network import tls_coordinator
from tests.integration.test_channel import _patient
from tests.integration.test_enrolment import Coordinator
from tests.researchers import STUDY, Researcher, add_researcher, signed_envelope

JOB_WAIT_S = 60
PATIENTS = {"open": 4, "strict": 6}


@dataclass
class PolicyNode:
    """An enrolled node whose channel asks its policy before running anything."""

    settings: NodeSettings
    identity: NodeIdentity
    service: FhirService
    audit: AuditLog
    runner: ChannelRunner
    trust: JobTrust
    counted: list[int] = field(default_factory=list)

    def write_policy(self, text: str) -> None:
        """Replace the node's policy file (the gate re-reads it on the next job)."""
        path = self.settings.policy_path
        path.write_text(text, encoding="utf-8")
        load_policy(path)  # a test's policy is valid

    def entries(self, kind: AuditKind, job_id: str) -> list[dict[str, Any]]:
        """The details of the node's audit entries of ``kind`` for ``job_id``."""
        found = (orjson.loads(row.details) for row in audit_chain.iter_entries(self.service.engine, kind=str(kind)))
        return [details for details in found if details.get("job_id") == job_id]


@dataclass
class Network:
    """The coordinator, its two nodes, and a researcher's client."""

    coordinator: Coordinator
    nodes: dict[str, PolicyNode]
    researcher: Federation
    who: Researcher

    def finished(self, job_id: str) -> dict[str, Any]:
        """The job once its worker has ended (joined, not polled)."""
        runner: JobRunner = self.coordinator.app.state.runner
        assert runner.join(job_id, JOB_WAIT_S), "the job did not end in time"
        return self.researcher.job(job_id)

    def replies_from(self, node: PolicyNode, job_id: str) -> list[Any]:
        """The Flower replies the coordinator kept from ``node`` for ``job_id``."""
        table = messages.MESSAGE
        query = sa.select(table.c.id).where(table.c.job_id == job_id, table.c.node_id == node.identity.node_id)
        with self.coordinator.engine.connect() as conn:
            ids = [str(row[0]) for row in conn.execute(query)]
        assert ids, "no message was sent to the node"
        return [message_from_bytes(r.payload) for r in messages.fetch_replies(self.coordinator.engine, message_ids=ids)]


def _until(condition: Callable[[], bool], timeout: float = JOB_WAIT_S) -> bool:
    """Whether ``condition`` became true within ``timeout`` s (checked every 50 ms)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.05)
    return True


def _policy(jobs: str) -> str:
    """A policy whose "*" study admits every researcher and source and runs the given ``jobs`` block."""
    return f"""
version: 1
studies:
  "*":
    researchers: ["*"]
    sources: [{{view: "*", columns: "*"}}, {{dataset: "*", columns: "*"}}]
    jobs: {jobs}
"""


def _start_node(coordinator: Coordinator, node_dir: Path, name: str) -> PolicyNode:
    settings = NodeSettings(data_dir=node_dir)
    init_node(settings)
    service = open_service(settings)
    for i in range(PATIENTS[name]):
        service.create(_patient(i))
    identity = enrol(node_dir, coordinator.code(f"Policy {name} {uuid.uuid4().hex[:6]}"), version="test")
    audit = AuditLog.open(service.engine, node_dir)
    counted: list[int] = []

    def count_patients() -> int:
        counted.append(PATIENTS[name])
        return PATIENTS[name]

    host = ClientAppHost(node_id=identity.flower_node_id, apps={"count": InstalledApp(count_app(count_patients))})
    trust = JobTrust(service.engine, identity.network_admin_public_key)
    runner = ChannelRunner(
        CoordinatorClient(identity),
        host,
        service.engine,
        version="test",
        poll_wait_s=1,
        heartbeat_s=1,
        admissions=JobAdmissions(
            PolicyGate(service.engine, audit, settings.policy_path),
            audit,
            trust,
        ),
        approval_check_s=0.1,
    )
    runner.start()
    assert runner.connected.wait(30), "the node never reached the coordinator"
    return PolicyNode(settings, identity, service, audit, runner, trust, counted)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A coordinator over TLS with the two nodes connected and a researcher's client."""
    with tls_coordinator(tmp_path_factory, "policy-coordinator") as (coordinator, data, ca_file):
        nodes: dict[str, PolicyNode] = {}
        who = add_researcher(coordinator.engine, data, data / "keys")
        researcher = who.federation(coordinator.url, ca_file)
        try:
            for name in PATIENTS:
                nodes[name] = _start_node(coordinator, tmp_path_factory.mktemp(f"policy-{name}"), name)
            yield Network(coordinator, nodes, researcher, who)
        finally:
            researcher.close()
            for node in nodes.values():
                node.runner.stop()
                node.service.engine.dispose()


def test_init_writes_the_permissive_starter_policy_and_a_count_runs_under_it(network: Network) -> None:
    """A new node gets the starter policy (its header says so and points to the example); under it a
    count runs at every node, and each node audits the job's arrival and one ALLOW decision."""
    opened, strict = network.nodes["open"], network.nodes["strict"]
    text = opened.settings.policy_path.read_text(encoding="utf-8")
    assert "PERMISSIVE STARTER POLICY" in text
    assert "deploy/policy.example.yaml" in text
    assert text == starter_policy()
    strict.write_policy(starter_policy())

    job = network.researcher.submit({"kind": "count"})
    done = network.finished(job["id"])

    assert done["status"] == "succeeded", done["error"]
    assert network.researcher.results(job["id"])["result"] == {"total": sum(PATIENTS.values()), "nodes": 2}
    for node in (opened, strict):
        (received,) = node.entries(AuditKind.JOB_RECEIVED, job["id"])
        assert (received["job_kind"], received["study"], received["researcher"]) == ("count", STUDY, network.who.name)
        (decision,) = node.entries(AuditKind.POLICY_DECISION, job["id"])
        assert (decision["outcome"], decision["rule"]) == ("allow", "studies.*.jobs.count.approval")


def test_a_kind_the_policy_refuses_fails_the_job_and_never_runs_the_app(network: Network) -> None:
    """A count at a node whose policy lists no count jobs is answered with an error reply carrying
    ``job_refused_by_policy`` and the rule; the job fails, the node audits the refusal, and its count
    app is never called."""
    strict = network.nodes["strict"]
    strict.write_policy(_policy("{analysis: {approval: auto, analyses: [count]}}"))
    calls_before = len(strict.counted)

    job = network.researcher.submit({"kind": "count"})
    done = network.finished(job["id"])

    assert done["status"] == "failed"
    assert len(strict.counted) == calls_before
    (decision,) = strict.entries(AuditKind.POLICY_DECISION, job["id"])
    assert (decision["outcome"], decision["rule"]) == ("refuse", "studies.*.jobs")
    (reply,) = network.replies_from(strict, job["id"])
    assert reply.has_error()
    assert reply.error.code == POLICY_ERROR_CODE
    assert decode_refusal(reply.error.reason or "") == (ErrorCode.JOB_REFUSED_BY_POLICY, ("rule: studies.*.jobs",))


def test_an_analysis_the_policy_refuses_fails_with_the_policy_reason(network: Network) -> None:
    """An analysis the node's policy does not list fails at the coordinator with the catalog code and the
    deciding rule as its error (the node answers before anything reads its data)."""
    strict = network.nodes["strict"]
    strict.write_policy(_policy("{count: {approval: auto}, analysis: {approval: auto, analyses: [moments]}}"))
    spec = {
        "analysis": "count",
        "params": {},
        "source": {"dataset": "heart"},
        "nodes": [strict.identity.node_id],
    }

    job = network.researcher.submit_analysis(spec)
    done = network.finished(job["id"])

    assert done["status"] == "failed"
    assert "job_refused_by_policy" in done["error"]
    assert "studies.*.jobs.analysis.analyses" in done["error"]
    (decision,) = strict.entries(AuditKind.POLICY_DECISION, job["id"])
    assert decision["outcome"] == "refuse"


def test_a_job_that_needs_approval_waits_and_runs_once_approved(network: Network) -> None:
    """A count whose kind waits for a person is held at the node (queued as pending, the app not called)
    until ``medfed node approve JOB``; then it runs and the job succeeds with every node's count."""
    strict = network.nodes["strict"]
    strict.write_policy(_policy("{count: {approval: person}}"))
    calls_before = len(strict.counted)

    job = network.researcher.submit({"kind": "count", "round_timeout_s": 120})
    assert _until(lambda: strict.runner.held_messages().get(job["id"]) == 1), "the message was never held"
    (waiting,) = [a for a in queue.list_approvals(strict.service.engine, strict.audit) if a.job_id == job["id"]]
    assert waiting.state is queue.ApprovalState.PENDING
    assert len(strict.counted) == calls_before
    assert network.researcher.job(job["id"])["status"] == "running"

    approved = CliRunner().invoke(cli, ["node", "approve", job["id"], "--data-dir", str(strict.settings.data_dir)])
    assert approved.exit_code == 0, approved.output
    done = network.finished(job["id"])

    assert done["status"] == "succeeded", done["error"]
    assert network.researcher.results(job["id"])["result"] == {"total": sum(PATIENTS.values()), "nodes": 2}
    assert len(strict.counted) == calls_before + 1
    assert strict.entries(AuditKind.JOB_APPROVED, job["id"])
    (decision,) = strict.entries(AuditKind.POLICY_DECISION, job["id"])
    assert decision["outcome"] == "needs_approval"


def test_a_job_a_person_rejects_is_answered_with_the_rejection_and_never_runs(network: Network) -> None:
    """A held job that a person rejects is answered ``job_approval_rejected``; the job fails and the app
    is never called."""
    strict = network.nodes["strict"]
    strict.write_policy(_policy("{count: {approval: person, release: auto}}"))
    calls_before = len(strict.counted)

    job = network.researcher.submit({"kind": "count", "round_timeout_s": 120})
    assert _until(lambda: strict.runner.held_messages().get(job["id"]) == 1), "the message was never held"
    queue.decide_approval(strict.service.engine, strict.audit, job["id"], approve=False, actor="steward")
    done = network.finished(job["id"])

    assert done["status"] == "failed"
    assert len(strict.counted) == calls_before
    (reply,) = network.replies_from(strict, job["id"])
    assert decode_refusal(reply.error.reason or "")[0] is ErrorCode.JOB_APPROVAL_REJECTED


def test_a_held_message_past_its_deadline_is_dropped_and_an_approval_after_it_runs_nothing(
    network: Network,
) -> None:
    """A job that waits past its round deadline fails at the coordinator; the node drops the held message,
    so approving the job afterwards runs nothing."""
    strict = network.nodes["strict"]
    strict.write_policy(_policy("{count: {approval: person, release: steward}}"))
    calls_before = len(strict.counted)

    job = network.researcher.submit({"kind": "count", "round_timeout_s": 1})
    assert _until(lambda: strict.runner.held_messages().get(job["id"]) == 1), "the message was never held"
    done = network.finished(job["id"])
    assert done["status"] == "failed"
    assert _until(lambda: job["id"] not in strict.runner.held_messages()), "the held message was never dropped"
    queue.decide_approval(strict.service.engine, strict.audit, job["id"], approve=True, actor="steward")

    assert len(strict.counted) == calls_before
    assert network.replies_from(strict, job["id"]) == []


def test_the_policy_decides_once_per_job_however_many_messages_it_sends(network: Network) -> None:
    """Every message of a job gets the verdict of its first: one arrival and one decision are audited, and
    a later change of policy does not reach a job already decided."""
    strict = network.nodes["strict"]
    strict.write_policy(_policy("{count: {approval: auto}}"))
    admissions = JobAdmissions(
        PolicyGate(strict.service.engine, strict.audit, strict.settings.policy_path),
        strict.audit,
        JobTrust(strict.service.engine, strict.identity.network_admin_public_key),
    )
    job_id = f"job-{uuid.uuid4().hex}"
    envelope = signed_envelope(network.coordinator.engine, network.who, job_id=job_id, spec={"kind": "count"})

    verdicts = [admissions.admit(envelope).verdict for _ in range(3)]
    strict.write_policy(_policy("{analysis: {approval: auto, analyses: [count]}}"))
    verdicts.append(admissions.admit(envelope).verdict)

    assert verdicts == [Verdict.RUN] * 4
    assert len(strict.entries(AuditKind.JOB_RECEIVED, job_id)) == 1
    assert len(strict.entries(AuditKind.POLICY_DECISION, job_id)) == 1
