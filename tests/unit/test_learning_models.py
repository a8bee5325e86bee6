"""The model registry's learning parts: linear models, FLamby's Cox loss, the C-index, inputs, checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import ArrayRecord
from lifelines.utils import concordance_index as lifelines_concordance_index  # type: ignore[import-untyped]

from common.errors import ErrorCode, InputError
from common.models import build_model, model_names
from common.models.checkpoints import (
    decode_tensors,
    encode_tensors,
    load_state_dict,
    save_state_dict,
    state_dict_from_bytes,
)
from common.models.features import prepare
from common.models.losses import cox_partial_likelihood_loss
from common.models.metrics import admissible_pairs, binary_accuracy, concordance_index, risk_concordance_index
from common.models.task import LearningTask, parse_learning_task
from coordinator.federation.driver import encode_arrays


def test_the_registry_builds_logistic_regression_and_cox_models_seeded_like_torch() -> None:
    """Both linear models hold one Linear layer named ``linear``; with a seed its weights are the ones
    ``torch.manual_seed(seed)`` then ``nn.Linear`` draws (FLamby's initialisation), without touching the global RNG."""
    assert {"logistic_regression", "cox_linear", "mlp"} <= set(model_names())
    torch.manual_seed(0)
    before = torch.rand(1)
    model = build_model("cox_linear", in_features=39, seed=42)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), before)  # the global RNG was not used
    torch.manual_seed(42)
    reference = torch.nn.Linear(39, 1)
    assert list(model.state_dict()) == ["linear.weight", "linear.bias"]
    assert torch.equal(model.state_dict()["linear.weight"], reference.weight)
    assert torch.equal(model.state_dict()["linear.bias"], reference.bias)
    logistic = build_model("logistic_regression", in_features=13, seed=1)
    assert logistic(torch.zeros(5, 13)).shape == (5, 1)


def _cox_by_definition(scores: list[float], events: list[int], times: list[float]) -> float:
    """FLamby's minibatch loss written as a loop: order by decreasing time (stable), risk set = those before."""
    order = sorted(range(len(times)), key=lambda i: -times[i])
    top = max(scores)
    total = 0.0
    for position, i in enumerate(order):
        risk = sum(math.exp(scores[j] - top) for j in order[: position + 1])
        total += -((scores[i] - top) - math.log(risk)) * events[i]
    return total / len(scores)


def test_the_cox_loss_is_flambys_minibatch_partial_likelihood_ties_included() -> None:
    """The loss equals FLamby's definition (stable order by decreasing time, risk set = subjects before,
    mean over the whole batch) on a batch with tied times and censored subjects."""
    scores = [0.3, -1.2, 2.0, 0.7, 0.7, -0.1]
    events = [1, 0, 1, 1, 0, 1]
    times = [5.0, 3.0, 5.0, 1.0, 8.0, 3.0]
    got = cox_partial_likelihood_loss(
        torch.tensor(scores, dtype=torch.float64),
        torch.tensor(events, dtype=torch.float64),
        torch.tensor(times, dtype=torch.float64),
    )
    assert got.item() == pytest.approx(_cox_by_definition(scores, events, times), rel=1e-12)
    shifted = cox_partial_likelihood_loss(
        torch.tensor(scores, dtype=torch.float64) + 100.0,
        torch.tensor(events, dtype=torch.float64),
        torch.tensor(times, dtype=torch.float64),
    )
    assert shifted.item() == pytest.approx(got.item(), rel=1e-9)  # a constant shift (the bias) cancels


def test_the_concordance_index_equals_lifelines_with_tied_times_and_predictions() -> None:
    """Harrell's C here equals ``lifelines.utils.concordance_index`` on data with tied times, tied
    predictions and censoring; the risk form is ``concordance_index(T, -risk, E)``."""
    rng = np.random.default_rng(4)
    times = rng.integers(1, 15, size=80).astype(float)
    events = rng.random(80) < 0.4
    predicted = np.round(rng.normal(size=80), 1)
    assert concordance_index(times, predicted, events) == pytest.approx(
        lifelines_concordance_index(times, predicted, events), abs=1e-12
    )
    assert risk_concordance_index(times, predicted, events) == pytest.approx(
        lifelines_concordance_index(times, -predicted, events), abs=1e-12
    )
    assert admissible_pairs(times, np.zeros(80)) == 0
    with pytest.raises(ValueError, match="no admissible pairs"):
        concordance_index(times, predicted, np.zeros(80))
    assert binary_accuracy([2.0, -1.0, 0.0, 0.5], [1, 0, 1, 0]) == 0.5


