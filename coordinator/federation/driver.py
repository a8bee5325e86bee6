"""The round driver: a Flower strategy driven one round at a time, with quorum, deadline and resume.

Flower's ``Strategy.start`` runs every round in one call, samples nodes with the process-global
``random`` module, waits forever for ``min_available_nodes`` and keeps its state in memory. medfed
drives the rounds itself and uses the strategy for what it is for: shaping the instructions
(``configure_train`` / ``configure_evaluate``, called over a view of the Grid that holds only the
sampled nodes, so FedProx adds its ``proximal-mu`` and FedOpt records the arrays it sent) and
aggregation (``aggregate_train`` / ``aggregate_evaluate``). A ``fedavg_mlp`` job runs Flower's
``FedAvg``; a ``learning`` job runs the strategy its spec names (:mod:`coordinator.federation.strategies`).
Per round:

1. **Sampling** from a per-job ``random.Random(seed)``: ``max(ceil(fraction x eligible), quorum)``
   nodes of the eligible ones (at most all), sorted by node id. A strategy with its own
   ``sample_train`` (Cyclic: one node per round) chooses instead, from the same RNG; its train phase
   needs that one reply, its evaluation the quorum.
2. **Train, then evaluate**, each over ``grid.send_and_receive`` until the round's deadline
   (``round_timeout_s`` after the attempt starts; both phases share it). Instructions follow Flower's
   conventions (``arrays`` + ``config`` with ``server-round``), so the round number shown anywhere is the
   strategy's ``server-round``. Each node's reply metrics travel to the observer with its outcome.
3. **Quorum**: fewer valid replies (no error) than ``quorum`` in either phase, or fewer eligible nodes
   than ``quorum``, and the attempt is abandoned: nothing is aggregated. The round is retried once (a
   new sample, a new deadline); a second short attempt fails the job with :class:`QuorumError`.
   What the strategy carries between rounds (FedOpt's moments) is put back as it was before an
   abandoned attempt, so a retry aggregates from the same state (Cyclic moves on to its next node).
4. **Persistence**: after the round, the arrays, the strategy's state (round, metrics history and what
   the strategy carries between rounds) and the RNG state go to the observer (the runner stores them
   with ``jobs.save_job_state``): the job's checkpoint of that round.

Resume: :meth:`FedAvgDriver.run` starts from a :class:`DriverState` (the one saved after the last
finished round) and continues with the next round. A round interrupted by a restart is run again from
the start with *new* message ids; the runner drops that round's earlier, unanswered messages first, and
the Grid ignores replies to messages it did not push. The new round is bit-identical to the lost one:
the same global arrays, the same RNG state (so the same sample), and nodes whose local training is
seeded by ``(seed, node, round)``; replies are aggregated in node-id order. So a resumed job ends with
exactly the arrays of an uninterrupted run with the same seed. (A ``learning`` node draws its minibatches
from a data iterator kept in the job's context on the node, and rewinds it when a round it already
trained is asked again: see :mod:`node.federation.apps.learning`.)
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import numpy as np
import orjson
from flwr.app import Array, ArrayRecord, ConfigRecord, ConfigRecordValues, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Strategy

from common.errors import ConflictError
from common.flower import assign_message_id, deterministic_message_id
from common.models import build_model
from coordinator.federation.grid import MedfedGrid
from coordinator.federation.jobs.fedavg import train_config
from coordinator.federation.jobs.learning import LearningSpec, initial_arrays, learning_config
from coordinator.federation.jobs.specs import FedAvgMlpSpec
from coordinator.federation.strategies import build_strategy, load_strategy_state, strategy_state

__all__ = [
    "DriverState",
    "FedAvgDriver",
    "NodeOutcome",
    "QuorumError",
    "RoundObserver",
    "StopRequestedError",
    "arrays_digest",
    "decode_arrays",
    "encode_arrays",
    "initial_state",
]

MODEL_NAME: Final[str] = "mlp"
ATTEMPTS_PER_ROUND: Final[int] = 2  # the first try and one retry
Phase = Literal["train", "evaluate"]
Outcome = Literal["replied", "error", "late", "skipped"]
RoundSpec = FedAvgMlpSpec | LearningSpec
_REPLY_METRICS: Final[str] = "metrics"


class QuorumError(ConflictError):
    """A round had fewer valid replies than the quorum on both attempts; nothing was aggregated."""


class StopRequestedError(Exception):
    """The driver stopped between rounds because it was asked to (cancel or shutdown)."""


@dataclass(frozen=True, slots=True)
class NodeOutcome:
    """What one node did with one instruction of one phase of a round attempt."""

    node_id: int
    phase: Phase
    message_id: str | None
    outcome: Outcome
    metrics: Mapping[str, float] | None = None  # the numbers of a valid reply's "metrics" record


@dataclass(slots=True)
class DriverState:
    """Everything a job resumes from: the state after ``round`` (0: before the first round)."""

    round: int
    arrays: ArrayRecord
    history: dict[str, Any] = field(default_factory=dict)  # "train"/"evaluate": {round: metrics}
    rng_state: Any = None  # random.Random.getstate(), JSON-shaped
    strategy: dict[str, Any] = field(default_factory=dict)  # what the strategy carries between rounds

    def strategy_bytes(self) -> bytes:
        """The strategy's state (round, metrics history, what it carries between rounds) as JSON."""
        document: dict[str, Any] = {"round": self.round, "history": self.history}
        if self.strategy:
            document["strategy"] = self.strategy
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)

    def rng_bytes(self) -> bytes:
        """The sampling RNG's state as JSON."""
        return orjson.dumps(self.rng_state)

    @classmethod
    def from_bytes(cls, *, round: int, arrays: bytes, strategy_state: bytes, rng_state: bytes) -> DriverState:
        """The state saved by :meth:`strategy_bytes`, :meth:`rng_bytes` and :func:`encode_arrays`."""
        strategy = orjson.loads(strategy_state)
        return cls(
            round=round,
            arrays=decode_arrays(arrays),
            history=strategy["history"],
            rng_state=_tuples(orjson.loads(rng_state)),
            strategy=strategy.get("strategy", {}),
        )


