"""Secure aggregation of model updates: the coordinator receives only masked vectors, and their sum is FedAvg.

Three nodes answer through :class:`InMemoryTransport`; every payload a node sends back (everything the
coordinator receives) is recorded. The same job without secure aggregation, on fresh nodes, gives each
node's true update: secure round 2 (round 1 is the key step) starts from the same initial model and the
same minibatches as plain round 1.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import ConfigRecord, Message, MessageType, RecordDict

from common.analytics.task import decode_refusal
from common.errors import ErrorCode
from common.flower import ensure_task_identity, flower_node_id, message_from_bytes
from common.models.task import LEARNING_ERROR_CODE
from coordinator.federation.driver import DriverState, FedAvgDriver, QuorumError, initial_state
from coordinator.federation.grid import MedfedGrid
from coordinator.federation.jobs.learning import LearningSpec, learning_config
from coordinator.federation.jobs.specs import parse_spec
from coordinator.federation.memory import InMemoryTransport
from node.federation.apps.learning import learning_app
from node.federation.host import ClientAppHost, InstalledApp
from node.federation.sources import LoadedSource, SourceLoader

NODE_IDS = [flower_node_id(f"secagg-site-{i}") for i in range(3)]
ROWS = (40, 64, 28)
BITS = 16
LOCAL_STEPS, LR = 5, 0.05
# The declared range: a binary cross-entropy gradient coordinate is at most |x_j| (1 for the bias), and
# standardised inputs are taken to stay within 10, so no coordinate of an update can pass steps x lr x 10.
CLIP_RANGE = LOCAL_STEPS * LR * 10
STEP = 2 * CLIP_RANGE / (2**BITS - 1)
TASK: dict[str, Any] = {
    "kind": "learning",
    "model": "logistic_regression",
    "source": {"dataset": "table"},
    "features": ["x0", "x1", "x2"],
    "target": "y",
    "split": {"column": "split"},
    "standardize": "node_train",
    "local_steps": LOCAL_STEPS,
    "batch_size": 4,
    "lr": LR,
    "quorum": 3,
    "round_timeout_s": 30,
}
SECURE = {"secure_aggregation": {"clip_range": CLIP_RANGE, "bits": BITS}}


def _table(index: int) -> pd.DataFrame:
    rng = np.random.default_rng(500 + index)
    n = ROWS[index]
    x = rng.normal(size=(n, 3)) + index * 0.4
    return pd.DataFrame(
        {
            "x0": x[:, 0],
            "x1": x[:, 1],
            "x2": x[:, 2],
            "y": (x @ np.array([1.0, -0.5, 0.3]) + rng.normal(size=n) > 0).astype(int),
            "split": np.where(np.arange(n) % 4 == 3, "test", "train"),
        }
    )


def _loader(frame: pd.DataFrame, snapshot: str) -> SourceLoader:
    def load(source: Any) -> LoadedSource:
        return LoadedSource(frame, snapshot)

    return load


@dataclass
class Site:
    """One node: its host, every payload it sent back; ``drop_from_round`` makes it fail secure rounds."""

    node_id: int
    host: ClientAppHost
    payloads: list[Message] = field(default_factory=list)
    drop_from_round: int | None = None

    def call(self, payload: bytes, *, job_id: str) -> bytes:
        """The node's endpoint: its reply (or a refusal, for a dropping node), recorded as sent."""
        message = message_from_bytes(payload)
        server_round = message.content.config_records["config"].get("server-round")
        limit = self.drop_from_round
        is_train = message.metadata.message_type == MessageType.TRAIN
        if is_train and limit is not None and isinstance(server_round, int) and server_round >= limit:
            reply = self.host.refuse(payload, job_id=job_id, app="learning", code=ErrorCode.SECURE_AGGREGATION_FAILED)
        else:
            reply = self.host.handle(
                payload, job_id=job_id, app="learning", allowed_message_types=frozenset({"train", "evaluate"})
            )
        self.payloads.append(message_from_bytes(reply))
        return reply


def _sites() -> list[Site]:
    ensure_task_identity()
    torch.set_num_threads(1)
    made = []
    for index, node_id in enumerate(NODE_IDS):
        frame = _table(index)
        app = learning_app(_loader(frame, f"snap-{index}"))
        made.append(Site(node_id, ClientAppHost(node_id=node_id, apps={"learning": InstalledApp(app)})))
    return made


class _Observer:
    def round_started(self, server_round: int, *, attempt: int, deadline: float) -> None:
        """Nothing to do."""

    def round_finished(
        self, server_round: int, *, completed: bool, attempts: int, outcomes: Any, started: float
    ) -> None:
        """Nothing to do."""

    def state_saved(self, state: DriverState) -> None:
        """Nothing to do."""

    def should_stop(self) -> bool:
        """Never."""
        return False


def _spec(**changes: Any) -> LearningSpec:
    spec = parse_spec({**TASK, **changes})
    assert isinstance(spec, LearningSpec)
    return spec


