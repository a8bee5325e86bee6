"""Jobs over real processes: a coordinator and hospital nodes, each its own ``medfed ... start`` process.

The network is set up as ``medfed demo`` sets it up: the coordinator's data directory, admin token and
enrolment codes, and each node's data directory, generated patients and enrolment, are made in-process;
``medfed coordinator start`` and ``medfed node start`` run as subprocesses on loopback, each stopped by
its own handle. Readiness is observed by polling (``/healthz``, ``GET /api/nodes``, ``GET /api/jobs/{id}``
and the coordinator's SQLite file) against generous deadlines, never by sleeping a fixed time.

1. A node SIGKILLed after it acknowledged a round-1 train message and before it replied: the job ends
   with the remaining quorum and reports that node; restarted, the node rejoins and is counted by the
   next job.
2. Fewer nodes online than the quorum: the FedAvg job fails naming the quorum and aggregates nothing.
3. The coordinator SIGKILLed after round 1 and restarted on the same data: the job resumes and ends with
   the model digest of an uninterrupted run with the same spec and seed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import sqlalchemy as sa

from common.crypto import client_ssl_context
from coordinator.config import CoordinatorSettings
from coordinator.identity import CA_CERT_FILE, TLS_DIR, CoordinatorIdentity
from coordinator.runtime import init_coordinator, open_engine
from coordinator.store.enrolment import create_enrolment_code
from coordinator.store.tokens import Role, create_token
from node.config import NodeSettings
from node.fhir.ingest import ingest_paths
from node.generator import generate
from node.identity import enrol
from node.runtime import init_node, open_service
from tests.e2e.conftest import _free_port
from tests.e2e.processes import MedfedProcesses, online_nodes
from tests.researchers import Researcher, add_researcher

PATIENTS = 4
SITES = ("Site A", "Site B", "Site C")
READY_DEADLINE_S = 180.0  # process start-up (torch import) on a loaded 2-core machine
JOB_DEADLINE_S = 300.0
KILL_WATCH_DEADLINE_S = 120.0

# A small FedAvg job. ``local_epochs`` and ``batch_size`` make one local training take long enough
# (about a second) for the test to see a train message acknowledged and kill the node before it replies,
# and to kill the coordinator after round 1 while rounds 2 and 3 are still to come.
SLOW_FEDAVG: dict[str, Any] = {
    "kind": "fedavg_mlp",
    "rounds": 3,
    "hidden": [8],
    "in_features": 30,
    "local_epochs": 15,
    "batch_size": 8,
}
FAST_FEDAVG: dict[str, Any] = {"kind": "fedavg_mlp", "rounds": 3, "hidden": [8], "batch_size": 256}


@dataclass
class _Node:
    name: str
    settings: NodeSettings
    patients: int
    log: Path
    node_id: str = ""
    process: subprocess.Popen[bytes] | None = None


@dataclass
class Network(MedfedProcesses):
    """A coordinator process and node processes under one directory, with an admin API client."""

    root: Path
    coordinator: CoordinatorSettings
    url: str
    ca_pem: bytes
    admin_token: str
    researcher: Researcher
    nodes: list[_Node] = field(default_factory=list)
    coordinator_process: subprocess.Popen[bytes] | None = None
    outputs: list[Path] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ready_deadline_s: ClassVar[float] = READY_DEADLINE_S

    # --- processes --------------------------------------------------------------------------------

    def log_paths(self) -> list[Path]:
        return [self.root / "coordinator.log", *(node.log for node in self.nodes)]

    def start_coordinator(self) -> None:
        """``medfed coordinator start`` on the data dir and port; returns once /healthz answers 200."""
        self.coordinator_process = self.spawn_coordinator(self.coordinator, self.url)

    def start_node(self, node: _Node) -> subprocess.Popen[bytes]:
        """``medfed node start`` on the node's data dir (it dials the coordinator on its own)."""
        node.process = self.spawn(
            ["node", "start", "--data-dir", str(node.settings.data_dir), "--port", str(node.settings.port)], node.log
        )
        return node.process

    # --- observation ------------------------------------------------------------------------------

    def api(self) -> httpx.Client:
        """An admin client of the coordinator's API, TLS pinned to its CA."""
        return httpx.Client(
            base_url=self.url,
            verify=client_ssl_context(self.ca_pem),
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10.0,
            trust_env=False,
        )

    def online(self) -> set[str]:
        """Ids of the nodes the coordinator lists as online."""
        return online_nodes(self.api)

    def wait_online(self, nodes: list[_Node]) -> None:
        """Wait until each of ``nodes`` is listed online."""
        wanted = {node.node_id for node in nodes}
        running = [node.process for node in nodes if node.process is not None]
        self.wait_for(lambda: wanted <= self.online(), f"nodes {sorted(wanted)} online", watch=running)

    def submit(self, spec: dict[str, Any], seed: int) -> str:
        """POST /api/jobs, signed by the researcher; the new job's id."""
        with self.researcher.federation(self.url, self.coordinator.data_dir / TLS_DIR / CA_CERT_FILE) as client:
            job_id: str = client.submit(spec, seed=seed)["id"]
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        """GET /api/jobs/{id}."""
        with self.api() as api:
            response = api.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.text
        detail: dict[str, Any] = response.json()
        return detail

    def wait_job(self, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Wait until the job has ended; its detail and its results."""
        ended: dict[str, Any] = {}

        def done() -> bool:
            try:
                ended.update(self.job(job_id))
            except httpx.TransportError:
                return False
            return ended["status"] in ("succeeded", "failed", "cancelled")

        watch = [self.coordinator_process] if self.coordinator_process is not None else []
        self.wait_for(done, f"job {job_id} to end", deadline_s=JOB_DEADLINE_S, watch=watch, interval_s=0.25)
        with self.api() as api:
            results = api.get(f"/api/jobs/{job_id}/results")
        assert results.status_code == 200, results.text
        outcome: dict[str, Any] = results.json()
        return ended, outcome

    def database(self) -> sa.Engine:
        """A read-only view of the coordinator's SQLite file (the coordinator process writes it)."""
        return sa.create_engine(self.coordinator.sqlalchemy_url)


def _prepare(root: Path, sites: tuple[str, ...]) -> Network:
    """Coordinator data dir and token, and each node's data dir and generated patients, in-process."""
    port = _free_port()
    settings = CoordinatorSettings(data_dir=root / "coordinator", port=port)
    engine, _ = init_coordinator(settings)
    try:
        _, token = create_token(engine, role=Role.ADMIN, label="e2e jobs")
        researcher = add_researcher(engine, settings.data_dir, root / "keys")
    finally:
        engine.dispose()
    ca_pem = CoordinatorIdentity.load(settings.data_dir).ca_pem
    network = Network(
        root=root,
        coordinator=settings,
        url=f"https://127.0.0.1:{port}",
        ca_pem=ca_pem,
        admin_token=token,
        researcher=researcher,
    )
    for index, site in enumerate(sites):
        node_settings = NodeSettings(data_dir=root / f"node-{index + 1}", port=_free_port())
        init_node(node_settings)
        out = root / f"generated-{index + 1}"
        generated = generate(patients=PATIENTS + index, seed=100 + index, out=out, fmt="ndjson", site=f"e2e-{index}")
        ingest_paths(open_service(node_settings), [out], max_bundle_entries=node_settings.max_bundle_entries)
        network.nodes.append(
            _Node(name=site, settings=node_settings, patients=generated.patients, log=root / f"node-{index + 1}.log")
        )
    return network


def _enrol_all(network: Network) -> None:
    """Enrol every node with the running coordinator (codes pinned to its CA), as the demo does."""
    fingerprint = CoordinatorIdentity.load(network.coordinator.data_dir).ca_fingerprint
    engine = open_engine(network.coordinator)
    try:
        for node in network.nodes:
            code = create_enrolment_code(
                engine, node_name=node.name, ttl_s=600, fingerprint=fingerprint, public_url=network.url
            )
            node.node_id = str(enrol(node.settings.data_dir, code.code, version="e2e").node_id)
    finally:
        engine.dispose()


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """A running coordinator process and three enrolled nodes, not started; every process stopped afterwards."""
    net = _prepare(tmp_path, SITES)
    try:
        net.start_coordinator()
        _enrol_all(net)
        yield net
    finally:
        net.stop_all()


def _start(network: Network, nodes: list[_Node]) -> None:
    for node in nodes:
        network.start_node(node)
    network.wait_online(nodes)


# --- 1. a node killed mid-round ------------------------------------------------------------------


def _kill_after_acknowledgement(network: Network, victim: _Node, job_id: str) -> None:
    """SIGKILL ``victim`` once it has acknowledged its round-1 message of the job, and check it had not replied."""
    assert victim.process is not None
    database = network.database()
    acked = sa.text(
        "SELECT id FROM channel_message WHERE job_id = :job AND node_id = :node AND round = 1 AND acked_at IS NOT NULL"
    )
    message_ids: list[str] = []

    def acknowledged() -> bool:
        with database.connect() as conn:
            message_ids.extend(conn.execute(acked, {"job": job_id, "node": victim.node_id}).scalars())
        return bool(message_ids)

    try:
        network.wait_for(
            acknowledged,
            "the node to acknowledge its round-1 train message",
            deadline_s=KILL_WATCH_DEADLINE_S,
            watch=[victim.process],
            interval_s=0.01,
        )
        victim.process.kill()
        victim.process.wait(timeout=30)
        with database.connect() as conn:
            replied = conn.execute(
                sa.text("SELECT count(*) FROM channel_reply WHERE message_id IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                {"ids": message_ids},
            ).scalar_one()
    finally:
        database.dispose()
    if replied:  # a precondition, not the behaviour under test
        pytest.fail("the node replied before it was killed: local training is too quick for this test")


def test_a_node_killed_after_acknowledging_a_train_message_leaves_the_round_to_the_remaining_quorum(
    network: Network,
) -> None:
    """SIGKILL after the ack, before the reply: quorum 2 carries every round, and the node is reported."""
    _start(network, network.nodes)
    victim = network.nodes[-1]
    job_id = network.submit({**SLOW_FEDAVG, "quorum": 2, "round_timeout_s": 8.0}, seed=7)
    _kill_after_acknowledgement(network, victim, job_id)

    detail, outcome = network.wait_job(job_id)
    assert detail["status"] == "succeeded", f"{detail['error']}\n{detail['rounds']}"
    assert outcome["result"]["rounds"] == 3
    assert outcome["result"]["arrays"]["sha256"]
    first = detail["rounds"][0]
    assert first["round"] == 1
    assert first["status"] == "completed"
    assert first["per_node"][victim.node_id]["train"] == "late"
    parts = {part["node_id"]: part for part in detail["nodes"]}
    assert parts[victim.node_id]["status"] == "dropped"
    assert "missed round 1" in (parts[victim.node_id]["detail"] or "")


def test_a_node_killed_mid_round_and_restarted_takes_part_in_the_next_job(network: Network) -> None:
    """SIGKILL after the ack, before the reply; ``medfed node start`` on the same data: the next count includes it."""
    _start(network, network.nodes)
    victim = network.nodes[-1]
    job_id = network.submit({**SLOW_FEDAVG, "quorum": 2, "round_timeout_s": 4.0}, seed=7)
    _kill_after_acknowledgement(network, victim, job_id)
    interrupted, _ = network.wait_job(job_id)  # its outcome is the subject of the test above
    assert victim.node_id in {part["node_id"] for part in interrupted["nodes"]}

    restarted = network.start_node(victim)  # same data dir: same identity, same patients
    network.wait_for(lambda: victim.node_id in network.online(), "the restarted node to come online", watch=[restarted])
    count_id = network.submit({"kind": "count", "round_timeout_s": 60.0}, seed=8)
    counted, count_outcome = network.wait_job(count_id)
    assert counted["status"] == "succeeded", counted["error"]
    assert {part["node_id"] for part in counted["nodes"]} == {node.node_id for node in network.nodes}
    assert count_outcome["result"] == {"total": sum(node.patients for node in network.nodes), "nodes": 3}


# --- 2. fewer nodes than the quorum --------------------------------------------------------------


def test_with_fewer_nodes_online_than_the_quorum_a_fedavg_job_fails_without_aggregating(network: Network) -> None:
    """One node online, quorum 2: the job fails naming the quorum, and its results carry no model."""
    _start(network, network.nodes[:1])
    job_id = network.submit({**FAST_FEDAVG, "quorum": 2, "round_timeout_s": 2.0}, seed=3)
    detail, outcome = network.wait_job(job_id)
    assert detail["status"] == "failed"
    assert "quorum" in (detail["error"] or "")
    assert outcome["status"] == "failed"
    assert "quorum" in (outcome["error"] or "")
    assert outcome["result"] is None or "arrays" not in outcome["result"]
    assert all(r["status"] != "completed" for r in detail["rounds"])
    database = network.database()
    try:
        with database.connect() as conn:
            saved = conn.execute(
                sa.text("SELECT count(*) FROM job_state WHERE job_id = :j"), {"j": job_id}
            ).scalar_one()
    finally:
        database.dispose()
    assert saved == 0


# --- 3. the coordinator killed mid-job -----------------------------------------------------------


def test_a_coordinator_killed_after_round_one_resumes_the_job_to_the_uninterrupted_model(network: Network) -> None:
    """Same spec and seed: the job interrupted by SIGKILL and resumed ends with the uninterrupted run's digest."""
    _start(network, network.nodes)
    spec = {**SLOW_FEDAVG, "quorum": 3, "round_timeout_s": 90.0}  # rounds of seconds: time to kill after round 1
    seed = 42
    baseline, baseline_outcome = network.wait_job(network.submit(spec, seed))
    assert baseline["status"] == "succeeded", baseline["error"]
    expected = baseline_outcome["result"]["arrays"]["sha256"]

    job_id = network.submit(spec, seed)

    def round_one_completed() -> bool:
        rounds = network.job(job_id)["rounds"]
        return any(r["round"] == 1 and r["status"] == "completed" for r in rounds)

    coordinator = network.coordinator_process
    assert coordinator is not None
    network.wait_for(
        round_one_completed, "round 1 to complete", deadline_s=JOB_DEADLINE_S, watch=[coordinator], interval_s=0.02
    )
    coordinator.kill()
    coordinator.wait(timeout=30)
    interrupted_at = network.database()
    try:
        with interrupted_at.connect() as conn:
            state_round = conn.execute(
                sa.text("SELECT round FROM job_state WHERE job_id = :j"), {"j": job_id}
            ).scalar_one()
            status = conn.execute(sa.text("SELECT status FROM job WHERE id = :j"), {"j": job_id}).scalar_one()
    finally:
        interrupted_at.dispose()
    assert status == "running", "the kill came too late to interrupt the job"
    assert 1 <= state_round < 3, "the kill came too late to interrupt the job"

    network.start_coordinator()  # same data dir and port; the runner resumes the running job
    detail, outcome = network.wait_job(job_id)
    assert detail["status"] == "succeeded", f"{detail['error']}\n{detail['rounds']}"
    assert [r["round"] for r in detail["rounds"]] == [1, 2, 3]
    assert all(r["status"] == "completed" for r in detail["rounds"])
    assert outcome["result"]["rounds"] == 3
    assert outcome["result"]["arrays"]["sha256"] == expected
