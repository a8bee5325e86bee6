"""A node's heartbeat with an absurd clock is refused or recorded within bounds, never a 500 (found by the fuzzer)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from common.crypto import SigningKey, sign_request
from coordinator.store.nodes import get_node, register_node
from tests.integration.coordinator.conftest import make_coordinator_client


@dataclass
class Heartbeats:
    """Signed heartbeats of one enrolled node."""

    client: TestClient
    engine: sa.Engine
    key: SigningKey
    node_id: str

    def send(self, body: dict[str, object]) -> httpx2.Response:
        content = orjson.dumps(body)
        headers = sign_request(
            self.key, key_id=self.node_id, method="POST", path_and_query="/channel/v1/heartbeat", body=content
        )
        headers["Content-Type"] = "application/json"
        return self.client.post("/channel/v1/heartbeat", content=content, headers=headers)


@pytest.fixture
def heartbeats(coordinator_database_url: str, tmp_path: Path) -> Iterator[Heartbeats]:
    """The coordinator over TLS (the channel answers nothing else) and one enrolled node's key."""
    made = make_coordinator_client(coordinator_database_url, tmp_path)
    key = SigningKey.generate()
    node = register_node(made.engine, name="Clock Site", public_key=key.public_key().to_text())
    with TestClient(made.client.app, base_url="https://testserver") as client:
        yield Heartbeats(client=client, engine=made.engine, key=key, node_id=node.id)
    made.engine.dispose()


def test_a_node_time_out_of_range_is_a_400_and_a_far_off_clock_is_recorded_at_the_bound(
    heartbeats: Heartbeats,
) -> None:
    """node_time -1e69 or 1e69: 400; 100 days ahead: 200, skew recorded as the 32-bit bound."""
    for node_time in (-1.152099967774748e69, 1e69):
        refused = heartbeats.send({"version": "0.1", "node_time": node_time})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_request"
    ahead = heartbeats.send({"version": "0.1", "node_time": time.time() + 100 * 86_400})
    assert ahead.status_code == 200, ahead.text
    assert ahead.json()["clock_skew_ms"] == 2**31 - 1
    assert get_node(heartbeats.engine, node_id=heartbeats.node_id).clock_skew_ms == 2**31 - 1
