"""The one adapter over Flower's internals (common.flower) and the model registry it travels with."""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from common.errors import ErrorCode, InputError
from common.flower import (
    RESERVED_NODE_IDS,
    SENTINEL_RUN_ID,
    SUPERLINK_NODE_ID,
    ReplyErrorCode,
    assign_message_id,
    ensure_task_identity,
    error_reply,
    flower_node_id,
    flower_run_id,
    instruction_problems,
    is_reserved_node_id,
    make_reply,
    message_from_bytes,
    message_to_bytes,
    reply_problems,
    route_flower_logging,
    stamp_run_id,
)
from common.models import build_model, model_names

NODE = flower_node_id("st-elsewhere")


def _instruction() -> Message:
    ensure_task_identity()
    content = RecordDict(
        {
            "arrays": ArrayRecord([np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, 2], dtype=np.int64)]),
            "config": ConfigRecord({"server-round": 3, "lr": 0.05, "hidden": [64, 64], "name": "x", "flag": True}),
            "metrics": MetricRecord({"n": 7, "loss": 0.25}),
        }
    )
    message = Message(content, NODE, "train", ttl=120.0, group_id="round-3")
    assign_message_id(message)
    stamp_run_id(message, flower_run_id("job-a"))
    return message


def test_round_trip_preserves_every_metadata_field_and_the_content() -> None:
    """message_from_bytes(message_to_bytes(m)) has m's metadata (ids, nodes, type, group, ttl...) and records."""
    message = _instruction()

    back = message_from_bytes(message_to_bytes(message))

    assert back.metadata == message.metadata
    assert back.metadata.message_id == message.metadata.message_id
    assert back.metadata.run_id == flower_run_id("job-a")
    assert (back.metadata.src_node_id, back.metadata.dst_node_id) == (SUPERLINK_NODE_ID, NODE)
    assert (back.metadata.message_type, back.metadata.group_id, back.metadata.ttl) == ("train", "round-3", 120.0)
    arrays = back.content.array_records["arrays"].to_numpy_ndarrays()
    assert np.array_equal(arrays[0], np.arange(12, dtype=np.float32).reshape(3, 4))
    assert arrays[1].dtype == np.int64
    assert dict(back.content.config_records["config"]) == dict(message.content.config_records["config"])
    assert dict(back.content.metric_records["metrics"]) == {"n": 7, "loss": 0.25}


def test_serialisation_is_deterministic() -> None:
    """The same message serialises to the same bytes every time (map fields in a fixed order)."""
    message = _instruction()

    assert message_to_bytes(message) == message_to_bytes(message)


def test_reply_round_trip_keeps_the_link_to_its_instruction() -> None:
    """A reply carries its own message id, the instruction's id as reply_to, and swapped node ids."""
    instruction = _instruction()

    reply = message_from_bytes(message_to_bytes(make_reply(instruction, RecordDict({"m": MetricRecord({"k": 1})}))))

    assert reply.metadata.reply_to_message_id == instruction.metadata.message_id
    assert reply.metadata.message_id not in ("", instruction.metadata.message_id)
    assert (reply.metadata.src_node_id, reply.metadata.dst_node_id) == (NODE, SUPERLINK_NODE_ID)
    assert reply.metadata.run_id == instruction.metadata.run_id
    assert reply_problems(reply) == []


def test_error_reply_carries_a_code_and_a_fixed_sentence() -> None:
    """An error reply survives the wire with its medfed code and the catalog sentence, nothing else."""
    instruction = _instruction()

    reply = message_from_bytes(message_to_bytes(error_reply(instruction, ReplyErrorCode.MESSAGE_TYPE_REFUSED)))

    assert reply.has_error()
    assert not reply.has_content()
    assert reply.error.code == ReplyErrorCode.MESSAGE_TYPE_REFUSED
    assert int(ReplyErrorCode.MESSAGE_TYPE_REFUSED) == 102
    assert reply.error.reason == "This job does not allow this message type at this node."
    assert reply.metadata.reply_to_message_id == instruction.metadata.message_id


@pytest.mark.parametrize("payload", [b"", b"\xff\xfe not protobuf", b"\x0a\x05hello"])
def test_bytes_that_are_not_a_message_raise_input_error_without_echoing_them(payload: bytes) -> None:
    """message_from_bytes raises InputError(invalid_request) whose text does not quote the payload."""
    with pytest.raises(InputError) as caught:
        message_from_bytes(payload)

    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert "hello" not in str(caught.value)


def test_flower_node_id_is_stable_and_distinct_per_name() -> None:
    """A node's id is a pure function of its name (pinned value) and differs between names."""
    assert flower_node_id("st-elsewhere") == 9024257049556603089
    assert flower_node_id("st-elsewhere") == NODE
    assert len({flower_node_id(f"node-{i}") for i in range(500)}) == 500


