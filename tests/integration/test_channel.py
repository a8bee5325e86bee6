"""The node channel end to end: TLS long-poll, signed requests, persisted messages, real sockets.

A coordinator app is served over TLS on loopback; three enrolled nodes (each with its own SQLite store,
patients and warm app host) run their channel threads. Flower jobs run on MedfedGrid over the channel
transport exactly as over the in-memory transport.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pytest
import sqlalchemy as sa
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from common.flower import ensure_task_identity, message_from_bytes
from coordinator.federation.channel_transport import ChannelTransport
from coordinator.federation.grid import MedfedGrid
from coordinator.federation.jobs.count import run_count
from coordinator.federation.jobs.fedavg import run_fedavg
from coordinator.federation.memory import Endpoint, InMemoryTransport
from coordinator.store import jobs, messages
from node.config import NodeSettings
from node.coordinator_client import CoordinatorClient
from node.federation.channel import ChannelRunner
from node.federation.host import ClientAppHost
from node.federation.service import build_host
from node.fhir.service import FhirService
from node.identity import NodeIdentity, enrol
from node.runtime import init_node, open_service
from tests.integration.test_enrolment import Coordinator, running_coordinator

PATIENTS = (5, 7, 11)
COUNT_SPEC = {"app": "count", "message_types": ["query"]}
FEDAVG_SPEC = {"app": "fedavg_mlp", "message_types": ["train", "evaluate"]}


@dataclass
class Node:
    """One enrolled node with its channel."""

    identity: NodeIdentity
    service: FhirService
    host: ClientAppHost
    runner: ChannelRunner | None = None

    def connect(self) -> None:
        """Start the channel and wait until its first poll reached the coordinator."""
        self.runner = ChannelRunner(
            CoordinatorClient(self.identity),
            self.host,
            self.service.engine,
            version="test",
            poll_wait_s=1,
            heartbeat_s=1,
        )
        self.runner.start()
        assert self.runner.connected.wait(30), "the node never reached the coordinator"

    def disconnect(self) -> None:
        """Stop the channel (the node goes quiet, as if its network were cut)."""
        if self.runner is not None:
            self.runner.stop()
            self.runner = None


@dataclass
class Network:
    """The coordinator and its nodes."""

    coordinator: Coordinator
    nodes: list[Node]

    def transport(self) -> ChannelTransport:
        return ChannelTransport(self.coordinator.engine, self.coordinator.app.state.notifier, offline_after_s=30)

    def job(self, spec: Mapping[str, object], seed: int = 1) -> str:
        return jobs.create_job(
            self.coordinator.engine, kind=str(spec["app"]), spec=spec, submitter="test", seed=seed
        ).id


def _patient(i: int) -> dict[str, object]:
    return {"resourceType": "Patient", "gender": "female", "identifier": [{"system": "urn:t", "value": str(i)}]}


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A coordinator over TLS with three enrolled, connected nodes."""
    ensure_task_identity()
    data = tmp_path_factory.mktemp("channel-coordinator")
    with running_coordinator(data, f"sqlite:///{data / 'coordinator.db'}") as coordinator:
        nodes: list[Node] = []
        for index, count in enumerate(PATIENTS):
            node_dir = tmp_path_factory.mktemp(f"channel-node-{index}")
            settings = NodeSettings(data_dir=node_dir)
            init_node(settings)
            service = open_service(settings)
            for i in range(count):
                service.create(_patient(i))
            identity = enrol(node_dir, coordinator.code(f"Site {index} {uuid.uuid4().hex[:6]}"), version="test")
            node = Node(identity, service, build_host(service, identity.flower_node_id))
            node.connect()
            nodes.append(node)
        try:
            yield Network(coordinator, nodes)
        finally:
            for node in nodes:
                node.disconnect()
                node.service.engine.dispose()


def test_a_count_job_runs_over_the_channel(network: Network) -> None:
    """A federated count over the TLS channel sums every node's patients."""
    grid = MedfedGrid(network.transport(), job_id=network.job(COUNT_SPEC))
    assert run_count(grid, timeout=30) == sum(PATIENTS)