def _run(sites: list[Site], spec: LearningSpec, job_id: str | None = None) -> DriverState:
    with InMemoryTransport({site.node_id: site.call for site in sites}) as transport:
        grid = MedfedGrid(transport, job_id=job_id or str(uuid.uuid4()))
        return FedAvgDriver(grid, spec, seed=3, observer=_Observer()).run(initial_state(spec, 3))


def _flat(arrays: Any) -> np.ndarray:
    return np.concatenate([array.numpy().astype(np.float64).reshape(-1) for array in arrays.values()])


def test_the_coordinator_sees_only_masked_updates_whose_sum_is_fedavg_within_one_quantisation_step() -> None:
    """Every payload the coordinator received in a secure job is far from every node's true update and
    model (read with any node's weight); the secure aggregate after round 2 equals plain FedAvg after its
    round 1 within one quantisation step (2R / (2^16 - 1)) per coordinate; no coordinate was clipped."""
    plain_sites, secure_sites = _sites(), _sites()
    spec = _spec(rounds=1)
    start = _flat(initial_state(spec, 3).arrays)
    plain = _run(plain_sites, spec)
    truth = {}
    for site in plain_sites:
        (reply,) = [m for m in site.payloads if m.metadata.message_type == MessageType.TRAIN]
        model = _flat(reply.content.array_records["arrays"])
        weight = reply.content.metric_records["metrics"]["num-examples"]
        assert isinstance(weight, int)
        truth[site.node_id] = (model, model - start, weight)
    assert max(float(np.abs(update).max()) for _, update, _ in truth.values()) < CLIP_RANGE  # nothing can clip

    secure = _run(secure_sites, _spec(rounds=2, privacy=SECURE))

    np.testing.assert_allclose(_flat(secure.arrays), _flat(plain.arrays), rtol=0, atol=STEP)
    assert secure.history["train"]["1"] == {"secagg-setup": 1.0}
    assert secure.history["train"]["2"]["secagg_clipped"] == 0
    assert secure.history["train"]["2"]["secagg_participants"] == 3
    received = [payload for site in secure_sites for payload in site.payloads]
    masked_replies = 0
    for payload in received:
        assert not payload.has_error()
        if payload.metadata.message_type == MessageType.TRAIN:
            assert "num-examples" not in payload.content.metric_records["metrics"]
        for record in payload.content.array_records.values():
            for array in record.values():
                values = array.numpy()
                masked_replies += values.dtype == np.uint64
                for model, update, weight in truth.values():
                    if values.dtype == np.uint64:  # read as that node's n x level, then as its update
                        read = values[: update.size].astype(np.float64) / weight * STEP - CLIP_RANGE
                    else:
                        read = values.astype(np.float64).reshape(-1)[: update.size]
                    assert read.size != update.size or float(np.abs(read - update).max()) > 100 * STEP
                    assert read.size != model.size or float(np.abs(read - model).max()) > 100 * STEP
    assert masked_replies == 3


def test_a_participant_that_drops_out_fails_the_round_and_nothing_is_aggregated() -> None:
    """With quorum 2 of 3, a node that fails its secure round leaves the others' masks unremovable: both
    attempts of round 2 fail and the job stops with QuorumError, its model never updated."""
    sites = _sites()
    sites[2].drop_from_round = 2
    with pytest.raises(QuorumError, match="round 2"):
        _run(sites, _spec(rounds=2, quorum=2, privacy=SECURE))
    answered = [m for m in sites[0].payloads if m.metadata.message_type == MessageType.TRAIN]
    assert len(answered) == 3  # the key step, then round 2 twice (two attempts, two nonces)


def test_a_node_never_answers_a_secure_task_with_a_plain_model() -> None:
    """A train instruction of a secure task without the round's keys and nonce is refused with
    secure_aggregation_failed; the node sends no model."""
    site = _sites()[0]
    spec = _spec(privacy=SECURE)
    config = ConfigRecord({**learning_config(spec, 3), "server-round": 1})
    content = RecordDict({"arrays": initial_state(spec, 3).arrays, "config": config})
    with InMemoryTransport({site.node_id: site.call}) as transport:
        grid = MedfedGrid(transport, job_id=str(uuid.uuid4()))
        (reply,) = grid.send_and_receive([Message(content, site.node_id, MessageType.TRAIN)], timeout=30)
    assert reply.has_error()
    assert reply.error.code == LEARNING_ERROR_CODE
    assert decode_refusal(reply.error.reason or "")[0] is ErrorCode.SECURE_AGGREGATION_FAILED


def test_secure_aggregation_is_refused_with_central_dp_cyclic_or_a_quorum_below_two() -> None:
    """Central DP clips each update at the coordinator, Cyclic trains one node, a quorum of 1 could sum one."""
    for bad in (
        {"central_dp": {"noise_multiplier": 1.0, "clipping_norm": 1.0, "num_sampled_clients": 3}},
        {"strategy": {"name": "cyclic"}},
        {"quorum": 1},
    ):
        with pytest.raises(Exception, match="invalid job spec"):
            _spec(privacy=SECURE, **bad)
