"""Strategies of learning jobs: FLamby's FedOpt update rules on fixed numbers, Flower's own, Cyclic, state."""

from __future__ import annotations

import random

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAdagrad, FedAdam, Strategy
from pydantic import ValidationError

from common.flower import ensure_task_identity
from coordinator.federation.strategies import (
    Cyclic,
    FlambyFedAdagrad,
    FlambyFedAdam,
    FlambyFedYogi,
    StrategySpec,
    build_strategy,
    load_strategy_state,
    strategy_state,
)

GLOBAL = {"w": np.array([[0.5, -1.0, 2.0]], dtype=np.float32), "b": np.array([0.25], dtype=np.float32)}
# Two rounds of two nodes' models (what each node sent back) and their training rows.
NODE_MODELS = [
    [
        {"w": np.array([[0.6, -0.8, 1.7]], dtype=np.float32), "b": np.array([0.3], dtype=np.float32)},
        {"w": np.array([[0.2, -1.1, 2.4]], dtype=np.float32), "b": np.array([0.1], dtype=np.float32)},
    ],
    [
        {"w": np.array([[0.9, -0.2, 1.0]], dtype=np.float32), "b": np.array([-0.3], dtype=np.float32)},
        {"w": np.array([[0.1, -1.5, 2.9]], dtype=np.float32), "b": np.array([0.6], dtype=np.float32)},
    ],
]
SIZES = (30, 90)
ETA, TAU, BETA1, BETA2 = 0.1, 1e-8, 0.9, 0.999


def _replies(models: list[dict[str, np.ndarray]]) -> list[Message]:
    ensure_task_identity()
    return [
        Message(
            RecordDict(
                {
                    "arrays": ArrayRecord({k: Array(v) for k, v in model.items()}),
                    "metrics": MetricRecord({"train_loss": 1.0, "num-examples": n}),
                }
            ),
            dst_node_id=100 + i,
            message_type=MessageType.TRAIN,
        )
        for i, (model, n) in enumerate(zip(models, SIZES, strict=True))
    ]


def _run_two_rounds(strategy: Strategy) -> list[dict[str, np.ndarray]]:
    """Aggregate the two rounds as the round driver does (the arrays sent are recorded first)."""
    current = {k: v.copy() for k, v in GLOBAL.items()}
    out = []
    for server_round, models in enumerate(NODE_MODELS, start=1):
        strategy.current_arrays = {k: v.copy() for k, v in current.items()}  # type: ignore[attr-defined]
        arrays, _ = strategy.aggregate_train(server_round, _replies(models))
        assert arrays is not None
        current = {k: a.numpy() for k, a in arrays.items()}
        out.append(current)
    return out


def _flamby_expected(second_moment: str) -> list[dict[str, np.ndarray]]:
    """FLamby's fed_opt.py rules written out in float64: m, v, then x + eta * m / (sqrt(v) + tau)."""
    x = {k: v.astype(np.float64) for k, v in GLOBAL.items()}
    m = {k: np.zeros_like(v) for k, v in x.items()}
    v2 = {k: np.zeros_like(v) for k, v in x.items()}
    total = sum(SIZES)
    results = []
    for models in NODE_MODELS:
        for k in x:
            delta = (
                sum(n * (model[k].astype(np.float64) - x[k]) for model, n in zip(models, SIZES, strict=True)) / total
            )
            m[k] = BETA1 * m[k] + (1 - BETA1) * delta
            if second_moment == "adam":
                v2[k] = BETA2 * v2[k] + (1 - BETA2) * delta * delta
            elif second_moment == "yogi":
                v2[k] = v2[k] - (1 - BETA2) * delta * delta * np.sign(v2[k] - delta * delta)
            else:
                v2[k] = v2[k] + delta * delta
            x[k] = x[k] + ETA * m[k] / (np.sqrt(v2[k]) + TAU)
        results.append({k: value.copy() for k, value in x.items()})
    return results


def _flamby(name: str) -> Strategy:
    spec = StrategySpec(name=name, flavour="flamby", server_lr=ETA, tau=TAU, beta1=BETA1, beta2=BETA2)  # type: ignore[arg-type]
    return build_strategy(spec, client_lr=0.01)


@pytest.mark.parametrize(
    ("name", "kind", "rule"),
    [
        ("fedadam", FlambyFedAdam, "adam"),
        ("fedyogi", FlambyFedYogi, "yogi"),
        ("fedadagrad", FlambyFedAdagrad, "adagrad"),
    ],
)
def test_flamby_fedopt_steps_equal_flambys_formulas_over_two_rounds(name: str, kind: type, rule: str) -> None:
    """Two rounds of FLamby-flavoured FedAdam, FedYogi and FedAdagrad give the models FLamby's update rules
    give on the same numbers (no bias correction, tau 1e-8, Adagrad with momentum), to float32 precision."""
    strategy = _flamby(name)
    assert isinstance(strategy, kind)
    got = _run_two_rounds(strategy)
    want = _flamby_expected(rule)
    for got_round, want_round in zip(got, want, strict=True):
        for key in GLOBAL:
            np.testing.assert_allclose(got_round[key], want_round[key], rtol=1e-5, atol=1e-6)
    # The second round moved away from a plain FedAvg step: momentum and the second moment were carried.
    assert not np.allclose(got[1]["w"], got[0]["w"])


