"""Count, histogram, mean/variance and crosstab over the node split equal numpy/pandas on the pooled rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.analytics.cells import sum_counts
from common.analytics.count import CountResult
from common.analytics.crosstab import CrosstabResult
from common.analytics.histogram import HistogramResult, histogram_partial, merge_histograms
from common.analytics.local import run_local
from common.analytics.moments import MomentsResult
from common.errors import ErrorCode, InputError
from tests.unit.analytics.reference import max_relative_error, pooled

HEART_NUMERIC = ["age", "trestbps", "chol", "thalach", "oldpeak", "ca"]


def test_counts_equal_pooled_counts(heart_nodes: list[pd.DataFrame]) -> None:
    """Rows and non-missing values per column add up to the pooled counts exactly."""
    result = run_local("count", {"columns": ["chol", "ca", "num"]}, heart_nodes)
    assert isinstance(result, CountResult)
    table = pooled(heart_nodes)
    assert result.rows == len(table) == 920
    assert result.non_missing == {c: int(table[c].notna().sum()) for c in ("chol", "ca", "num")}
    assert result.non_missing["chol"] == 920 - 23 - 123 - 56  # "?" and chol = 0 are both missing


def test_histogram_equals_numpy_with_declared_bins(heart_nodes: list[pd.DataFrame]) -> None:
    """Bin counts equal numpy.histogram of the pooled values over the declared edges, cell for cell."""
    params = {"column": "chol", "lower": 0, "upper": 800, "bins": 16}
    result = run_local("histogram", params, heart_nodes)
    assert isinstance(result, HistogramResult)
    values = pooled(heart_nodes)["chol"].dropna().to_numpy(dtype=float)
    expected, edges = np.histogram(values, bins=np.linspace(0, 800, 17))
    assert result.counts == expected.tolist()
    assert result.edges == edges.tolist()
    assert (result.underflow, result.overflow) == (0, 0)
    assert result.missing == 920 - len(values)


def test_histogram_counts_values_outside_bounds_in_explicit_cells(heart_nodes: list[pd.DataFrame]) -> None:
    """A window narrower than the data puts the rest in underflow and overflow; nothing is dropped."""
    result = run_local("histogram", {"column": "chol", "lower": 150, "upper": 400, "bins": 5}, heart_nodes)
    assert isinstance(result, HistogramResult)
    values = pooled(heart_nodes)["chol"].dropna().to_numpy(dtype=float)
    assert result.underflow == int((values < 150).sum()) > 0
    assert result.overflow == int((values > 400).sum()) > 0
    assert sum_counts([*result.counts, result.underflow, result.overflow]) == len(values)


def test_histogram_edges_come_from_the_declared_bounds_not_the_data() -> None:
    """Two nodes with different data ranges send partials with identical bins, set by the parameters."""
    params = {"column": "x", "lower": 0.0, "upper": 10.0, "bins": 4}
    narrow = histogram_partial(pd.DataFrame({"x": [4.0, 4.5, 5.0]}), params)
    wide = histogram_partial(pd.DataFrame({"x": [0.0, 10.0, -3.0, 12.0]}), params)
    assert narrow["counts"] == [0, 2, 1, 0]  # bins are [a, b) except the last
    assert wide["counts"] == [1, 0, 0, 1]
    assert (wide["underflow"], wide["overflow"]) == (1, 1)
    merged = merge_histograms(params, [narrow, wide])
    assert merged.edges == [0.0, 2.5, 5.0, 7.5, 10.0]
    assert merged.counts == [1, 2, 1, 1]


def test_moments_equal_numpy_to_relative_1e10(heart_nodes: list[pd.DataFrame], tcga_nodes: list[pd.DataFrame]) -> None:
    """Chan's merge of per-node (n, mean, M2) gives the pooled mean and sample variance."""
    for nodes, columns in ((heart_nodes, HEART_NUMERIC), (tcga_nodes, ["age_at_index", "T"])):
        result = run_local("moments", {"columns": columns}, nodes)
        assert isinstance(result, MomentsResult)
        table = pooled(nodes)
        for column in columns:
            values = table[column].dropna().to_numpy(dtype=float)
            summary = result.columns[column]
            assert summary.n == len(values)
            assert summary.mean is not None
            assert summary.variance is not None
            assert max_relative_error(summary.mean, np.mean(values)) <= 1e-10
            assert max_relative_error(summary.variance, np.var(values, ddof=1)) <= 1e-10


