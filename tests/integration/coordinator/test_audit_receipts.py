"""Audit chain-head receipts at the coordinator: the newest per node is kept; one going backwards is refused."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from common.audit_receipt import Receipt, sign_receipt
from common.crypto import SigningKey, sign_request
from common.errors import NotFoundError
from coordinator.store import receipts
from coordinator.store.nodes import register_node
from tests.integration.coordinator.conftest import CoordinatorClient

PATH = "/channel/v1/receipts"


@pytest.fixture
def tls_client(coordinator: CoordinatorClient) -> Iterator[TestClient]:
    """The coordinator app over 'https' (channel routes answer over TLS only)."""
    with TestClient(coordinator.client.app, base_url="https://testserver") as client:
        yield client


def _node(coordinator: CoordinatorClient, name: str) -> tuple[str, SigningKey]:
    key = SigningKey.generate()
    record = register_node(coordinator.engine, name=name, public_key=key.public_key().to_text())
    return record.id, key


def _receipt(key: SigningKey, node_id: str, seq: int, digest: str = "ab" * 32) -> dict[str, object]:
    audit_key = SigningKey.generate().public_key().to_text()
    return sign_receipt(key, Receipt(node=node_id, seq=seq, hash=digest, time=seq, audit_key=audit_key))


def _post(client: TestClient, key: SigningKey, node_id: str, document: object) -> int:
    body = orjson.dumps(document)
    headers = sign_request(key, key_id=node_id, method="POST", path_and_query=PATH, body=body)
    return client.post(PATH, content=body, headers={**headers, "Content-Type": "application/json"}).status_code


def test_the_newest_receipt_is_kept_and_served_as_signed(
    coordinator: CoordinatorClient, tls_client: TestClient
) -> None:
    """Receipts for seq 3 then 9 are stored; the same head again is fine; GET returns the one for 9 byte for byte."""
    node_id, key = _node(coordinator, "St Mary")
    assert _post(tls_client, key, node_id, _receipt(key, node_id, 3)) == 200
    newest = _receipt(key, node_id, 9)
    assert _post(tls_client, key, node_id, newest) == 200
    assert _post(tls_client, key, node_id, newest) == 200
    answer = tls_client.get(f"/api/nodes/{node_id}/audit-receipt", headers=coordinator.observer)
    assert answer.status_code == 200
    assert answer.json()["receipt"] == newest
    assert answer.json()["conflicts"] == 0


@pytest.mark.parametrize(("seq", "digest"), [(4, "ab" * 32), (9, "cd" * 32)])
def test_a_receipt_going_backwards_is_refused_and_counted(
    coordinator: CoordinatorClient, tls_client: TestClient, seq: int, digest: str
) -> None:
    """After seq 9, a lower seq or another hash for 9 (a rollback or rewrite at the node) is 409 and counted."""
    node_id, key = _node(coordinator, "St Mary")
    newest = _receipt(key, node_id, 9)
    assert _post(tls_client, key, node_id, newest) == 200
    assert _post(tls_client, key, node_id, _receipt(key, node_id, seq, digest)) == 409
    stored = receipts.get_receipt(coordinator.engine, node_id=node_id)
    assert (stored.seq, stored.receipt, stored.conflicts) == (9, newest, 1)
    assert stored.last_conflict_at is not None


def test_a_node_cannot_file_receipts_for_another_or_unsigned_ones(
    coordinator: CoordinatorClient, tls_client: TestClient
) -> None:
    """A receipt naming another node is 403; one signed by another key is 400; neither is stored."""
    node_id, key = _node(coordinator, "St Mary")
    other_id, other_key = _node(coordinator, "General")
    assert _post(tls_client, key, node_id, _receipt(key, other_id, 5)) == 403
    assert _post(tls_client, key, node_id, _receipt(other_key, node_id, 5)) == 400
    with pytest.raises(NotFoundError):
        receipts.get_receipt(coordinator.engine, node_id=node_id)
    with pytest.raises(NotFoundError):
        receipts.get_receipt(coordinator.engine, node_id=other_id)


def test_receipts_need_a_signed_request_and_reading_them_a_viewer(
    coordinator: CoordinatorClient, tls_client: TestClient
) -> None:
    """Without the node's request signature the post is 401; a researcher token may not read receipts."""
    node_id, key = _node(coordinator, "St Mary")
    response = tls_client.post(PATH, content=orjson.dumps(_receipt(key, node_id, 1)))
    assert response.status_code == 401
    assert tls_client.get(f"/api/nodes/{node_id}/audit-receipt", headers=coordinator.researcher).status_code == 403
    assert tls_client.get("/api/nodes/nobody/audit-receipt", headers=coordinator.admin).status_code == 404
