"""Scaffold's updates on fixed numbers: the server step and control variate by hand, and FLamby's form.

Two nodes and a tiny model (``w`` of shape 1x2, ``b`` of shape 1). The coordinator's
:class:`~coordinator.federation.strategies.Scaffold` and the node's
:func:`~node.federation.apps.learning.scaffold.control_update` are checked against the formulas written
out in float64, and against FLamby's "efficient" Scaffold (``flamby/strategies/scaffold.py``: a correction
C_i and the last model q_i per client) over three rounds of gradient steps on two quadratic objectives.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, Message, MessageType, MetricRecord, RecordDict

from common.errors import InputError
from common.flower import assign_message_id, ensure_task_identity, make_reply
from common.models.scaffold import SCAFFOLD_DELTA
from coordinator.federation.jobs.specs import parse_spec
from coordinator.federation.strategies import (
    Scaffold,
    StrategySpec,
    build_strategy,
    load_strategy_state,
    strategy_state,
)
from node.federation.apps.learning.scaffold import control_update

X0 = {"w": np.array([[0.5, -1.0]], dtype=np.float32), "b": np.array([0.25], dtype=np.float32)}
SIZES = {101: 30, 102: 90}
SERVER_LR = 0.5


def _reply(node_id: int, model: dict[str, np.ndarray], delta: dict[str, np.ndarray] | None) -> Message:
    ensure_task_identity()
    content = RecordDict(
        {
            "arrays": ArrayRecord({k: Array(v.astype(np.float32)) for k, v in model.items()}),
            "metrics": MetricRecord({"train_loss": 0.5, "num-examples": SIZES[node_id]}),
        }
    )
    if delta is not None:
        content[SCAFFOLD_DELTA] = ArrayRecord({k: Array(v.astype(np.float32)) for k, v in delta.items()})
    instruction = Message(RecordDict(), dst_node_id=node_id, message_type=MessageType.TRAIN)
    assign_message_id(instruction)
    return make_reply(instruction, content)


def _aggregate(
    strategy: Scaffold, current: dict[str, np.ndarray], replies: list[Message], server_round: int = 1
) -> dict[str, np.ndarray] | None:
    strategy.current_arrays = {k: v.copy() for k, v in current.items()}  # what configure_train records
    arrays, _ = strategy.aggregate_train(server_round, replies)
    return None if arrays is None else {k: a.numpy() for k, a in arrays.items()}


def _scaffold(server_lr: float = SERVER_LR) -> Scaffold:
    strategy = build_strategy(StrategySpec(name="scaffold", flavour="flamby", server_lr=server_lr), client_lr=0.1)
    assert isinstance(strategy, Scaffold)
    return strategy


def test_the_server_step_and_control_variate_equal_a_hand_computation_over_two_rounds() -> None:
    """Round 1 (both nodes): x + lr_s * (weighted mean y - x) and c = weighted mean delta c (|S|/N = 1).
    Round 2 (one node of the two): x + lr_s * (y - x) and c + (1/2) * delta c; the state survives JSON
    and records, per node, the last round whose control change was aggregated."""
    strategy = _scaffold()
    y = {
        101: {"w": np.array([[0.7, -0.6]]), "b": np.array([0.1])},
        102: {"w": np.array([[0.1, -1.4]]), "b": np.array([0.5])},
    }
    dc = {
        101: {"w": np.array([[1.0, -2.0]]), "b": np.array([0.5])},
        102: {"w": np.array([[-3.0, 1.0]]), "b": np.array([2.0])},
    }
    x1 = _aggregate(strategy, X0, [_reply(n, y[n], dc[n]) for n in (101, 102)])
    assert x1 is not None
    w101, w102 = 30 / 120, 90 / 120
    for k, x in X0.items():
        mean_y = w101 * y[101][k].astype(np.float32) + w102 * y[102][k].astype(np.float32)
        np.testing.assert_allclose(x1[k], x + SERVER_LR * (mean_y - x), rtol=1e-6)
    c1 = {k: w101 * dc[101][k] + w102 * dc[102][k] for k in X0}
    assert strategy.control is not None
    for k in X0:
        np.testing.assert_allclose(strategy.control[k], c1[k], rtol=1e-6)
    assert strategy.applied == {101: 1, 102: 1}

    restored = _scaffold()
    load_strategy_state(restored, strategy_state(strategy))
    assert strategy_state(restored) == strategy_state(strategy)
    y2, dc2 = {"w": np.array([[0.9, 0.0]]), "b": np.array([-0.2])}, {"w": np.array([[4.0, 4.0]]), "b": np.array([-1.0])}
    x2 = _aggregate(restored, x1, [_reply(101, y2, dc2)], server_round=2)
    assert x2 is not None
    assert restored.control is not None
    for k, x in x1.items():
        np.testing.assert_allclose(x2[k], x + SERVER_LR * (y2[k].astype(np.float32) - x), rtol=1e-6)
        np.testing.assert_allclose(restored.control[k], c1[k] + 0.5 * dc2[k], rtol=1e-6)
    assert restored.applied == {101: 2, 102: 1}


def test_a_reply_without_a_control_variate_change_is_not_aggregated() -> None:
    """A plain FedAvg reply in a Scaffold round fails the attempt (None) and leaves c as it was."""
    strategy = _scaffold()
    replies = [_reply(101, X0, {k: np.zeros_like(v) for k, v in X0.items()}), _reply(102, X0, None)]
    assert _aggregate(strategy, X0, replies) is None
    assert strategy.control is None
    assert strategy.applied == {}


def test_the_node_control_update_is_option_two() -> None:
    """c_i+ = c_i - c + (x - y) / (K * lr) and delta c_i = c_i+ - c_i, per parameter."""
    c, ci = [torch.tensor([1.0, -1.0])], [torch.tensor([0.5, 0.5])]
    x, y = [torch.tensor([2.0, 0.0])], [torch.tensor([1.0, 0.3])]
    new, delta = control_update(c, ci, x, y, steps=4, lr=0.25)
    np.testing.assert_allclose(new[0].numpy(), [0.5 - 1.0 + 1.0 / 1.0, 0.5 + 1.0 - 0.3 / 1.0], rtol=1e-6)
    np.testing.assert_allclose(delta[0].numpy(), new[0].numpy() - ci[0].numpy(), rtol=1e-6)


@pytest.mark.parametrize("server_lr", [1.0, 0.7])
def test_three_rounds_equal_flambys_efficient_scaffold_on_two_quadratics(server_lr: float) -> None:
    """Two nodes minimise s_i/2 * ||w - a_i||^2 with K plain gradient steps per round. medfed's rounds
    (node: y <- y - lr (g - c_i + c) and option II; server: Scaffold) give FLamby's models round by round
    (FLamby: C_i += (x - q_i) / (lr_s lr K), y <- y - lr (g - C_i), q_i = x + lr_s (y - x)), and
    c_i - c is FLamby's C_i: the sample-weighted mean for c is what makes the two agree."""
    targets = {101: np.array([1.0, -2.0, 0.5]), 102: np.array([-1.5, 0.5, 3.0])}
    scales = {101: 2.0, 102: 0.5}
    lr, steps = 0.1, 3
    x0 = np.array([0.2, 0.1, -0.3])
    weights = {n: SIZES[n] / sum(SIZES.values()) for n in SIZES}

    def descend(start: np.ndarray, node: int, shift: np.ndarray) -> np.ndarray:
        y = start.copy()
        for _ in range(steps):
            y = y - lr * (scales[node] * (y - targets[node]) + shift)
        return y

    # FLamby's form, in float64.
    flamby_x, q = x0.copy(), {n: x0.copy() for n in SIZES}
    correction = {n: np.zeros(3) for n in SIZES}
    flamby_models, flamby_corrections = [], []
    for _ in range(3):
        updates = {}
        for n in SIZES:
            correction[n] = correction[n] + (flamby_x - q[n]) / (server_lr * lr * steps)
            y = descend(flamby_x, n, -correction[n])
            q[n] = server_lr * y + (1 - server_lr) * flamby_x
            updates[n] = q[n] - flamby_x
        flamby_x = flamby_x + sum(weights[n] * updates[n] for n in SIZES)
        flamby_models.append(flamby_x.copy())
        flamby_corrections.append({n: correction[n].copy() for n in SIZES})

    # medfed: the coordinator's Scaffold and the node's control update.
    strategy = _scaffold(server_lr)
    x = {"w": x0.astype(np.float32)}
    own = {n: torch.zeros(3, dtype=torch.float32) for n in SIZES}
    for model, corrections in zip(flamby_models, flamby_corrections, strict=True):
        c = torch.from_numpy((strategy.control or {"w": np.zeros(3, dtype=np.float32)})["w"].copy())
        replies = []
        for n in SIZES:
            np.testing.assert_allclose((own[n] - c).numpy(), corrections[n], rtol=1e-4, atol=1e-5)
            y = descend(x["w"].astype(np.float64), n, (c - own[n]).double().numpy())  # g - c_i + c
            start, end = torch.from_numpy(x["w"].copy()), torch.from_numpy(y.astype(np.float32))
            (own[n],), (delta,) = control_update([c], [own[n]], [start], [end], steps=steps, lr=lr)
            replies.append(_reply(n, {"w": y}, {"w": delta.numpy()}))
        aggregated = _aggregate(strategy, x, replies)
        assert aggregated is not None
        x = aggregated
        np.testing.assert_allclose(x["w"], model, rtol=1e-4, atol=1e-5)


def test_a_scaffold_job_refuses_what_it_cannot_run_at_submission() -> None:
    """Scaffold is FLamby's flavour only, needs plain SGD, and runs without secure aggregation or DP-SGD."""
    base: dict[str, object] = {
        "kind": "learning",
        "model": "logistic_regression",
        "source": {"dataset": "table"},
        "features": ["x0"],
        "target": "y",
        "strategy": {"name": "scaffold", "flavour": "flamby"},
    }
    parse_spec(base)
    refused: list[dict[str, object]] = [
        {"strategy": {"name": "scaffold"}},
        {"strategy": {"name": "scaffold", "flavour": "flamby", "tau": 0.1}},
        {"optimizer": "adam"},
        {"momentum": 0.9},
        {"quorum": 2, "privacy": {"secure_aggregation": {"clip_range": 1.0}}},
        {
            "study": "s",
            "privacy": {"dp_sgd": {"noise_multiplier": 1, "max_grad_norm": 1, "delta": 1e-5, "epsilon_budget": 5}},
        },
    ]
    for changes in refused:
        with pytest.raises(InputError):
            parse_spec({**base, **changes})