def test_moments_of_an_empty_column_are_none() -> None:
    """With no values the mean and variance are None, and with one value the variance is."""
    nodes = [pd.DataFrame({"x": [np.nan, np.nan]}), pd.DataFrame({"x": [3.0]})]
    result = run_local("moments", {"columns": ["x"]}, nodes[:1])
    assert isinstance(result, MomentsResult)
    assert (result.columns["x"].mean, result.columns["x"].variance, result.columns["x"].missing) == (None, None, 2)
    result = run_local("moments", {"columns": ["x"]}, nodes)
    assert isinstance(result, MomentsResult)
    assert (result.columns["x"].n, result.columns["x"].mean, result.columns["x"].variance) == (1, 3.0, None)


@pytest.mark.parametrize(("row", "row_levels"), [("sex", [0, 1]), ("cp", [1, 2, 3, 4])])
def test_crosstab_equals_pandas_crosstab(heart_nodes: list[pd.DataFrame], row: str, row_levels: list[int]) -> None:
    """The merged table equals pandas.crosstab of the pooled rows, every cell exactly."""
    params = {"row": row, "column": "num", "row_levels": row_levels, "column_levels": [0, 1, 2, 3, 4]}
    result = run_local("crosstab", params, heart_nodes)
    assert isinstance(result, CrosstabResult)
    table = pooled(heart_nodes)
    expected = pd.crosstab(table[row], table["num"]).reindex(index=row_levels, columns=[0, 1, 2, 3, 4], fill_value=0)
    assert result.counts == expected.to_numpy().tolist()
    assert result.missing == 0


def test_crosstab_refuses_values_outside_the_declared_levels(heart_nodes: list[pd.DataFrame]) -> None:
    """A level the parameters do not declare is refused, naming the column only."""
    params = {"row": "cp", "column": "num", "row_levels": [1, 2, 3], "column_levels": [0, 1, 2, 3, 4]}
    with pytest.raises(InputError) as caught:
        run_local("crosstab", params, heart_nodes)
    assert caught.value.code is ErrorCode.DATA_OUTSIDE_DECLARED
    assert caught.value.hints == ("cp: value(s) outside the declared levels",)


@pytest.mark.parametrize(
    ("name", "params", "location"),
    [
        ("histogram", {"column": "chol", "lower": 5, "upper": 1, "bins": 3}, "(root)"),
        ("histogram", {"column": "chol", "lower": 0, "upper": 1, "bins": 0}, "bins"),
        ("moments", {"columns": []}, "columns"),
        ("crosstab", {"row": "sex", "column": "num", "row_levels": [0, 0], "column_levels": [0]}, "(root)"),
        ("count", {"columns": ["age"], "extra": 1}, "extra"),
    ],
)
def test_bad_parameters_are_refused_with_locations(
    heart_nodes: list[pd.DataFrame], name: str, params: dict[str, object], location: str
) -> None:
    """Invalid parameters raise INVALID_ANALYSIS with the field location as the hint, not the value."""
    with pytest.raises(InputError) as caught:
        run_local(name, params, heart_nodes)
    assert caught.value.code is ErrorCode.INVALID_ANALYSIS
    assert caught.value.hints[0].startswith(f"{location}:")


def test_unknown_column_is_refused_by_name(heart_nodes: list[pd.DataFrame]) -> None:
    """An analysis of a column the table lacks is refused, naming the column."""
    with pytest.raises(InputError) as caught:
        run_local("moments", {"columns": ["cholesterol"]}, heart_nodes)
    assert caught.value.hints == ("cholesterol: no such column",)