def _tuples(value: Any) -> Any:
    """JSON turned ``random.Random.getstate()``'s tuples into lists; ``setstate`` wants tuples back."""
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


class RoundObserver(Protocol):
    """What the runner learns from the driver, and how it asks the driver to stop."""

    def round_started(self, server_round: int, *, attempt: int, deadline: float) -> None:
        """An attempt of a round starts; its replies are awaited until ``deadline`` (Unix time)."""
        ...

    def round_finished(
        self, server_round: int, *, completed: bool, attempts: int, outcomes: Sequence[NodeOutcome], started: float
    ) -> None:
        """A round ends: aggregated (``completed``) or abandoned for good; ``outcomes`` of its last attempt."""
        ...

    def state_saved(self, state: DriverState) -> None:
        """Persist the state after a completed round (before the next round starts)."""
        ...

    def should_stop(self) -> bool:
        """True when the driver should stop before the next round."""
        ...


# --- arrays on disk: a deterministic byte format (no pickle, no zip timestamps) ---------------------


def encode_arrays(arrays: ArrayRecord) -> bytes:
    """A JSON header (names, dtypes, shapes, in order) then each array's C-order bytes."""
    header: list[list[Any]] = []
    chunks: list[bytes] = []
    for name, array in arrays.items():
        values = np.ascontiguousarray(array.numpy())
        header.append([name, values.dtype.str, list(values.shape)])
        chunks.append(values.tobytes())
    head = orjson.dumps(header)
    return struct.pack(">I", len(head)) + head + b"".join(chunks)


