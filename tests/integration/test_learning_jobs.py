"""Learning jobs in one process: the round driver, Flower's and FLamby's strategies, the node's learning app.

Three nodes answer through :class:`InMemoryTransport` from their own generated tables (a binary outcome
and a survival outcome, a categorical column, a split column). Every reply a node sends is recorded, so
a round's aggregate can be recomputed by hand from exactly what the nodes sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, RecordDict

from common.analytics.task import decode_refusal
from common.errors import ErrorCode
from common.flower import ensure_task_identity, flower_node_id, message_from_bytes
from common.models import build_model
from common.models.scaffold import SCAFFOLD_CONTROL, SCAFFOLD_DELTA, SCAFFOLD_NODES, SCAFFOLD_ROUNDS
from common.models.task import LEARNING_ERROR_CODE
from coordinator.federation.driver import (
    DriverState,
    FedAvgDriver,
    NodeOutcome,
    QuorumError,
    StopRequestedError,
    arrays_digest,
    encode_arrays,
    initial_state,
)
from coordinator.federation.grid import MedfedGrid
from coordinator.federation.jobs.learning import LearningSpec, learning_config
from coordinator.federation.jobs.specs import parse_spec
from coordinator.federation.memory import InMemoryTransport
from coordinator.federation.strategies import Scaffold, build_strategy, load_strategy_state
from node.federation.apps.learning import ITERATOR_KEY, epoch_seed, learning_app
from node.federation.host import ClientAppHost, InstalledApp
from node.federation.sources import LoadedSource

NODE_IDS = [flower_node_id(f"learning-site-{i}") for i in range(3)]
ROWS = (40, 64, 25)
TASK: dict[str, Any] = {
    "kind": "learning",
    "model": "logistic_regression",
    "source": {"dataset": "table"},
    "features": ["x0", "x1", "x2"],
    "categorical": [{"column": "kind", "levels": ["a", "b", "c"]}],
    "target": "y",
    "split": {"column": "split"},
    "standardize": "node_train",
    "local_steps": 5,
    "batch_size": 4,
    "lr": 0.05,
    "quorum": 3,
    "round_timeout_s": 30,
}
COX: dict[str, Any] = {"model": "cox_linear", "target": None, "event": "e", "time": "t"}
FEDOPT = {"server_lr": 0.5, "tau": 1e-3, "beta1": 0.9, "beta2": 0.99}


def _table(node_index: int) -> pd.DataFrame:
    rng = np.random.default_rng(100 + node_index)
    n = ROWS[node_index]
    x = rng.normal(size=(n, 3)) + node_index * 0.3
    risk = x @ np.array([1.0, -0.5, 0.25])
    return pd.DataFrame(
        {
            "x0": x[:, 0],
            "x1": x[:, 1],
            "x2": x[:, 2],
            "kind": rng.choice(["a", "b", "c"], size=n),
            "y": (risk + rng.normal(size=n) > 0).astype(int),
            "e": (rng.random(n) < 0.6).astype(int),
            "t": np.round(rng.exponential(np.exp(-risk)) * 100),
            "split": np.where(np.arange(n) % 4 == 3, "test", "train"),
        }
    )


@dataclass
class Site:
    """One node: its host, and every reply it sent (decoded)."""

    node_id: int
    host: ClientAppHost
    replies: list[Message] = field(default_factory=list)
    received: list[Message] = field(default_factory=list)

    def call(self, payload: bytes, *, job_id: str) -> bytes:
        """The node's endpoint on the in-memory transport; keeps the instruction and the reply."""
        self.received.append(message_from_bytes(payload))
        reply = self.host.handle(
            payload, job_id=job_id, app="learning", allowed_message_types=frozenset({"train", "evaluate"})
        )
        self.replies.append(message_from_bytes(reply))
        return reply


def _site(index: int, node_id: int) -> Site:
    frame = _table(index)
    app = learning_app(lambda source: LoadedSource(frame, f"snapshot-{index}"))
    return Site(node_id, ClientAppHost(node_id=node_id, apps={"learning": InstalledApp(app)}))


