"""How a node's replies travel: a quick one rides on its next poll, a slow one is posted on its own.

A coordinator served over TLS on loopback and one enrolled node whose channel runs a ``count`` app gated by
the test, so the test decides whether the reply is ready before the poll thread's linger ends.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ConfigRecord, RecordDict

from common.errors import ErrorCode, MedfedError
from common.flower import ensure_task_identity, message_from_bytes
from coordinator.federation.channel_transport import ChannelTransport
from coordinator.federation.grid import MedfedGrid
from coordinator.store import jobs, messages
from node.config import NodeSettings
from node.coordinator_client import CoordinatorClient
from node.federation.apps.count import count_app
from node.federation.channel import ChannelRunner
from node.federation.host import ClientAppHost, InstalledApp
from node.identity import enrol
from node.runtime import init_node, open_service
from tests.integration.test_enrolment import Coordinator, running_coordinator

COUNT = 42
LINGER_S = 0.25
POLL_PATH = "/channel/v1/poll"
REPLY_PATH = "/channel/v1/reply"


@dataclass
class RecordingLink:
    """The node's real coordinator client, noting the path of every POST it makes."""

    client: CoordinatorClient
    paths: list[str] = field(default_factory=list)
    refuse_riding_replies: bool = False

    def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        self.paths.append(path)
        if self.refuse_riding_replies and path == POLL_PATH and body.get("replies"):
            raise MedfedError(ErrorCode.PAYLOAD_TOO_LARGE)  # as a coordinator with a small body limit would
        return self.client.post_json(path, body)

    def close(self) -> None:
        self.client.close()


@dataclass
class OneNode:
    """The coordinator, the node's flower id, its recording link and the gate its count app waits on."""

    coordinator: Coordinator
    flower_node_id: int
    link: RecordingLink
    gate: threading.Event

    def query(self) -> tuple[ChannelTransport, str, str]:
        """Push one count query to the node; the transport, job id and message id."""
        transport = ChannelTransport(self.coordinator.engine, self.coordinator.app.state.notifier, offline_after_s=30)
        job_id = jobs.create_job(
            self.coordinator.engine,
            kind="count",
            spec={"app": "count", "message_types": ["query"]},
            submitter="test",
            seed=1,
        ).id
        grid = MedfedGrid(transport, job_id=job_id)
        message = grid.create_message(RecordDict({"config": ConfigRecord({})}), "query", self.flower_node_id, "")
        (message_id,) = grid.push_messages([message])
        return transport, job_id, message_id


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OneNode]:
    ensure_task_identity()
    data: Path = tmp_path_factory.mktemp("replies-coordinator")
    gate = threading.Event()

    def gated_count() -> int:
        assert gate.wait(60), "the test never opened the gate"
        return COUNT

    with running_coordinator(data, f"sqlite:///{data / 'coordinator.db'}") as coordinator:
        node_dir = tmp_path_factory.mktemp("replies-node")
        settings = NodeSettings(data_dir=node_dir)
        init_node(settings)
        service = open_service(settings)
        identity = enrol(node_dir, coordinator.code(f"Replies {uuid.uuid4().hex[:6]}"), version="test")
        host = ClientAppHost(node_id=identity.flower_node_id, apps={"count": InstalledApp(count_app(gated_count))})
        link = RecordingLink(CoordinatorClient(identity))
        runner = ChannelRunner(link, host, service.engine, version="test", poll_wait_s=1, reply_linger_s=LINGER_S)
        runner.start()
        try:
            assert runner.connected.wait(30), "the node never reached the coordinator"
            yield OneNode(coordinator, identity.flower_node_id, link, gate)
        finally:
            runner.stop()
            service.engine.dispose()


def _count_in(transport: ChannelTransport, job_id: str, message_id: str) -> int:
    transport.wait(job_id=job_id, message_ids=[message_id], timeout=30)
    reply = message_from_bytes(transport.pull(job_id=job_id, message_ids=[message_id])[message_id])
    count = reply.content["metrics"]["count"]
    assert isinstance(count, int)
    return count


def test_a_reply_ready_within_the_linger_rides_on_the_next_poll(node: OneNode) -> None:
    """The answer arrives, and the node made no request of its own to send it."""
    node.gate.set()
    posted_before = len(node.link.paths)
    transport, job_id, message_id = node.query()
    assert _count_in(transport, job_id, message_id) == COUNT
    assert REPLY_PATH not in node.link.paths[posted_before:]


def test_a_reply_later_than_the_linger_is_posted_on_its_own(node: OneNode) -> None:
    """The poll leaves with the acknowledgement only; the reply follows in its own request once it is ready."""
    node.gate.clear()
    transport, job_id, message_id = node.query()
    give_up = time.monotonic() + 30
    while messages.get_message(node.coordinator.engine, message_id=message_id).acked_at is None:
        assert time.monotonic() < give_up, "the node never acknowledged the message"
        time.sleep(0.01)  # polling the condition above, with its deadline
    # Acknowledged by a poll that left after the linger, while the app is still held at the gate.
    assert messages.fetch_replies(node.coordinator.engine, message_ids=[message_id]) == []
    posted_before = node.link.paths.count(REPLY_PATH)
    node.gate.set()
    assert _count_in(transport, job_id, message_id) == COUNT
    assert node.link.paths.count(REPLY_PATH) == posted_before + 1


def test_a_poll_refused_for_good_sends_its_replies_on_their_own(node: OneNode) -> None:
    """A coordinator that will not take a poll carrying a reply still gets the reply, in a request of its own."""
    node.gate.set()
    node.link.refuse_riding_replies = True
    try:
        posted_before = node.link.paths.count(REPLY_PATH)
        transport, job_id, message_id = node.query()
        assert _count_in(transport, job_id, message_id) == COUNT
        assert node.link.paths.count(REPLY_PATH) == posted_before + 1
    finally:
        node.link.refuse_riding_replies = False
