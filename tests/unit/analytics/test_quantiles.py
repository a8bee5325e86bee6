"""Type-7 quantiles by federated bisection on counts equal numpy.quantile on the pooled values exactly."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from common.analytics.local import run_local
from common.analytics.quantiles import QuantileResult, float_key, key_float
from common.errors import ErrorCode, InputError
from tests.unit.analytics.reference import pooled

PROBABILITIES = [0.0, 0.01, 0.1, 0.25, 1 / 3, 0.5, 0.75, 0.9, 0.975, 0.99, 1.0]


@pytest.mark.parametrize(
    ("dataset", "column", "lower", "upper"),
    [
        ("heart", "chol", 0.0, 800.0),
        ("heart", "oldpeak", -5.0, 10.0),
        ("heart", "age", 0.0, 120.0),
        ("tcga", "T", 0.0, 20000.0),
    ],
)
def test_quantiles_equal_numpy_type7_exactly(
    request: pytest.FixtureRequest, dataset: str, column: str, lower: float, upper: float
) -> None:
    """Every quantile is bit-for-bit numpy.quantile(method='linear') of the pooled values."""
    nodes: list[pd.DataFrame] = request.getfixturevalue(f"{dataset}_nodes")
    params = {"column": column, "probabilities": PROBABILITIES, "lower": lower, "upper": upper}
    result = run_local("quantiles", params, nodes)
    assert isinstance(result, QuantileResult)
    values = pooled(nodes)[column].dropna().to_numpy(dtype=float)
    assert result.n == len(values)
    assert result.values == np.quantile(values, PROBABILITIES, method="linear").tolist()
    assert result.rounds <= 16


def test_quantile_search_takes_at_most_16_rounds_over_all_doubles() -> None:
    """With the widest finite bounds and 15 probes per interval, the search still closes within 16 rounds."""
    rng = np.random.default_rng(7)
    nodes = [pd.DataFrame({"x": rng.standard_normal(50) * 10.0 ** rng.integers(-300, 300, 50)}) for _ in range(3)]
    params = {
        "column": "x",
        "probabilities": [0.1, 0.5, 0.9],
        "lower": -sys.float_info.max,
        "upper": sys.float_info.max,
    }
    result = run_local("quantiles", params, nodes)
    assert isinstance(result, QuantileResult)
    assert result.values == np.quantile(pooled(nodes)["x"].to_numpy(), [0.1, 0.5, 0.9]).tolist()
    assert result.rounds <= 16


def test_fewer_probes_take_more_rounds_and_give_the_same_values(heart_nodes: list[pd.DataFrame]) -> None:
    """The number of probes per round trades rounds for message size, never exactness."""
    params = {"column": "chol", "probabilities": [0.5], "lower": 0.0, "upper": 800.0}
    wide = run_local("quantiles", {**params, "probes": 255}, heart_nodes)
    narrow = run_local("quantiles", {**params, "probes": 1}, heart_nodes)
    assert isinstance(wide, QuantileResult)
    assert isinstance(narrow, QuantileResult)
    assert wide.values == narrow.values
    assert wide.rounds < narrow.rounds <= 64


def test_order_keys_preserve_the_order_of_doubles() -> None:
    """The integer keys sort like the doubles and map back to them, across signs and magnitudes."""
    values = sorted([-sys.float_info.max, -1.5, -5e-324, 0.0, 5e-324, 1e-300, 1.0, 2.5, sys.float_info.max])
    keys = [float_key(v) for v in values]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert [key_float(k) for k in keys] == values
    assert float_key(-0.0) == float_key(0.0)
    assert key_float(float_key(1.0) + 1) == np.nextafter(1.0, 2.0)


def test_values_outside_the_declared_bounds_are_refused(heart_nodes: list[pd.DataFrame]) -> None:
    """A node holding a value outside [lower, upper] refuses, naming the column only."""
    with pytest.raises(InputError) as caught:
        run_local("quantiles", {"column": "chol", "probabilities": [0.5], "lower": 100, "upper": 800}, heart_nodes)
    assert caught.value.code is ErrorCode.DATA_OUTSIDE_DECLARED
    assert caught.value.hints == ("chol: value(s) outside the declared bounds",)


def test_quantiles_without_values_are_none() -> None:
    """With no non-missing values the quantiles are None after one round."""
    nodes = [pd.DataFrame({"x": [np.nan]}), pd.DataFrame({"x": pd.Series([], dtype=float)})]
    result = run_local("quantiles", {"column": "x", "probabilities": [0.5], "lower": 0, "upper": 1}, nodes)
    assert isinstance(result, QuantileResult)
    assert (result.values, result.n, result.rounds) == ([None], 0, 1)
