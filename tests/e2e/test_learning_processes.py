"""A learning job over real processes survives a node killed mid-training, and the node rejoins it.

FLamby's Fed-Heart-Disease as four hospital nodes (``medfed node start`` processes, each with its centre
registered as the ``heart`` dataset) and a ``medfed coordinator start`` process, set up as
:mod:`tests.e2e.test_jobs_processes` sets up its network. The job is FedAvg on FLamby's heart task with a
quorum of 3 of 4, more local updates than FLamby's (so a node is seen mid-training) and enough rounds to
outlast a node's restart. One node is SIGKILLed after it acknowledged its round-1 train message and
before it replied, and started again at once on the same data directory: the job finishes with the
quorum, reports the node late in round 1, and the node answers a later round of the same job.

(Resuming a learning job after a coordinator restart, bit for bit, is covered in-process by
``tests/integration/test_learning_jobs.py``.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.flamby import load_dataset
from benchmarks.learning_overhead import heart_fedavg, register
from coordinator.config import CoordinatorSettings
from coordinator.identity import CoordinatorIdentity
from coordinator.runtime import init_coordinator
from coordinator.store.tokens import Role, create_token
from node.config import NodeSettings
from node.runtime import init_node
from tests.e2e.conftest import _free_port
from tests.e2e.test_jobs_processes import Network, _enrol_all, _kill_after_acknowledgement, _Node
from tests.researchers import add_researcher

SITES = ("Cleveland", "Hungary", "Switzerland", "Long Beach VA")
# Local work of about a second per round on a loaded 2-core machine: long enough to kill a node between
# its acknowledgement and its reply. A round with a dead node lasts ROUND_TIMEOUT_S; the restarted node
# (a torch import away, typically back before round 2) has the job's later rounds to come back in,
# while the coordinator still lists it online (heartbeats within the last 30 s).
ROUNDS = 5
LOCAL_STEPS = 1500
ROUND_TIMEOUT_S = 8.0

pytestmark = pytest.mark.slow


def _network(root: Path) -> Network:
    """Coordinator data dir and admin token; four initialised nodes, each with its centre's rows."""
    port = _free_port()
    settings = CoordinatorSettings(data_dir=root / "coordinator", port=port)
    engine, _ = init_coordinator(settings)
    try:
        _, token = create_token(engine, role=Role.ADMIN, label="e2e learning")
        researcher = add_researcher(engine, settings.data_dir, root / "keys")
    finally:
        engine.dispose()
    network = Network(
        root=root,
        coordinator=settings,
        url=f"https://127.0.0.1:{port}",
        ca_pem=CoordinatorIdentity.load(settings.data_dir).ca_pem,
        admin_token=token,
        researcher=researcher,
    )
    for index, site in enumerate(SITES):
        node_settings = NodeSettings(data_dir=root / f"node-{index + 1}", port=_free_port())
        init_node(node_settings)
        network.nodes.append(_Node(name=site, settings=node_settings, patients=0, log=root / f"node-{index + 1}.log"))
    return network


def test_a_node_killed_mid_training_leaves_the_round_to_the_quorum_and_rejoins_a_later_round(
    tmp_path: Path, shared_data: Path
) -> None:
    """SIGKILL after the round-1 ack, restart at once: every round completes, the node answers again."""
    dataset = load_dataset("heart")
    network = _network(tmp_path)
    register(dataset, [node.settings.data_dir for node in network.nodes], tmp_path)
    try:
        network.start_coordinator()
        _enrol_all(network)
        for node in network.nodes:
            network.start_node(node)
        network.wait_online(network.nodes)
        victim = network.nodes[-1]
        spec = {
            **heart_fedavg(dataset),
            "rounds": ROUNDS,
            "local_steps": LOCAL_STEPS,
            "quorum": 3,
            "round_timeout_s": ROUND_TIMEOUT_S,
        }
        job_id = network.submit(spec, seed=42)
        _kill_after_acknowledgement(network, victim, job_id)
        network.start_node(victim)  # same data dir: same identity and dataset; its job context is gone
        detail, outcome = network.wait_job(job_id)
    finally:
        network.stop_all()

    assert detail["status"] == "succeeded", f"{detail['error']}\n{detail['rounds']}"
    assert outcome["result"]["rounds"] == ROUNDS
    rounds = detail["rounds"]
    assert [r["round"] for r in rounds] == list(range(1, ROUNDS + 1))
    assert all(r["status"] == "completed" for r in rounds)
    assert rounds[0]["per_node"][victim.node_id]["train"] == "late"
    assert all(rounds[0]["per_node"][node.node_id]["train"] == "replied" for node in network.nodes[:-1])
    rejoined = [r["round"] for r in rounds[1:] if r["per_node"].get(victim.node_id, {}).get("train") == "replied"]
    assert rejoined, f"the restarted node answered no later round: {[r['per_node'] for r in rounds]}"
    after = rounds[rejoined[0] - 1]["per_node"][victim.node_id]
    assert after["evaluate"] == "replied"
    assert after["evaluate_metrics"]["num-examples"] > 0
    parts = {part["node_id"]: part for part in detail["nodes"]}
    assert parts[victim.node_id]["status"] == "done"  # back in the job to its end, not left dropped
    assert "missed round 1" in (parts[victim.node_id]["detail"] or "")  # and the miss is still on record