@pytest.fixture
def sites() -> list[Site]:
    """Three fresh nodes (fresh job contexts)."""
    ensure_task_identity()
    torch.set_num_threads(1)
    return [_site(i, node_id) for i, node_id in enumerate(NODE_IDS)]


@dataclass
class Recorder:
    """An observer that keeps the saved states (through their bytes) and stops after ``stop_after`` rounds."""

    stop_after: int | None = None
    saved: list[DriverState] = field(default_factory=list)
    outcomes: list[list[NodeOutcome]] = field(default_factory=list)

    def round_started(self, server_round: int, *, attempt: int, deadline: float) -> None:
        """Nothing to do."""

    def round_finished(
        self, server_round: int, *, completed: bool, attempts: int, outcomes: Sequence[NodeOutcome], started: float
    ) -> None:
        """Keep the outcomes."""
        self.outcomes.append(list(outcomes))

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


def _run(
    sites: list[Site],
    spec: LearningSpec,
    *,
    job_id: str | None = None,
    recorder: Recorder | None = None,
    state: DriverState | None = None,
) -> tuple[DriverState, Recorder]:
    """Run the job (seed 7) from ``state`` (round 0 by default) on a fresh transport to the sites."""
    recorder = recorder or Recorder()
    with InMemoryTransport({site.node_id: site.call for site in sites}) as transport:
        grid = MedfedGrid(transport, job_id=job_id or str(uuid.uuid4()))
        final = FedAvgDriver(grid, spec, seed=7, observer=recorder).run(state or initial_state(spec, 7))
    return final, recorder


def _send(sites: list[Site], job_id: str, messages: list[Message]) -> list[Message]:
    """Deliver instructions of job ``job_id`` to the sites; their replies."""
    with InMemoryTransport({site.node_id: site.call for site in sites}) as transport:
        return list(MedfedGrid(transport, job_id=job_id).send_and_receive(messages, timeout=30))


def _spec(**changes: Any) -> LearningSpec:
    spec = parse_spec({**TASK, **changes})
    assert isinstance(spec, LearningSpec)
    return spec


def _train_replies(sites: list[Site]) -> list[tuple[dict[str, np.ndarray], int]]:
    out = []
    for site in sites:
        for reply in site.replies:
            if reply.metadata.message_type == MessageType.TRAIN and not reply.has_error():
                arrays = {k: a.numpy().astype(np.float64) for k, a in reply.content.array_records["arrays"].items()}
                n = reply.content.metric_records["metrics"]["num-examples"]
                assert isinstance(n, int)
                out.append((arrays, n))
    return out


def _expected(
    strategy: dict[str, Any], start: dict[str, np.ndarray], replies: list[tuple[dict[str, np.ndarray], int]]
) -> dict[str, np.ndarray]:
    """One round of each strategy, by hand from the nodes' replies: the sample-weighted mean of their models,
    then the server step from zero moments (m = (1-b1)*delta, v = (1-b2)*delta^2 for Adam and Yogi,
    v = delta^2 for Adagrad, whose Flower flavour has no momentum; Flower's Adam bias-corrects eta)."""
    total = sum(n for _, n in replies)
    mean: dict[str, np.ndarray] = {k: np.sum([arrays[k] * n for arrays, n in replies], axis=0) / total for k in start}
    name, flavour = strategy["name"], strategy.get("flavour", "flower")
    if name in ("fedavg", "fedprox", "cyclic"):
        return mean
    if name == "scaffold":  # round 1: c = 0, so plain local steps; then x + server_lr * (mean - x)
        return {k: x + strategy["server_lr"] * (mean[k] - x) for k, x in start.items()}
    eta, tau, b1, b2 = FEDOPT["server_lr"], FEDOPT["tau"], FEDOPT["beta1"], FEDOPT["beta2"]
    out = {}
    for k, x in start.items():
        delta = mean[k] - x
        m = delta if (name == "fedadagrad" and flavour == "flower") else (1 - b1) * delta
        v = delta**2 if name == "fedadagrad" else (1 - b2) * delta**2
        step = eta * m / (np.sqrt(v) + tau)
        if name == "fedadam" and flavour == "flower":
            step *= np.sqrt(1 - b2**2) / (1 - b1**2)  # Flower's bias correction in round 1
        out[k] = x + step
    return out


