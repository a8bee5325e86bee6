"""The coordinator's merges of partials released under disclosure control, and secure-aggregation totals."""

from __future__ import annotations

import numpy as np

from common.analytics.count import merge_counts
from common.analytics.crosstab import merge_crosstabs
from common.analytics.kaplan_meier import merge_kaplan_meier
from common.analytics.moments import merge_moments
from common.analytics.quantiles import start_quantiles, step_quantiles
from common.analytics.secure import result_from_totals, vector_length
from common.privacy.suppression import MarginMask, recomputable_cells

SUPPRESSED = {"value": None, "suppressed": True}


def released(value: int) -> dict[str, object]:
    return {"value": value, "suppressed": False}


def test_a_count_suppressed_at_one_node_is_suppressed_in_the_total_never_read_as_zero() -> None:
    """One node withholds its non-missing count: the pooled one is withheld; released counts add up."""
    result = merge_counts(
        {"columns": ["chol"]},
        [
            {"rows": released(40), "non_missing": [SUPPRESSED]},
            {"rows": released(12), "non_missing": [released(9)]},
        ],
    )
    assert result.model_dump(mode="json") == {"rows": released(52), "non_missing": {"chol": SUPPRESSED}}


def test_plain_counts_stay_plain_integers() -> None:
    """Without disclosure control the merge is unchanged: integers in, integer sums out."""
    result = merge_counts({"columns": []}, [{"rows": 3, "non_missing": []}, {"rows": 4, "non_missing": []}])
    assert result.rows == 7


def test_crosstab_margins_are_pooled_only_when_every_node_sent_them() -> None:
    """Margins from both nodes add up (suppressed wins); a node without margins leaves the pooled ones out."""
    params = {"row": "a", "column": "b", "row_levels": [0], "column_levels": [0, 1]}
    with_margins = {
        "counts": [[released(10), SUPPRESSED]],
        "missing": released(0),
        "row_totals": [released(13)],
        "column_totals": [released(10), SUPPRESSED],
        "total": released(13),
    }
    both = merge_crosstabs(params, [with_margins, with_margins])
    assert both.row_totals is not None
    assert both.model_dump(mode="json")["column_totals"] == [released(20), SUPPRESSED]
    mixed = merge_crosstabs(params, [with_margins, {"counts": [[7, 0]], "missing": 0}])
    assert (mixed.row_totals, mixed.total) == (None, None)
    assert mixed.model_dump(mode="json")["counts"] == [[released(17), SUPPRESSED]]


def test_a_moments_column_withheld_at_one_node_is_withheld_in_the_pool() -> None:
    """Pooling a withheld column with a released one gives no mean or variance at all."""
    result = merge_moments(
        {"columns": ["x"]},
        [
            {"columns": [{"n": 0, "mean": 0.0, "m2": 0.0, "missing": released(0), "suppressed": True}]},
            {"columns": [{"n": 30, "mean": 5.0, "m2": 58.0, "missing": 0}]},
        ],
    )
    column = result.columns["x"]
    assert (column.suppressed, column.n, column.mean, column.variance) == (True, None, None, None)


def test_kaplan_meier_counts_the_remaining_at_risk_and_ends_at_the_earliest_truncation() -> None:
    """Two binned tables, one truncated at 60 with 7 still at risk: numbers at risk include those 7 and the
    pooled curve stops at 60."""
    result = merge_kaplan_meier(
        {"time": "t", "event": "e"},
        [
            {
                "times": [30.0, 60.0],
                "events": [5, 0],
                "censored": [0, 5],
                "missing": 0,
                "truncated_at": 60.0,
                "remaining": 7,
            },
            {"times": [30.0, 90.0], "events": [6, 5], "censored": [0, 0], "missing": 0},
        ],
    )
    assert result.times == [30.0, 60.0]
    assert result.at_risk == [17 + 11, 17 + 11 - 11]
    assert result.truncated_at == 60.0
    assert result.n == 17 + 11


def test_quantiles_withheld_by_one_node_are_withheld() -> None:
    """A node that withholds its counts withholds every quantile."""
    params = {"column": "x", "probabilities": [0.5], "lower": 0, "upper": 10}
    state, request = start_quantiles(params)
    partial = {"n": 0, "counts": [0] * len(request.thresholds), "suppressed": True, "precision": 1.0, "min_cell": 5}
    _, result = step_quantiles(params, state, [partial])
    assert result.model_dump(mode="json")["values"] == [None]
    assert result.model_dump(mode="json")["suppressed"] == [True]


def test_secure_totals_are_exact_without_disclosure_control_and_suppressed_with_it() -> None:
    """A 2 x 3 crosstab's summed vector: with k = 1 the plain table; with k = 5 the small cells and enough
    others withheld that no released margin recomputes them."""
    params = {"row": "a", "column": "b", "row_levels": [0, 1], "column_levels": [0, 1, 2]}
    table = np.array([[20, 3, 9], [15, 12, 30]])
    vector = [*table.ravel().tolist(), 4, *table.sum(axis=1).tolist(), *table.sum(axis=0).tolist(), int(table.sum())]
    assert len(vector) == vector_length("crosstab", params)
    exact = result_from_totals("crosstab", params, vector, min_cell=1).model_dump(mode="json")
    assert exact["counts"] == table.tolist()
    assert exact["missing"] == 4
    guarded = result_from_totals("crosstab", params, vector, min_cell=5).model_dump(mode="json")
    mask = np.array([[not cell["suppressed"] for cell in row] for row in guarded["counts"]])
    margins = MarginMask(
        rows=tuple(not c["suppressed"] for c in guarded["row_totals"]),
        columns=tuple(not c["suppressed"] for c in guarded["column_totals"]),
        total=not guarded["total"]["suppressed"],
    )
    assert guarded["counts"][0][1] == SUPPRESSED
    assert not mask.all()
    assert not [p for p in recomputable_cells(table, mask, margins) if p[0] == "cell"]
    assert guarded["missing"] == SUPPRESSED