def test_fedavg_over_the_channel_equals_fedavg_in_process(network: Network) -> None:
    """FedAvg over the channel ends with exactly the arrays of the same job run in-process."""

    def fedavg(grid: MedfedGrid) -> ArrayRecord:
        return run_fedavg(grid, rounds=2, seed=11, hidden=(16,), local_epochs=1, min_nodes=3, timeout=120)

    over_channel = fedavg(MedfedGrid(network.transport(), job_id=network.job(FEDAVG_SPEC, seed=11)))
    hosts = {n.identity.flower_node_id: build_host(n.service, n.identity.flower_node_id) for n in network.nodes}

    def endpoint(host: ClientAppHost) -> Endpoint:
        def call(payload: bytes, *, job_id: str) -> bytes:
            return host.handle(
                payload, job_id=job_id, app="fedavg_mlp", allowed_message_types=frozenset({"train", "evaluate"})
            )

        return call

    with InMemoryTransport({node_id: endpoint(host) for node_id, host in hosts.items()}) as memory:
        in_process = fedavg(MedfedGrid(memory, job_id=str(uuid.uuid4())))
    assert list(over_channel.keys()) == list(in_process.keys())
    for key in over_channel:
        assert np.array_equal(over_channel[key].numpy(), in_process[key].numpy())


def _one_query_for(
    network: Network, node: Node, *, deadline: float | None = None
) -> tuple[MedfedGrid, ChannelTransport, str, str]:
    """Push one count query to ``node`` only; returns the grid, its transport, the job id and the message id."""
    transport = network.transport()
    job_id = network.job(COUNT_SPEC)
    grid = MedfedGrid(transport, job_id=job_id, deadline=deadline)
    message = grid.create_message(RecordDict({"config": ConfigRecord({})}), "query", node.identity.flower_node_id, "")
    (message_id,) = grid.push_messages([message])
    return grid, transport, job_id, message_id


def test_a_message_for_an_offline_node_is_delivered_when_it_connects(network: Network) -> None:
    """A query queued while the node is away is delivered and answered once it reconnects."""
    node = network.nodes[2]
    node.disconnect()
    try:
        grid, transport, job_id, message_id = _one_query_for(network, node)
        assert transport.pull(job_id=job_id, message_ids=[message_id]) == {}
    finally:
        node.connect()
    transport.wait(job_id=job_id, message_ids=[message_id], timeout=30)
    (reply,) = grid.pull_messages([message_id])
    assert reply.content["metrics"]["count"] == PATIENTS[2]


def test_a_stale_round_message_is_not_delivered(network: Network) -> None:
    """A message whose round deadline passed while its node was away is dropped, never delivered."""
    node = network.nodes[1]
    node.disconnect()
    try:
        _, _, _, message_id = _one_query_for(network, node, deadline=time.time() + 600)
        with network.coordinator.engine.begin() as conn:  # the round's deadline passes while the node is away
            conn.execute(
                sa.text("UPDATE channel_message SET deadline_at = :t WHERE id = :m"),
                {"t": int((time.time() - 60) * 1_000_000), "m": message_id},
            )
    finally:
        node.connect()  # returns after the node's first poll has been answered
    record = messages.get_message(network.coordinator.engine, message_id=message_id)
    assert record.delivered_at is None
    assert record.dropped_at is not None
    assert str(record.drop_reason) == "deadline_passed"


def test_a_redelivered_message_is_answered_from_the_kept_reply(network: Network) -> None:
    """A message delivered again (its reply lost) is answered from the node's kept reply, not run again."""
    node = network.nodes[0]
    grid, transport, job_id, message_id = _one_query_for(network, node)
    transport.wait(job_id=job_id, message_ids=[message_id], timeout=30)
    (first,) = grid.pull_messages([message_id])
    assert first.content["metrics"]["count"] == PATIENTS[0]
    node.service.create(_patient(999))  # were the query run again, it would count one more
    # The node acknowledges a delivery on its next poll; an acknowledgement arriving after the reset below
    # would mark the message done again, so the first delivery's acknowledgement must be in first.
    acked = sa.text("SELECT acked_at FROM channel_message WHERE id = :m")
    give_up = time.monotonic() + 30
    while True:
        with network.coordinator.engine.connect() as conn:
            if conn.execute(acked, {"m": message_id}).scalar() is not None:
                break
        assert time.monotonic() < give_up, "the node never acknowledged the first delivery"
        time.sleep(0.01)  # polling the condition above, with its deadline
    with network.coordinator.engine.begin() as conn:  # the reply is lost; the message goes out again
        conn.execute(sa.text("DELETE FROM channel_reply WHERE message_id = :m"), {"m": message_id})
        conn.execute(
            sa.text("UPDATE channel_message SET delivered_at = NULL, acked_at = NULL WHERE id = :m"), {"m": message_id}
        )
    network.coordinator.app.state.notifier.message_ready(str(node.identity.node_id))
    transport.wait(job_id=job_id, message_ids=[message_id], timeout=30)
    replies = transport.pull(job_id=job_id, message_ids=[message_id])
    again = message_from_bytes(replies[message_id])
    assert again.content["metrics"]["count"] == PATIENTS[0]