STRATEGIES = [
    {"name": "fedavg"},
    {"name": "fedprox", "proximal_mu": 0.5},
    {"name": "fedadam", **FEDOPT},
    {"name": "fedyogi", **FEDOPT},
    {"name": "fedadagrad", "server_lr": 0.5, "tau": 1e-3},
    {"name": "fedadam", "flavour": "flamby", **FEDOPT},
    {"name": "fedyogi", "flavour": "flamby", **FEDOPT},
    {"name": "fedadagrad", "flavour": "flamby", **FEDOPT},
    {"name": "cyclic"},
    {"name": "scaffold", "flavour": "flamby", "server_lr": 0.5},
]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: f"{s['name']}-{s.get('flavour', 'flower')}")
def test_one_round_of_each_strategy_aggregates_what_the_nodes_sent_as_a_hand_computation(
    sites: list[Site], strategy: dict[str, Any]
) -> None:
    """After one round the global model is the strategy's step computed by hand from the recorded train
    replies (their arrays and num-examples); every node evaluated and sent loss, accuracy and n."""
    spec = _spec(rounds=1, strategy=strategy)
    start = {k: a.numpy().astype(np.float64) for k, a in initial_state(spec, 7).arrays.items()}
    final, recorder = _run(sites, spec)
    replies = _train_replies(sites)
    assert len(replies) == (1 if strategy["name"] == "cyclic" else 3)
    want = _expected(strategy, start, replies)
    for key, array in final.arrays.items():
        np.testing.assert_allclose(array.numpy(), want[key], rtol=1e-5, atol=1e-6)
    evaluated = {o.node_id: o.metrics for o in recorder.outcomes[-1] if o.phase == "evaluate"}
    assert sorted(evaluated) == sorted(NODE_IDS)
    for metrics in evaluated.values():
        assert metrics is not None
        assert {"eval_loss", "eval_acc", "num-examples"} <= set(metrics)
        assert 0.0 <= metrics["eval_acc"] <= 1.0
    assert set(final.history["evaluate"]["1"]) >= {"eval_loss", "eval_acc"}


def test_fedprox_sends_its_mu_and_the_nodes_proximal_term_holds_their_models_back(sites: list[Site]) -> None:
    """FedProx's ``proximal-mu`` reaches the nodes, and their models move less from the global one."""
    start = initial_state(_spec(rounds=1), 7).arrays["linear.weight"].numpy()
    plain, _ = _run(sites, _spec(rounds=1, strategy={"name": "fedavg"}))
    for site in sites:
        site.replies.clear()
    prox, _ = _run(sites, _spec(rounds=1, strategy={"name": "fedprox", "proximal_mu": 5.0}))
    moved = np.abs(plain.arrays["linear.weight"].numpy() - start).sum()
    held = np.abs(prox.arrays["linear.weight"].numpy() - start).sum()
    assert held < moved


def test_a_cox_job_reports_each_nodes_c_index_on_its_test_split(sites: list[Site]) -> None:
    """A linear Cox model trains with FLamby's Cox loss; nodes evaluate the C-index of -risk on their test rows."""
    final, recorder = _run(sites, _spec(rounds=2, **COX, strategy={"name": "fedavg"}))
    for outcome in recorder.outcomes[-1]:
        if outcome.phase == "evaluate":
            assert outcome.metrics is not None
            assert 0.0 <= outcome.metrics["eval_cindex"] <= 1.0
            assert outcome.metrics["eval_cindex_pairs"] > 0
    assert "eval_cindex" in final.history["evaluate"]["2"]


