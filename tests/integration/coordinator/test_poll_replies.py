"""Replies that ride on a node's poll: stored in the poll's transaction, once, for the node's own messages only."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import orjson
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from common.crypto import SigningKey, sign_request
from coordinator.federation.notifier import ChannelNotifier
from coordinator.store import jobs
from coordinator.store.messages import enqueue_message, fetch_replies, get_message
from coordinator.store.nodes import register_node
from tests.integration.coordinator.conftest import make_coordinator_client

POLL = "/channel/v1/poll"


@dataclass
class SignedNode:
    """One enrolled node's key, posting signed requests to the coordinator."""

    client: TestClient
    key: SigningKey
    node_id: str

    def poll(self, body: dict[str, object]) -> httpx2.Response:
        content = orjson.dumps({"wait_s": 0, **body})
        headers = sign_request(self.key, key_id=self.node_id, method="POST", path_and_query=POLL, body=content)
        headers["Content-Type"] = "application/json"
        return self.client.post(POLL, content=content, headers=headers)


@dataclass
class Channel:
    """The coordinator (over TLS: the channel answers nothing else), a job and two enrolled nodes."""

    engine: sa.Engine
    notifier: ChannelNotifier
    job_id: str
    a: SignedNode
    b: SignedNode


@pytest.fixture
def channel(coordinator_database_url: str, tmp_path: Path) -> Iterator[Channel]:
    made = make_coordinator_client(coordinator_database_url, tmp_path)
    app = made.client.app
    assert isinstance(app, FastAPI)
    with TestClient(app, base_url="https://testserver") as client:
        # Made once the app runs: its job runner takes up the jobs it finds at start, and fails this one.
        job_id = jobs.create_job(made.engine, kind="count", spec={"app": "count"}, submitter="test", seed=1).id
        signed = []
        for name in ("Poll Site A", "Poll Site B"):
            key = SigningKey.generate()
            node = register_node(made.engine, name=name, public_key=key.public_key().to_text())
            signed.append(SignedNode(client, key, node.id))
        yield Channel(made.engine, app.state.notifier, job_id, *signed)
    made.engine.dispose()


def _reply(message_id: str, payload: bytes) -> dict[str, str]:
    return {"message_id": message_id, "payload": base64.b64encode(payload).decode()}


def _deliver(channel: Channel, node: SignedNode, message_id: str) -> None:
    enqueue_message(channel.engine, message_id=message_id, node_id=node.node_id, payload=b"q", job_id=channel.job_id)
    delivered = node.poll({})
    assert delivered.status_code == 200, delivered.text
    assert [m["id"] for m in delivered.json()["messages"]] == [message_id]


def test_a_reply_on_the_poll_is_stored_acknowledges_its_message_and_wakes_the_job(channel: Channel) -> None:
    """The poll keeps the reply before it answers, acknowledges the message, and the job's waiters are woken."""
    _deliver(channel, channel.a, "m-a")
    generation = channel.notifier.reply_generation(channel.job_id)
    answer = channel.a.poll({"replies": [_reply("m-a", b"answer")]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"messages": []}
    (stored,) = fetch_replies(channel.engine, message_ids=["m-a"])
    assert (stored.node_id, stored.payload) == (channel.a.node_id, b"answer")
    assert get_message(channel.engine, message_id="m-a").acked_at is not None
    assert channel.notifier.reply_generation(channel.job_id) == generation + 1
    # The same reply again (a retried poll) changes nothing and wakes nobody.
    again = channel.a.poll({"replies": [_reply("m-a", b"another answer")]})
    assert again.status_code == 200, again.text
    assert [r.payload for r in fetch_replies(channel.engine, message_ids=["m-a"])] == [b"answer"]
    assert channel.notifier.reply_generation(channel.job_id) == generation + 1


def test_a_reply_to_another_nodes_message_is_left_out_and_the_rest_of_the_poll_goes_on(channel: Channel) -> None:
    """Node B cannot answer A's message; its own reply in the same poll is kept and its queue is delivered."""
    _deliver(channel, channel.a, "m-a")
    _deliver(channel, channel.b, "m-b")
    enqueue_message(channel.engine, message_id="m-b2", node_id=channel.b.node_id, payload=b"q", job_id=channel.job_id)
    answer = channel.b.poll({"replies": [_reply("m-a", b"forged"), _reply("m-b", b"mine")]})
    assert answer.status_code == 200, answer.text
    assert [m["id"] for m in answer.json()["messages"]] == ["m-b2"]
    assert fetch_replies(channel.engine, message_ids=["m-a"]) == []
    assert [r.payload for r in fetch_replies(channel.engine, message_ids=["m-b"])] == [b"mine"]
    assert "forged" not in answer.text


def test_a_poll_with_a_reply_that_is_not_base64_is_refused_and_changes_nothing(channel: Channel) -> None:
    """400, no reply kept, the acknowledgement not taken, nothing delivered by the refused poll."""
    _deliver(channel, channel.a, "m-a")
    enqueue_message(channel.engine, message_id="m-a2", node_id=channel.a.node_id, payload=b"q", job_id=channel.job_id)
    refused = channel.a.poll({"acks": ["m-a"], "replies": [{"message_id": "m-a", "payload": "not base64!"}]})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_request"
    assert fetch_replies(channel.engine, message_ids=["m-a"]) == []
    assert get_message(channel.engine, message_id="m-a").acked_at is None
    assert get_message(channel.engine, message_id="m-a2").delivered_at is None
