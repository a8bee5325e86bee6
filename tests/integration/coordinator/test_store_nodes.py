"""The node registry: registering, looking up, heartbeats and revocation, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from common.errors import AccessError, ConflictError, ErrorCode, InputError, NotFoundError
from coordinator.store.nodes import (
    NodeStatus,
    get_node,
    get_node_by_flower_id,
    list_nodes,
    record_heartbeat,
    register_node,
    revoke_node,
)
from tests.integration.coordinator.conftest import new_public_key

SECOND = 1_000_000


def test_register_node_keys_it_by_slug_with_a_random_flower_id(engine: sa.Engine) -> None:
    """A registered node gets its name's slug as id and a Flower id in 2..2**63-1, and is found by both."""
    key = new_public_key()
    node = register_node(
        engine,
        name="St Mary's Hospital",
        public_key=key + "=",  # padding is accepted and dropped
        seal_public_key=new_public_key(),
        version="0.1.0",
        capabilities={"handlers": ["count"]},
        now=5 * SECOND,
    )
    assert node.id == "st-mary-s-hospital"
    assert node.display_name == "St Mary's Hospital"
    assert node.public_key == key
    assert 2 <= node.flower_node_id < 2**63
    assert node.status is NodeStatus.ENROLLED
    assert node.enrolled_at == 5 * SECOND
    assert get_node(engine, node_id=node.id) == node
    assert get_node_by_flower_id(engine, flower_node_id=node.flower_node_id) == node
    other = register_node(engine, name="Alpha Clinic", public_key=new_public_key())
    assert other.flower_node_id != node.flower_node_id
    assert [n.id for n in list_nodes(engine)] == ["alpha-clinic", "st-mary-s-hospital"]


def test_a_taken_node_id_is_a_conflict(engine: sa.Engine) -> None:
    """Two names with the same slug cannot both register; the first one stays as it was."""
    first = register_node(engine, name="Site A", public_key=new_public_key())
    with pytest.raises(ConflictError):
        register_node(engine, name="site-a", public_key=new_public_key())
    assert get_node(engine, node_id="site-a") == first


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("", None),
        ("!!!", None),
        ("x" * 201, None),
        ("ok", "not base64 !"),
        ("ok", "AAAA"),  # three bytes, not 32
    ],
)
def test_bad_names_and_keys_are_input_errors(engine: sa.Engine, name: str, key: str | None) -> None:
    """Names without letters or digits, overlong names and keys that are not 32 bytes are refused."""
    with pytest.raises(InputError) as caught:
        register_node(engine, name=name, public_key=key or new_public_key())
    if key is not None:
        assert all(key not in hint for hint in caught.value.hints)
    assert list_nodes(engine) == []


def test_heartbeat_records_what_the_node_reports(engine: sa.Engine) -> None:
    """A heartbeat sets last_seen and replaces the values given; values not given stay."""
    node = register_node(engine, name="Site B", public_key=new_public_key(), version="0.1.0")
    record_heartbeat(
        engine, node_id=node.id, version="0.2.0", capabilities={"models": ["mlp"]}, clock_skew_ms=-40, now=9 * SECOND
    )
    seen = get_node(engine, node_id=node.id)
    assert (seen.last_seen_at, seen.version, seen.capabilities, seen.clock_skew_ms) == (
        9 * SECOND,
        "0.2.0",
        {"models": ["mlp"]},
        -40,
    )
    record_heartbeat(engine, node_id=node.id, now=10 * SECOND)
    again = get_node(engine, node_id=node.id)
    assert again.last_seen_at == 10 * SECOND
    assert (again.version, again.capabilities, again.clock_skew_ms) == ("0.2.0", {"models": ["mlp"]}, -40)


def test_heartbeats_of_unknown_or_revoked_nodes_are_refused(engine: sa.Engine) -> None:
    """An unknown node is not found; a revoked node is forbidden and its row does not change."""
    with pytest.raises(NotFoundError):
        record_heartbeat(engine, node_id="nobody")
    node = register_node(engine, name="Site C", public_key=new_public_key())
    assert revoke_node(engine, node_id=node.id) is True
    assert revoke_node(engine, node_id=node.id) is False
    with pytest.raises(AccessError) as caught:
        record_heartbeat(engine, node_id=node.id, now=SECOND)
    assert caught.value.code is ErrorCode.FORBIDDEN
    revoked = get_node(engine, node_id=node.id)
    assert revoked.status is NodeStatus.REVOKED
    assert revoked.last_seen_at is None
    assert [n.id for n in list_nodes(engine, status=NodeStatus.ENROLLED)] == []
    with pytest.raises(NotFoundError):
        revoke_node(engine, node_id="nobody")


def test_online_means_enrolled_and_heard_from_within_the_window(engine: sa.Engine) -> None:
    """A node is online up to offline_after_s after its last heartbeat, and never once revoked."""
    node = register_node(engine, name="Site D", public_key=new_public_key())
    assert not get_node(engine, node_id=node.id).is_online(now=SECOND, offline_after_s=30)
    record_heartbeat(engine, node_id=node.id, now=100 * SECOND)
    seen = get_node(engine, node_id=node.id)
    assert seen.is_online(now=130 * SECOND, offline_after_s=30)
    assert not seen.is_online(now=131 * SECOND, offline_after_s=30)
    revoke_node(engine, node_id=node.id)
    assert not get_node(engine, node_id=node.id).is_online(now=101 * SECOND, offline_after_s=30)


def test_capabilities_must_be_a_small_json_object(engine: sa.Engine) -> None:
    """Capabilities that are not a JSON object, or larger than 64 KiB, are refused."""
    with pytest.raises(InputError):
        register_node(engine, name="Site E", public_key=new_public_key(), capabilities={"x": "y" * 70_000})
    node = register_node(engine, name="Site E", public_key=new_public_key())
    with pytest.raises(InputError):
        record_heartbeat(engine, node_id=node.id, capabilities=["not", "an", "object"])  # type: ignore[arg-type]