def _arrays(message: Message) -> dict[str, np.ndarray]:
    return {k: a.numpy() for k, a in message.content.array_records["arrays"].items()}


def test_flambys_cyclic_trains_each_nodes_own_model_and_keeps_the_reference_nodes_as_the_jobs(
    sites: list[Site],
) -> None:
    """With flavour flamby, a node's second turn starts from its own first-turn model (no weight transfer),
    and the job's model after each round is the reference node's latest model (the initial one before its
    first turn), as FLamby's Cyclic code behaves."""
    reference = NODE_IDS[1]
    spec = _spec(rounds=7, strategy={"name": "cyclic", "flavour": "flamby", "reference_node": reference})
    initial = {k: a.numpy() for k, a in initial_state(spec, 7).arrays.items()}
    final, recorder = _run(sites, spec)
    for site in sites:
        trains = [m for m in site.received if m.metadata.message_type == MessageType.TRAIN]
        answers = [r for r in site.replies if r.metadata.message_type == MessageType.TRAIN]
        assert trains, "every node had a turn in 7 rounds of 3 nodes"
        for instruction, previous in zip(trains, [None, *answers], strict=False):
            want = initial if previous is None else _arrays(previous)
            for key, value in _arrays(instruction).items():
                assert np.array_equal(value, want[key])
    reference_site = next(site for site in sites if site.node_id == reference)
    last = [r for r in reference_site.replies if r.metadata.message_type == MessageType.TRAIN][-1]
    for key, array in final.arrays.items():
        assert np.array_equal(array.numpy(), _arrays(last)[key])
    assert len(recorder.saved) == 7


@pytest.mark.parametrize(
    "changes",
    [
        {"strategy": {"name": "fedadam", "flavour": "flamby", **FEDOPT}},
        {"strategy": {"name": "cyclic"}},
        {"strategy": {"name": "cyclic", "flavour": "flamby", "reference_node": NODE_IDS[0]}},
        {**COX, "strategy": {"name": "fedyogi", **FEDOPT}},
        {"strategy": {"name": "scaffold", "flavour": "flamby", "server_lr": 0.5}},
    ],
    ids=["fedadam-flamby", "cyclic", "cyclic-flamby", "cox-fedyogi", "scaffold"],
)
def test_a_job_stopped_after_round_two_and_resumed_ends_bit_identical_to_an_unbroken_run(
    sites: list[Site], changes: dict[str, Any]
) -> None:
    """Resuming from the bytes saved after round 2 (the nodes keep their job contexts, as when only the
    coordinator restarts) gives the arrays, history, strategy state and RNG state of an unbroken run, even
    when round 3's train instructions had reached every node once and their replies were lost (the nodes
    rewind their data iterators and Scaffold's control variates to where round 3 began)."""
    spec = _spec(rounds=4, **changes)
    unbroken, _ = _run(sites, spec)
    job_id = str(uuid.uuid4())
    stopped = Recorder(stop_after=2)
    with pytest.raises(StopRequestedError):
        _run(sites, spec, job_id=job_id, recorder=stopped)
    after_two = stopped.saved[-1]
    if spec.strategy.name != "cyclic":  # the lost round: every node trained round 3 once already
        config = ConfigRecord({**learning_config(spec, 7), "server-round": 3})
        content = RecordDict({"arrays": after_two.arrays, "config": config})
        if spec.strategy.name == "scaffold":  # the instruction carried c: the nodes advanced their c_i once
            strategy = build_strategy(spec.strategy, client_lr=spec.lr)
            load_strategy_state(strategy, after_two.strategy)
            assert isinstance(strategy, Scaffold)
            assert strategy.control is not None
            content[SCAFFOLD_CONTROL] = ArrayRecord({k: Array(v) for k, v in strategy.control.items()})
            config[SCAFFOLD_NODES] = sorted(strategy.applied)
            config[SCAFFOLD_ROUNDS] = [strategy.applied[n] for n in sorted(strategy.applied)]
        _send(sites, job_id, [Message(content, site.node_id, MessageType.TRAIN) for site in sites])
    resumed, _ = _run(sites, spec, job_id=job_id, state=after_two)
    assert resumed.round == unbroken.round == 4
    assert arrays_digest(resumed.arrays) == arrays_digest(unbroken.arrays)
    assert resumed.history == unbroken.history
    assert resumed.strategy == unbroken.strategy
    assert resumed.rng_state == unbroken.rng_state