def decode_arrays(data: bytes) -> ArrayRecord:
    """The record :func:`encode_arrays` wrote."""
    (length,) = struct.unpack(">I", data[:4])
    offset = 4 + length
    record = ArrayRecord()
    for name, dtype, shape in orjson.loads(data[4:offset]):
        kind = np.dtype(dtype)
        size = kind.itemsize * math.prod(shape)
        values = np.frombuffer(data[offset : offset + size], dtype=kind).reshape(shape).copy()
        record[name] = Array(values)
        offset += size
    return record


def arrays_digest(arrays: ArrayRecord) -> str:
    """SHA-256 of :func:`encode_arrays`: equal digests mean bit-identical models."""
    return hashlib.sha256(encode_arrays(arrays)).hexdigest()


def initial_state(spec: RoundSpec, seed: int) -> DriverState:
    """The state before round 1: the job's model initialised from ``seed``, a fresh RNG from ``seed``."""
    if isinstance(spec, LearningSpec):
        arrays = initial_arrays(spec, seed)
    else:
        model = build_model(MODEL_NAME, in_features=spec.in_features, hidden=tuple(spec.hidden), seed=seed)
        arrays = ArrayRecord(model.state_dict())
    return DriverState(
        round=0,
        arrays=arrays,
        history={"train": {}, "evaluate": {}},
        rng_state=random.Random(seed).getstate(),
    )