def test_flowers_fedadam_keeps_its_bias_correction_and_differs_from_flambys() -> None:
    """flavour flower runs Flower's FedAdam unchanged: eta is bias-corrected, so round 1 differs from FLamby's."""
    flower = build_strategy(
        StrategySpec(name="fedadam", server_lr=ETA, tau=TAU, beta1=BETA1, beta2=BETA2), client_lr=0.01
    )
    assert type(flower) is FedAdam
    got = _run_two_rounds(flower)[0]
    flamby = _flamby_expected("adam")[0]
    eta_norm = ETA * np.sqrt(1 - BETA2**2) / (1 - BETA1**2)  # Flower's alpha_t for server_round 1
    for key in GLOBAL:
        step = (flamby[key] - GLOBAL[key]) / ETA
        np.testing.assert_allclose(got[key], GLOBAL[key] + eta_norm * step, rtol=1e-4, atol=1e-6)
        assert not np.allclose(got[key], flamby[key])


def test_flowers_fedadagrad_has_no_momentum_and_refuses_a_beta1() -> None:
    """Flower's FedAdagrad forces beta1 = 0; asking it for momentum is refused (FLamby's flavour has it)."""
    strategy = build_strategy(StrategySpec(name="fedadagrad", server_lr=ETA, tau=TAU), client_lr=0.01)
    assert type(strategy) is FedAdagrad
    assert strategy.beta_1 == 0.0
    with pytest.raises(ValidationError):
        StrategySpec(name="fedadagrad", beta1=0.9)
    assert _flamby("fedadagrad").beta_1 == BETA1  # type: ignore[attr-defined]


def test_fedopt_moments_survive_their_saved_form_exactly() -> None:
    """The moments a FedOpt strategy carries go through strategy_state (JSON) and back bit for bit, so a
    restored strategy's next step equals the uninterrupted one's."""
    carried, fresh = _flamby("fedadam"), _flamby("fedadam")
    _run_two_rounds(carried)
    load_strategy_state(fresh, strategy_state(carried))
    for key in GLOBAL:
        assert np.array_equal(fresh.m_t[key], carried.m_t[key])  # type: ignore[attr-defined]
        assert np.array_equal(fresh.v_t[key], carried.v_t[key])  # type: ignore[attr-defined]
    assert strategy_state(fresh) == strategy_state(carried)
    load_strategy_state(fresh, {})
    assert fresh.m_t is None  # type: ignore[attr-defined]


def test_cyclic_visits_every_available_node_once_per_cycle_in_a_seeded_order() -> None:
    """Cyclic trains one node per round; each cycle is a permutation of the nodes drawn from the job's RNG,
    the same for the same seed; an unavailable node is passed over."""
    nodes = [11, 22, 33, 44]

    def picks(seed: int, rounds: int, available: list[int] = nodes) -> list[int]:
        strategy, rng = Cyclic(), random.Random(seed)
        return [strategy.sample_train(available, rng)[0] for _ in range(rounds)]

    twelve = picks(7, 12)
    for cycle in range(3):
        assert sorted(twelve[cycle * 4 : cycle * 4 + 4]) == nodes
    assert twelve == picks(7, 12)
    assert twelve != picks(8, 12)
    assert set(picks(7, 6, available=[11, 33])) == {11, 33}
    assert Cyclic().evaluate_targets([33], nodes) == nodes


def test_cyclic_order_survives_its_saved_form() -> None:
    """Cyclic's cycle order and position go through strategy_state and back."""
    strategy, rng = Cyclic(), random.Random(3)
    strategy.sample_train([1, 2, 3], rng)
    restored = Cyclic()
    load_strategy_state(restored, strategy_state(strategy))
    assert (restored.order, restored.position) == (strategy.order, strategy.position)
    assert restored.sample_train([1, 2, 3], random.Random(0)) == strategy.sample_train([1, 2, 3], rng)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "fedavg", "server_lr": 0.1},
        {"name": "fedadam", "proximal_mu": 0.1},
        {"name": "fedprox", "tau": 1e-3},
        {"name": "fedsgd"},
        {"name": "scaffold"},
        {"name": "scaffold", "flavour": "flamby", "beta1": 0.9},
        {"name": "cyclic", "flavour": "flamby"},
        {"name": "cyclic", "reference_node": 5},
    ],
)
def test_a_strategy_spec_refuses_hyper_parameters_its_strategy_does_not_have(fields: dict[str, object]) -> None:
    """A hyper-parameter of another strategy, an unknown strategy, or a flavour that does not have the
    strategy (Flower has no Scaffold) is a validation error."""
    with pytest.raises(ValidationError):
        StrategySpec.model_validate(fields)
