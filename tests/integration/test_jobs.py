"""Jobs end to end through the REST API over TLS: three enrolled nodes run their channels, the app's runner
runs the jobs in worker threads, and a second runner on the same database resumes an interrupted job.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from coordinator.federation.driver import decode_arrays
from coordinator.federation.jobs.specs import parse_spec
from coordinator.federation.runner import JobRunner
from coordinator.store import jobs
from coordinator.store.tokens import Role, create_token
from medfed.cli import app as cli
from medfed.sdk import Federation, FederationError
from node.config import NodeSettings
from node.federation.service import build_host
from node.identity import enrol
from node.runtime import init_node, open_service
from tests.integration.network import tls_coordinator
from tests.integration.test_channel import PATIENTS, Node, _patient
from tests.integration.test_enrolment import Coordinator
from tests.researchers import STUDY, add_researcher

JOB_WAIT_S = 60
FEDAVG: dict[str, Any] = {
    "kind": "fedavg_mlp",
    "rounds": 3,
    "hidden": [8],
    "local_epochs": 1,
    "batch_size": 64,
    "quorum": 3,
    "round_timeout_s": 30,
}


@dataclass
class Network:
    """The coordinator (its app's runner runs submitted jobs), its nodes, and API clients per role."""

    coordinator: Coordinator
    nodes: list[Node]
    researcher: Federation
    observer: Federation
    cli_env: dict[str, str]

    @property
    def runner(self) -> JobRunner:
        runner: JobRunner = self.coordinator.app.state.runner
        return runner

    def finished(self, job_id: str) -> dict[str, Any]:
        """The job once its worker has ended (joined, not polled)."""
        assert self.runner.join(job_id, JOB_WAIT_S), "the job did not end in time"
        return self.observer.job(job_id)

    def new_runner(self, **kwargs: Any) -> JobRunner:
        """A runner as a restarted coordinator process would have it: same database, nothing in memory."""
        app = self.coordinator.app
        return JobRunner(app.state.engine, app.state.notifier, offline_after_s=30, **kwargs)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A coordinator over TLS with three enrolled, connected nodes and researcher and observer clients."""
    with tls_coordinator(tmp_path_factory, "jobs-coordinator") as (coordinator, data, ca_file):
        nodes: list[Node] = []
        clients: list[Federation] = []
        try:
            for index, count in enumerate(PATIENTS):
                node_dir = tmp_path_factory.mktemp(f"jobs-node-{index}")
                settings = NodeSettings(data_dir=node_dir)
                init_node(settings)
                service = open_service(settings)
                for i in range(count):
                    service.create(_patient(i))
                identity = enrol(node_dir, coordinator.code(f"Site {index} {uuid.uuid4().hex[:6]}"), version="test")
                node = Node(identity, service, build_host(service, identity.flower_node_id))
                node.connect()
                nodes.append(node)
            researcher = add_researcher(coordinator.engine, data, data / "keys")
            clients.append(researcher.federation(coordinator.url, ca_file))
            # An observer holding a researcher's key still may not submit: the token's role decides first.
            observer = create_token(coordinator.engine, role=Role.OBSERVER)[1]
            clients.append(
                Federation(
                    coordinator.url, token=observer, ca_file=ca_file, researcher_key=researcher.key_file, study=STUDY
                )
            )
            env = {"MEDFED_COORDINATOR_URL": coordinator.url, "MEDFED_CA_FILE": str(ca_file), **researcher.env()}
            yield Network(coordinator, nodes, researcher=clients[0], observer=clients[1], cli_env=env)
        finally:
            for client in clients:
                client.close()
            for node in nodes:
                node.disconnect()
                node.service.engine.dispose()


def test_a_count_job_succeeds_with_the_total_of_every_node(network: Network) -> None:
    """A count submitted by a researcher sums every node's patients; its one round shows three replies."""
    job = network.researcher.submit({"kind": "count"})
    assert job["status"] in ("submitted", "running")
    done = network.finished(job["id"])
    assert done["status"] == "succeeded"
    assert network.observer.results(job["id"])["result"] == {"total": sum(PATIENTS), "nodes": 3}
    (only,) = done["rounds"]
    assert (only["round"], only["status"], only["replies"]) == (1, "completed", 3)
    assert {part["status"] for part in done["nodes"]} == {"done"}


def test_a_fedavg_job_succeeds_and_records_its_rounds(network: Network) -> None:
    """FedAvg runs its rounds over three nodes; each round is recorded with timings, per-node outcomes and the
    strategy's round numbers, and the result holds the final metrics and the saved model's digest."""
    job = network.researcher.submit({**FEDAVG, "rounds": 2}, seed=5)
    done = network.finished(job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert [r["round"] for r in done["rounds"]] == [1, 2]
    for record in done["rounds"]:
        assert record["status"] == "completed"
        assert record["replies"] == 6  # train and evaluate from each of the three nodes
        assert record["duration_ms"] is not None
        assert len(record["per_node"]) == 3
        for entry in record["per_node"].values():
            assert (entry["train"], entry["evaluate"], entry["attempts"]) == ("replied", "replied", 1)
            assert entry["train_ms"] >= 0
    result = network.observer.results(job["id"])["result"]
    assert result["rounds"] == 2
    assert set(result["evaluate_metrics"]) >= {"eval_loss", "eval_acc"}
    assert result["arrays"]["saved"] is True
    state = jobs.load_job_state(network.coordinator.engine, job_id=job["id"])
    assert state is not None
    assert state.round == 2
    assert list(decode_arrays(state.arrays).keys()) == result["arrays"]["names"]


def test_a_count_submitted_during_a_fedavg_job_finishes_first(network: Network) -> None:
    """Jobs run side by side: a count submitted while a FedAvg job runs ends before the FedAvg job does."""
    fedavg = network.researcher.submit({**FEDAVG, "rounds": 4, "local_epochs": 3, "batch_size": 16}, seed=2)
    count = network.researcher.submit({"kind": "count"})
    count_done = network.finished(count["id"])
    assert count_done["status"] == "succeeded"
    assert network.observer.job(fedavg["id"])["status"] == "running"
    fedavg_done = network.finished(fedavg["id"])
    assert fedavg_done["status"] == "succeeded", fedavg_done["error"]
    assert count_done["finished_at"] < fedavg_done["finished_at"]


def test_a_job_whose_quorum_exceeds_the_nodes_fails_with_the_quorum_reason(network: Network) -> None:
    """Quorum 4 on three nodes: the round is tried twice, the job fails naming the quorum, nothing is aggregated."""
    job = network.researcher.submit({**FEDAVG, "quorum": 4, "rounds": 1})
    done = network.finished(job["id"])
    assert done["status"] == "failed"
    assert "quorum not met in round 1 after 2 attempts" in done["error"]
    assert [(r["round"], r["status"]) for r in done["rounds"]] == [(1, "failed")]
    assert jobs.load_job_state(network.coordinator.engine, job_id=job["id"]) is None
    assert network.observer.results(job["id"])["result"] is None


def test_a_job_interrupted_after_round_one_resumes_to_the_same_arrays(network: Network) -> None:
    """A FedAvg job whose runner stops after round 1 (a coordinator restart) is resumed by a new runner on the
    same database from the saved state, and ends bit for bit with the arrays of an uninterrupted run."""
    engine = network.coordinator.engine
    spec = parse_spec(FEDAVG).model_dump(mode="json")
    members = [node.identity.node_id for node in network.nodes]

    def create() -> str:
        return jobs.create_job(engine, kind="fedavg_mlp", spec=spec, submitter="test", seed=77, node_ids=members).id

    uninterrupted = create()
    reference = network.new_runner()
    reference.submit(uninterrupted)
    assert reference.join(uninterrupted, JOB_WAIT_S)

    interrupted = create()

    def restart_after_round_one(job_id: str, server_round: int) -> None:
        if job_id == interrupted and server_round == 1:
            first.stop()

    first = network.new_runner(after_round=restart_after_round_one)
    first.submit(interrupted)
    assert first.join(interrupted, JOB_WAIT_S)
    halfway = jobs.get_job(engine, job_id=interrupted)
    saved = jobs.load_job_state(engine, job_id=interrupted)
    assert halfway.status is jobs.JobStatus.RUNNING
    assert saved is not None
    assert saved.round == 1

    second = network.new_runner()
    assert second.start() == [interrupted]
    assert second.join(interrupted, JOB_WAIT_S)
    resumed = jobs.get_job(engine, job_id=interrupted)
    reference_job = jobs.get_job(engine, job_id=uninterrupted)
    assert resumed.status is reference_job.status is jobs.JobStatus.SUCCEEDED
    assert resumed.result is not None
    assert reference_job.result is not None
    assert resumed.result["arrays"]["sha256"] == reference_job.result["arrays"]["sha256"]
    assert resumed.result["history"] == reference_job.result["history"]
    final_states = [jobs.load_job_state(engine, job_id=job_id) for job_id in (interrupted, uninterrupted)]
    resumed_arrays, reference_arrays = (decode_arrays(state.arrays) for state in final_states if state is not None)
    assert list(resumed_arrays.keys()) == list(reference_arrays.keys())
    for key in reference_arrays:
        assert np.array_equal(resumed_arrays[key].numpy(), reference_arrays[key].numpy())
    assert [(r.round, r.status) for r in jobs.list_rounds(engine, job_id=interrupted)] == [
        (1, jobs.RoundStatus.COMPLETED),
        (2, jobs.RoundStatus.COMPLETED),
        (3, jobs.RoundStatus.COMPLETED),
    ]


def test_a_cancelled_job_stops_and_an_ended_one_cannot_be_cancelled(network: Network) -> None:
    """Cancelling a running job ends it as cancelled before its last round; cancelling it again is a conflict."""
    job = network.researcher.submit({**FEDAVG, "rounds": 50})
    assert network.researcher.cancel(job["id"])["status"] == "cancelled"
    done = network.finished(job["id"])
    assert done["status"] == "cancelled"
    assert len(done["rounds"]) < 50
    with pytest.raises(FederationError) as refused:
        network.researcher.cancel(job["id"])
    assert (refused.value.status, refused.value.code) == (409, "conflict")


def test_only_researchers_submit_and_bad_specs_are_refused(network: Network, tmp_path: Path) -> None:
    """An observer may read jobs but not submit them (403); an unknown kind or a bad field answers 400."""
    with pytest.raises(FederationError) as forbidden:
        network.observer.submit({"kind": "count"})
    assert forbidden.value.status == 403
    for spec in ({"kind": "nope"}, {"kind": "fedavg_mlp", "rounds": 0}, {"kind": "count", "app": "fedavg_mlp"}):
        with pytest.raises(FederationError) as refused:
            network.researcher.submit(spec)
        assert (refused.value.status, refused.value.code) == (400, "invalid_request")
        assert "nope" not in refused.value.message
    assert isinstance(network.observer.jobs(), list)
    with pytest.raises(FederationError) as missing:
        network.observer.job(str(uuid.uuid4()))
    assert missing.value.status == 404


def test_the_job_cli_submits_watches_and_prints_results(network: Network) -> None:
    """`medfed job submit` prints the job, `watch` follows it to success (exit 0) with its rounds x nodes table,
    `results` prints the total, and `watch` on a failed job exits 1; settings come from MEDFED_* variables."""
    runner = CliRunner()
    submitted = runner.invoke(cli, ["job", "submit", "--kind", "count"], env=network.cli_env)
    assert submitted.exit_code == 0, submitted.output
    job_id = orjson.loads(submitted.stdout)["id"]
    watched = runner.invoke(cli, ["job", "watch", job_id], env=network.cli_env)
    assert watched.exit_code == 0, watched.output
    assert "succeeded" in watched.stderr
    assert all(node.identity.node_id in watched.stderr for node in network.nodes)
    results = runner.invoke(cli, ["job", "results", job_id], env=network.cli_env)
    assert results.exit_code == 0, results.output
    assert orjson.loads(results.stdout)["result"]["total"] == sum(PATIENTS)
    failing = runner.invoke(
        cli, ["job", "submit", "--kind", "fedavg_mlp", "--quorum", "4", "--rounds", "1"], env=network.cli_env
    )
    assert failing.exit_code == 0, failing.output
    failed = runner.invoke(cli, ["job", "watch", orjson.loads(failing.stdout)["id"]], env=network.cli_env)
    assert failed.exit_code == 1
    assert "quorum not met" in failed.stderr
    unconfigured = runner.invoke(cli, ["job", "status", job_id], env={**network.cli_env, "MEDFED_TOKEN": ""})
    assert unconfigured.exit_code == 3