def test_a_scaffold_job_sends_c_and_adds_the_weighted_mean_of_the_nodes_control_changes(sites: list[Site]) -> None:
    """Every train instruction carries the server control variate c: zero in round 1, then the previous
    round's c plus the sample-weighted mean of the delta c_i the nodes answered (all three nodes train
    every round, so |S|/N = 1); the saved strategy state holds the c of the last round."""
    spec = _spec(rounds=3, strategy={"name": "scaffold", "flavour": "flamby", "server_lr": 0.5})
    final, _ = _run(sites, spec)
    control = {k: np.zeros(a.numpy().shape) for k, a in initial_state(spec, 7).arrays.items()}
    for server_round in range(3):
        deltas, weights = [], []  # the nodes' delta c_i and training rows
        for site in sites:
            instruction = [m for m in site.received if m.metadata.message_type == MessageType.TRAIN][server_round]
            sent = instruction.content.array_records[SCAFFOLD_CONTROL]
            for key, value in control.items():
                np.testing.assert_allclose(sent[key].numpy(), value, rtol=1e-5, atol=1e-7)
            reply = [r for r in site.replies if r.metadata.message_type == MessageType.TRAIN][server_round]
            deltas.append(
                {k: a.numpy().astype(np.float64) for k, a in reply.content.array_records[SCAFFOLD_DELTA].items()}
            )
            n = reply.content.metric_records["metrics"]["num-examples"]
            assert isinstance(n, int)
            weights.append(n)
        assert any(np.abs(d[k]).max() > 0 for d in deltas for k in d)
        shares = [n / sum(weights) for n in weights]
        control = {
            k: value + sum(w * d[k] for w, d in zip(shares, deltas, strict=True)) for k, value in control.items()
        }
    strategy = build_strategy(spec.strategy, client_lr=spec.lr)
    load_strategy_state(strategy, final.strategy)
    assert isinstance(strategy, Scaffold)
    assert strategy.control is not None
    for key, value in control.items():
        np.testing.assert_allclose(strategy.control[key], value, rtol=1e-5, atol=1e-7)


def test_a_round_retried_after_a_lost_evaluation_ends_as_if_nothing_had_failed(sites: list[Site]) -> None:
    """A round whose evaluation misses the quorum on its first attempt is retried; the nodes train it again
    from the same place in their data and the strategy aggregates from the moments the round started with,
    so the job ends bit-identical to one where nothing failed."""
    spec = _spec(rounds=2, round_timeout_s=2, strategy={"name": "fedadam", "flavour": "flamby", **FEDOPT})
    unbroken, _ = _run(sites, spec)
    flaky = _site(0, NODE_IDS[0])
    dropped: list[int] = []

    def lose_first_evaluation(payload: bytes, *, job_id: str) -> bytes:
        if message_from_bytes(payload).metadata.message_type == MessageType.EVALUATE and not dropped:
            dropped.append(1)
            raise ConnectionError("the reply is lost")  # no reply: the node counts as late
        return flaky.call(payload, job_id=job_id)

    retried = Recorder()
    endpoints = {NODE_IDS[0]: lose_first_evaluation, **{s.node_id: s.call for s in sites[1:]}}
    with InMemoryTransport(endpoints) as transport:
        grid = MedfedGrid(transport, job_id=str(uuid.uuid4()))
        final = FedAvgDriver(grid, spec, seed=7, observer=retried).run(initial_state(spec, 7))
    assert dropped == [1]
    assert [len(saved.history["train"]) for saved in retried.saved] == [1, 2]
    assert arrays_digest(final.arrays) == arrays_digest(unbroken.arrays)
    assert final.strategy == unbroken.strategy