class _SampleView(Grid):
    """The job's Grid as a strategy's ``configure_*`` sees it: only the nodes the driver sampled.

    Strategies call ``get_node_ids`` (through Flower's ``sample_nodes``) to pick their nodes; the driver
    has picked already, so this view offers exactly those and the strategy's own pick is ignored.
    Nothing is ever sent through it.
    """

    def __init__(self, grid: Grid, node_ids: Sequence[int]) -> None:
        self._grid = grid
        self._node_ids = list(node_ids)

    def set_run(self, run: Any) -> None:
        """Refused: a view has no run of its own."""
        raise NotImplementedError

    @property
    def run(self) -> Any:
        """The job's run."""
        return self._grid.run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        """Refused: the driver builds the messages."""
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        """The sampled nodes."""
        return list(self._node_ids)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Refused: the driver sends."""
        raise NotImplementedError

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Refused: the driver receives."""
        raise NotImplementedError

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Refused: the driver sends and receives."""
        raise NotImplementedError


def _reply_metrics(reply: Message) -> dict[str, float] | None:
    record = reply.content.metric_records.get(_REPLY_METRICS)
    if record is None:
        return None
    return {str(key): float(value) for key, value in record.items() if isinstance(value, int | float)}


class _AttemptFailedError(Exception):
    def __init__(self, reason: str, outcomes: list[NodeOutcome]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.outcomes = outcomes


class FedAvgDriver:
    """Runs a ``fedavg_mlp`` or ``learning`` job round by round on a Grid (one driver per job run)."""

    def __init__(
        self,
        grid: Grid,
        spec: RoundSpec,
        *,
        seed: int,
        observer: RoundObserver,
        eligible: Callable[[list[int]], list[int]] | None = None,
    ) -> None:
        """``eligible`` narrows the Grid's node ids to the job's nodes (all of them by default)."""
        self._grid = grid
        # Message ids are derived within this scope: the job's id on medfed's Grid (stable across a
        # coordinator restart), a fresh one on any other Grid.
        self._id_scope = grid.job_id if isinstance(grid, MedfedGrid) else uuid.uuid4().hex
        self._spec = spec
        self._seed = seed
        self._observer = observer
        self._eligible = eligible or (lambda ids: ids)
        self._strategy: Strategy
        self._config: dict[str, ConfigRecordValues]
        if isinstance(spec, LearningSpec):
            self._strategy = build_strategy(spec.strategy, client_lr=spec.lr)
            self._config = learning_config(spec, seed)
        else:
            self._strategy = FedAvg(
                fraction_train=1.0,
                fraction_evaluate=1.0,
                min_train_nodes=1,
                min_evaluate_nodes=1,
                min_available_nodes=1,
            )
            self._config = train_config(
                seed=seed, hidden=spec.hidden, local_epochs=spec.local_epochs, lr=spec.lr, batch_size=spec.batch_size
            )

    @property
    def strategy(self) -> Strategy:
        """The strategy this driver runs."""
        return self._strategy

    def run(self, state: DriverState) -> DriverState:
        """Run the rounds after ``state.round`` up to the spec's last; the final state.

        Raises :class:`QuorumError` when a round misses its quorum twice and
        :class:`StopRequestedError` when the observer asks to stop (checked before every round).
        """
        rng = random.Random(self._seed)
        rng.setstate(state.rng_state)
        load_strategy_state(self._strategy, state.strategy)
        while state.round < self._spec.rounds:
            if self._observer.should_stop():
                raise StopRequestedError
            server_round = state.round + 1
            started = time.time()
            outcomes: list[NodeOutcome] = []
            reason = ""
            for attempt in range(1, ATTEMPTS_PER_ROUND + 1):
                deadline = time.time() + self._spec.round_timeout_s
                self._observer.round_started(server_round, attempt=attempt, deadline=deadline)
                try:
                    arrays, train_metrics, eval_metrics, outcomes = self._attempt(
                        server_round, attempt, state.arrays, rng, deadline
                    )
                except _AttemptFailedError as failed:
                    outcomes, reason = failed.outcomes, failed.reason
                    continue
                state = DriverState(
                    round=server_round,
                    arrays=arrays,
                    history={
                        "train": {**state.history.get("train", {}), str(server_round): train_metrics},
                        "evaluate": {**state.history.get("evaluate", {}), str(server_round): eval_metrics},
                    },
                    rng_state=rng.getstate(),
                    strategy=strategy_state(self._strategy),
                )
                self._observer.state_saved(state)
                self._observer.round_finished(
                    server_round, completed=True, attempts=attempt, outcomes=outcomes, started=started
                )
                break
            else:
                self._observer.round_finished(
                    server_round, completed=False, attempts=ATTEMPTS_PER_ROUND, outcomes=outcomes, started=started
                )
                raise QuorumError(
                    detail=f"quorum not met in round {server_round} after {ATTEMPTS_PER_ROUND} attempts: {reason}"
                )
        return state

    def _available(self) -> list[int]:
        return sorted(self._eligible(list(self._grid.get_node_ids())))

    def _sample(self, rng: random.Random, available: list[int]) -> list[int]:
        sample_train = getattr(self._strategy, "sample_train", None)
        if sample_train is not None:  # the strategy picks (Cyclic)
            return sorted(sample_train(available, rng))
        wanted = max(math.ceil(len(available) * self._spec.fraction), self._spec.quorum)
        return sorted(rng.sample(available, min(wanted, len(available))))

    def _content(self, phase: Phase, server_round: int, arrays: ArrayRecord, nodes: list[int]) -> RecordDict:
        """The instruction content the strategy makes for ``nodes`` (its own pick of nodes is ignored)."""
        view = _SampleView(self._grid, nodes)
        config = ConfigRecord(dict(self._config))
        if phase == "train":
            messages = list(self._strategy.configure_train(server_round, arrays, config, view))
        else:
            messages = list(self._strategy.configure_evaluate(server_round, arrays, config, view))
        if not messages:
            raise _AttemptFailedError(f"the strategy configured no {phase} instruction", [])
        return messages[0].content

    def _attempt(
        self, server_round: int, attempt: int, arrays: ArrayRecord, rng: random.Random, deadline: float
    ) -> tuple[ArrayRecord, dict[str, float], dict[str, float], list[NodeOutcome]]:
        quorum = self._spec.quorum
        available = self._available()
        sample = self._sample(rng, available)
        train_quorum = 1 if hasattr(self._strategy, "sample_train") else quorum
        if len(sample) < train_quorum or len(available) < quorum:
            raise _AttemptFailedError(f"{len(available)} eligible node(s), quorum {quorum}", [])
        # Taken after sampling: a retry samples anew (Cyclic moves on to its next node), but aggregates
        # from the state the round started with (FedOpt's moments), so an abandoned attempt leaves no trace.
        carried = strategy_state(self._strategy)
        try:
            return self._train_and_evaluate(server_round, attempt, arrays, sample, available, train_quorum, deadline)
        except _AttemptFailedError:
            load_strategy_state(self._strategy, carried)
            raise

    def _train_and_evaluate(
        self,
        server_round: int,
        attempt: int,
        arrays: ArrayRecord,
        sample: list[int],
        available: list[int],
        train_quorum: int,
        deadline: float,
    ) -> tuple[ArrayRecord, dict[str, float], dict[str, float], list[NodeOutcome]]:
        quorum = self._spec.quorum
        content = self._content("train", server_round, arrays, sample)
        train_replies, outcomes = self._phase(
            "train", MessageType.TRAIN, server_round, attempt, content, sample, deadline
        )
        valid = [reply for reply in train_replies if not reply.has_error()]
        if len(valid) < train_quorum:
            raise _AttemptFailedError(f"{len(valid)} valid train replies, quorum {train_quorum}", outcomes)
        new_arrays, train_metrics = self._strategy.aggregate_train(server_round, valid)
        if new_arrays is None:
            raise _AttemptFailedError("no train reply carried a model", outcomes)
        # Evaluate on the nodes that trained, with a time budget of its own: a node that went silent
        # during training (it may have used up the train deadline) is not waited for a second time.
        trained = sorted(reply.metadata.src_node_id for reply in valid)
        evaluate_targets = getattr(self._strategy, "evaluate_targets", None)
        targets = trained if evaluate_targets is None else sorted(evaluate_targets(trained, available))
        eval_deadline = max(deadline, time.time() + self._spec.round_timeout_s)
        content = self._content("evaluate", server_round, new_arrays, targets)
        eval_replies, eval_outcomes = self._phase(
            "evaluate", MessageType.EVALUATE, server_round, attempt, content, targets, eval_deadline
        )
        outcomes += eval_outcomes
        valid = [reply for reply in eval_replies if not reply.has_error()]
        if len(valid) < quorum:
            raise _AttemptFailedError(f"{len(valid)} valid evaluate replies, quorum {quorum}", outcomes)
        eval_metrics = self._strategy.aggregate_evaluate(server_round, valid)
        return new_arrays, _floats(train_metrics), _floats(eval_metrics), outcomes

    def _phase(
        self,
        phase: Phase,
        message_type: str,
        server_round: int,
        attempt: int,
        content: RecordDict,
        sample: list[int],
        deadline: float,
    ) -> tuple[list[Message], list[NodeOutcome]]:
        messages = [Message(content, node_id, message_type) for node_id in sample]
        for message in messages:  # the same round, attempt and node always get the same id (see resume)
            assign_message_id(
                message,
                deterministic_message_id(
                    self._id_scope, server_round, attempt, message_type, message.metadata.dst_node_id
                ),
            )
        replies = list(self._grid.send_and_receive(messages, timeout=max(0.0, deadline - time.time())))
        by_message = {reply.metadata.reply_to_message_id: reply for reply in replies}
        outcomes: list[NodeOutcome] = []
        for message in messages:
            message_id = message.metadata.message_id or None
            reply = by_message.get(message_id or "")
            outcome: Outcome = "late" if reply is None else "error" if reply.has_error() else "replied"
            if message_id is None:
                outcome = "skipped"
            metrics = _reply_metrics(reply) if reply is not None and outcome == "replied" else None
            outcomes.append(NodeOutcome(message.metadata.dst_node_id, phase, message_id, outcome, metrics))
        return replies, outcomes


def _floats(metrics: Any) -> dict[str, float]:
    if metrics is None:
        return {}
    return {str(key): float(value) for key, value in metrics.items() if isinstance(value, int | float)}