def test_flower_node_ids_are_positive_63_bit_and_never_reserved() -> None:
    """Derived node ids lie in [2, 2**63) and are never 0 or SUPERLINK_NODE_ID."""
    ids = [flower_node_id(f"hospital-{i}") for i in range(2000)]

    assert all(1 < node_id < 2**63 for node_id in ids)
    assert not RESERVED_NODE_IDS & set(ids)
    assert {0, 1} == RESERVED_NODE_IDS
    assert SUPERLINK_NODE_ID == 1


def test_a_digest_that_lands_on_a_reserved_id_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the hash of a name gives 1, then 0, derivation moves on to the next counter value."""
    values = iter([1, 0, 42])

    class FakeDigest:
        def __init__(self, *_: Any) -> None:
            self._value = next(values)

        def digest(self) -> bytes:
            return self._value.to_bytes(8, "big") + bytes(24)

    monkeypatch.setattr(hashlib, "sha256", FakeDigest)

    assert flower_node_id("unlucky") == 42


def test_flower_run_id_is_stable_and_never_the_sentinel() -> None:
    """A job's run id is a pure function of the job id and never the sentinel run id 0."""
    assert flower_run_id("job-1") == flower_run_id("job-1") == 641779065400998142
    assert SENTINEL_RUN_ID not in {flower_run_id(f"job-{i}") for i in range(2000)}


@pytest.mark.parametrize(("node_id", "reserved"), [(0, True), (1, True), (-5, True), (2**63, True), (2, False)])
def test_is_reserved_node_id(node_id: int, reserved: bool) -> None:
    """0, 1 and anything outside the positive 63-bit range are reserved; 2 is a usable node id."""
    assert is_reserved_node_id(node_id) is reserved


def test_assign_message_id_gives_a_fresh_uuid_each_time() -> None:
    """Each push gives the message a new UUID4 string id, as Flower's InMemoryGrid does."""
    message = _instruction()

    first = message.metadata.message_id
    second = assign_message_id(message)

    assert second != first
    assert message.metadata.message_id == second
    assert uuid.UUID(second).version == 4


def test_the_sentinel_identity_lets_any_thread_build_valid_instructions() -> None:
    """After ensure_task_identity(), Message(...) works and comes from the SuperLink node id, run id 0."""
    ensure_task_identity()
    ensure_task_identity()  # idempotent

    message = Message(RecordDict(), NODE, "query")
    unstamped_run_id = message.metadata.run_id
    assign_message_id(message)

    assert message.metadata.src_node_id == SUPERLINK_NODE_ID
    assert unstamped_run_id == SENTINEL_RUN_ID
    assert instruction_problems(message) == []


def test_flower_logs_reach_the_logging_tree_without_their_arguments(caplog: pytest.LogCaptureFixture) -> None:
    """After route_flower_logging(), a flwr record keeps its template, loses its arguments, and bare '%s' goes."""
    route_flower_logging(logging.INFO)
    try:
        flower_logger = logging.getLogger("flwr")
        with caplog.at_level(logging.INFO):
            flower_logger.info("Received error in reply from node %d: %s", NODE, "patient 4711")
            flower_logger.info("\t%s", "a result line")

        messages = [record.getMessage() for record in caplog.records if record.name == "flwr"]
        assert messages == ["Received error in reply from node %d: %s"]
        assert not any(type(handler).__name__ == "ConsoleHandler" for handler in flower_logger.handlers)
    finally:
        route_flower_logging()


def test_build_model_is_reproducible_from_its_seed_without_touching_the_global_rng() -> None:
    """Two MLPs built with one seed have equal weights, and building them leaves torch's global RNG as it was."""
    state = torch.random.get_rng_state()

    first = build_model("mlp", in_features=30, seed=5).state_dict()
    second = build_model("mlp", in_features=30, seed=5).state_dict()
    other = build_model("mlp", in_features=30, seed=6).state_dict()

    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not torch.equal(first["net.0.weight"], other["net.0.weight"])
    assert [tuple(first[key].shape) for key in first] == [(64, 30), (64,), (64, 64), (64,), (1, 64), (1,)]
    assert "mlp" in model_names()
    with pytest.raises(KeyError):
        build_model("resnet")


def test_deterministic_message_ids_depend_on_every_part() -> None:
    """The same job, round, attempt, type and node give the same id; changing any part changes it."""
    from common.flower import deterministic_message_id

    base = ("job-1", 3, 1, "train", 42)
    assert deterministic_message_id(*base) == deterministic_message_id(*base)
    variants = {deterministic_message_id(*base[:i], "other", *base[i + 1 :]) for i in range(len(base))}
    assert len(variants) == len(base)
    assert deterministic_message_id(*base) not in variants