TASK = LearningTask.model_validate(
    {
        "model": "logistic_regression",
        "source": {"dataset": "d"},
        "features": ["age"],
        "categorical": [{"column": "cp", "levels": [1, 2, 3]}],
        "target": "num",
        "split": {"column": "split"},
        "standardize": "node_train",
    }
)
FRAME = pd.DataFrame(
    {
        "age": pd.array([50, 60, None, 70, 40, 55], dtype="Int64"),
        "cp": pd.array([1, 2, 3, 3, 1, 2], dtype="Int64"),
        "num": pd.array([0, 2, 1, 0, 1, 0], dtype="Int64"),
        "split": pd.array(["train", "train", "train", "train", "test", None], dtype="string"),
    }
)


def test_inputs_are_one_hot_without_the_first_level_and_standardised_with_the_nodes_training_rows() -> None:
    """Rows missing any used column are dropped; categorical levels become 0/1 columns without the first;
    every input is z-scored with the training rows' mean and n-1 standard deviation (+1e-9); the label is
    ``value > 0``."""
    prepared = prepare(FRAME, TASK)
    assert TASK.input_names == ("age", "cp=2", "cp=3")
    assert (len(prepared.train), len(prepared.test), prepared.dropped) == (3, 1, 2)
    raw_train = np.array([[50, 0, 0], [60, 1, 0], [70, 0, 1]], dtype=float)
    mean, std = raw_train.mean(axis=0), raw_train.std(axis=0, ddof=1)
    np.testing.assert_allclose(prepared.train.x, (raw_train - mean) / (std + 1e-9), rtol=1e-6)
    np.testing.assert_allclose(prepared.test.x, (np.array([[40, 0, 0]]) - mean) / (std + 1e-9), rtol=1e-6)
    assert prepared.train.y.tolist() == [0.0, 1.0, 0.0]
    assert prepared.test.y.tolist() == [1.0]


def test_a_value_outside_the_declared_levels_or_an_unknown_column_is_refused_without_values() -> None:
    """The refusal names the location and rule only."""
    bad = FRAME.assign(cp=pd.array([1, 2, 9, 3, 1, 2], dtype="Int64"), age=pd.array([1] * 6, dtype="Int64"))
    with pytest.raises(InputError) as outside:
        prepare(bad, TASK)
    assert outside.value.code is ErrorCode.DATA_OUTSIDE_DECLARED
    assert outside.value.hints == ("categorical[0]: value outside the declared levels",)
    with pytest.raises(InputError) as unknown:
        prepare(FRAME.drop(columns=["age"]), TASK)
    assert unknown.value.code is ErrorCode.INVALID_LEARNING_TASK
    assert "9" not in " ".join(outside.value.hints)


def test_a_task_that_mixes_outcomes_or_names_no_input_is_refused_with_locations() -> None:
    """A Cox model needs event and time; a binary model a target; tasks travel as canonical JSON."""
    with pytest.raises(InputError) as refused:
        parse_learning_task({"model": "cox_linear", "source": {"dataset": "d"}, "features": ["a"], "target": "y"})
    assert refused.value.code is ErrorCode.INVALID_LEARNING_TASK
    with pytest.raises(InputError):
        parse_learning_task({"model": "mlp", "source": {"dataset": "d"}, "target": "y"})
    assert parse_learning_task(TASK.to_wire()) == TASK
    assert parse_learning_task(TASK.to_wire()).digest() == TASK.digest()


def test_model_bytes_round_trip_and_match_the_round_drivers_format(tmp_path: Path) -> None:
    """The checkpoint module reads the bytes the round driver saves, and a state dict written to a file
    loads back (``weights_only=True``) bit for bit into a registry model."""
    model = build_model("cox_linear", in_features=4, seed=3)
    state = model.state_dict()
    data = encode_arrays(ArrayRecord(state))
    assert data == encode_tensors(state)
    decoded = decode_tensors(data)
    assert list(decoded) == list(state)
    path = tmp_path / "model.pt"
    save_state_dict(state_dict_from_bytes(data), path)
    loaded = load_state_dict(path)
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor)
    fresh = build_model("cox_linear", in_features=4, seed=0)
    fresh.load_state_dict(loaded)
    assert torch.equal(fresh(torch.ones(2, 4)), model(torch.ones(2, 4)))
    with pytest.raises(ValueError, match="longer"):
        decode_tensors(data + b"\0")