def test_the_nodes_data_iterator_continues_across_rounds_and_rewinds_a_round_asked_again() -> None:
    """Round 2's update is SGD over the batches after round 1's in the node's persistent order (epoch e in
    the order drawn from (seed, node, e), the last batch of an epoch short); asked round 2 again, the node
    answers the same; round 3 continues after round 2."""
    ensure_task_identity()
    torch.set_num_threads(1)
    site = _site(2, NODE_IDS[2])  # 25 rows, 19 of them training rows: batches of 4, 4, 4, 4, 3 per epoch
    spec = _spec(local_steps=3, standardize="none", categorical=[], strategy={"name": "fedavg"})
    model = build_model("logistic_regression", in_features=3, seed=1)
    job_id = str(uuid.uuid4())

    def train(server_round: int) -> Message:
        config = ConfigRecord({**learning_config(spec, 7), "server-round": server_round})
        content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "config": config})
        (reply,) = _send([site], job_id, [Message(content, site.node_id, MessageType.TRAIN)])
        return reply

    def iterator() -> tuple[int, int]:
        state = site.host.context(job_id).state.config_records[ITERATOR_KEY]
        epoch, batch = state["epoch"], state["batch"]
        assert isinstance(epoch, int)
        assert isinstance(batch, int)
        return epoch, batch

    train(1)
    assert iterator() == (0, 3)
    second = train(2)
    assert iterator() == (1, 1)  # batches 3 and 4 of epoch 0 (4 and 3 rows), then batch 0 of epoch 1
    frame = _table(2)
    rows = frame[frame["split"] == "train"]
    x = torch.tensor(rows[["x0", "x1", "x2"]].to_numpy(), dtype=torch.float32)
    y = torch.tensor(rows["y"].to_numpy(), dtype=torch.float32)
    orders = [
        torch.randperm(19, generator=torch.Generator().manual_seed(epoch_seed(7, site.node_id, epoch)))
        for epoch in (0, 1)
    ]
    by_hand = build_model("logistic_regression", in_features=3, seed=0)
    by_hand.load_state_dict(model.state_dict())
    optimizer = torch.optim.SGD(by_hand.parameters(), lr=0.05)
    for batch in (orders[0][12:16], orders[0][16:19], orders[1][0:4]):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(by_hand(x[batch]).reshape(-1), y[batch])
        torch.autograd.backward(loss)
        optimizer.step()
    got = second.content.array_records["arrays"]
    for name, tensor in by_hand.state_dict().items():
        assert np.array_equal(got[name].numpy(), tensor.numpy())
    again = train(2).content.array_records["arrays"]
    for name in got:
        assert np.array_equal(again[name].numpy(), got[name].numpy())
    assert iterator() == (1, 1)
    train(3)
    assert iterator() == (1, 4)


def test_a_node_refuses_a_task_naming_columns_it_does_not_have_with_a_location_only_refusal(
    sites: list[Site],
) -> None:
    """The refusal is an error reply with the learning error code, a catalog code and a location hint;
    the round misses its quorum."""
    spec = _spec(rounds=1, quorum=1, features=["x0", "no_such_column"])
    with pytest.raises(QuorumError):
        _run(sites[:1], spec)
    reply = next(r for r in sites[0].replies if r.metadata.message_type == MessageType.TRAIN)
    assert reply.has_error()
    assert reply.error.code == LEARNING_ERROR_CODE
    code, hints = decode_refusal(reply.error.reason or "")
    assert code is ErrorCode.INVALID_LEARNING_TASK
    assert hints == ("columns: 1 named column(s) not in the source",)
