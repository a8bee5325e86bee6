"""The round driver on an in-process transport: byte format, quorum with one retry, and bit-identical resume."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
from flwr.app import ArrayRecord

from common.flower import ensure_task_identity, flower_node_id
from coordinator.federation.driver import (
    DriverState,
    FedAvgDriver,
    NodeOutcome,
    QuorumError,
    StopRequestedError,
    arrays_digest,
    decode_arrays,
    encode_arrays,
    initial_state,
)
from coordinator.federation.grid import MedfedGrid
from coordinator.federation.jobs.specs import FedAvgMlpSpec
from coordinator.federation.memory import Endpoint, InMemoryTransport
from node.federation.apps import builtin_apps
from node.federation.apps.data import make_tabular
from node.federation.host import ClientAppHost

SPEC = FedAvgMlpSpec(rounds=3, hidden=(8,), batch_size=64, quorum=3, round_timeout_s=30)
NODE_IDS = [flower_node_id(f"unit-site-{i}") for i in range(3)]


def _endpoint(node_id: int, *, refuse: bool = False) -> Endpoint:
    host = ClientAppHost(
        node_id=node_id,
        apps=builtin_apps(count_patients=lambda: 1, load_features=lambda seed: make_tabular(300, seed=seed + node_id)),
    )
    allowed = frozenset() if refuse else frozenset({"train", "evaluate"})

    def call(payload: bytes, *, job_id: str) -> bytes:
        return host.handle(payload, job_id=job_id, app="fedavg_mlp", allowed_message_types=allowed)

    return call


@pytest.fixture(scope="module")
def transport() -> Iterator[InMemoryTransport]:
    """Three nodes that train and evaluate."""
    ensure_task_identity()
    with InMemoryTransport({node_id: _endpoint(node_id) for node_id in NODE_IDS}) as made:
        yield made


@dataclass
class Recorder:
    """An observer that keeps what it is told and stops after ``stop_after`` rounds."""

    stop_after: int | None = None
    saved: list[DriverState] = field(default_factory=list)
    finished: list[tuple[int, bool, int]] = field(default_factory=list)

    def round_started(self, server_round: int, *, attempt: int, deadline: float) -> None:
        """Nothing to do."""

    def round_finished(
        self, server_round: int, *, completed: bool, attempts: int, outcomes: Sequence[NodeOutcome], started: float
    ) -> None:
        """Keep the round's outcome."""
        self.finished.append((server_round, completed, attempts))

    def state_saved(self, state: DriverState) -> None:
        """Keep the state as the store would: through its bytes."""
        self.saved.append(
            DriverState.from_bytes(
                round=state.round,
                arrays=encode_arrays(state.arrays),
                strategy_state=state.strategy_bytes(),
                rng_state=state.rng_bytes(),
            )
        )

    def should_stop(self) -> bool:
        """True once ``stop_after`` rounds have been saved."""
        return self.stop_after is not None and len(self.saved) >= self.stop_after


def _drive(
    transport: InMemoryTransport, state: DriverState, observer: Recorder, spec: FedAvgMlpSpec = SPEC
) -> DriverState:
    grid = MedfedGrid(transport, job_id=str(uuid.uuid4()))
    return FedAvgDriver(grid, spec, seed=9, observer=observer).run(state)


def test_arrays_survive_their_byte_format_exactly_and_encode_the_same_twice() -> None:
    """Encoding is deterministic and decoding gives back every array's names, dtype, shape and bits."""
    arrays = initial_state(SPEC, seed=3).arrays
    data = encode_arrays(arrays)
    assert encode_arrays(arrays) == data
    back = decode_arrays(data)
    assert list(back.keys()) == list(arrays.keys())
    for key in arrays:
        assert back[key].numpy().dtype == arrays[key].numpy().dtype
        assert np.array_equal(back[key].numpy(), arrays[key].numpy())
    assert arrays_digest(back) == arrays_digest(arrays)


def test_a_run_stopped_after_round_one_and_resumed_from_its_saved_state_ends_bit_identical(
    transport: InMemoryTransport,
) -> None:
    """Resuming from the bytes saved after round 1 gives the arrays, metrics and RNG state of an unbroken run."""
    unbroken = _drive(transport, initial_state(SPEC, seed=9), Recorder())
    first = Recorder(stop_after=1)
    with pytest.raises(StopRequestedError):
        _drive(transport, initial_state(SPEC, seed=9), first)
    resumed = _drive(transport, first.saved[-1], Recorder())
    assert resumed.round == unbroken.round == 3
    assert arrays_digest(resumed.arrays) == arrays_digest(unbroken.arrays)
    assert resumed.history == unbroken.history
    assert resumed.rng_state == unbroken.rng_state


def test_a_round_short_of_its_quorum_is_retried_once_then_fails_without_aggregating() -> None:
    """With one of three nodes refusing, quorum 3 is missed twice: QuorumError, and no state is ever saved."""
    endpoints = {node_id: _endpoint(node_id, refuse=node_id == NODE_IDS[0]) for node_id in NODE_IDS}
    observer = Recorder()
    with InMemoryTransport(endpoints) as transport, pytest.raises(QuorumError) as failed:
        _drive(transport, initial_state(SPEC, seed=9), observer)
    assert "quorum not met in round 1 after 2 attempts: 2 valid train replies, quorum 3" in failed.value.detail
    assert observer.saved == []
    assert observer.finished == [(1, False, 2)]


def test_a_quorum_the_remaining_nodes_meet_lets_the_round_complete() -> None:
    """With one node refusing and quorum 2, every round aggregates the two valid replies."""
    endpoints = {node_id: _endpoint(node_id, refuse=node_id == NODE_IDS[0]) for node_id in NODE_IDS}
    observer = Recorder()
    spec = SPEC.model_copy(update={"quorum": 2, "rounds": 1})
    with InMemoryTransport(endpoints) as transport:
        final = _drive(transport, initial_state(spec, seed=9), observer, spec)
    assert final.round == 1
    assert observer.finished == [(1, True, 1)]
    assert isinstance(final.arrays, ArrayRecord)
