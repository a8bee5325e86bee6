"""Count: rows, and non-missing values per column.

Node side: integer counts of its rows (after cohort filtering). Coordinator side: the sums. The partial
is integers only, so disclosure control and secure aggregation (integer masking) apply to it unchanged.
Under disclosure control a node sends each count as a released cell (perturbed or suppressed), and the
sums follow :func:`common.analytics.cells.add_counts`: a count suppressed at one node is suppressed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from pydantic import Field

from common.analytics.cells import Count, sum_counts
from common.analytics.params import (
    AnalysisModel,
    DistinctColumns,
    parse_params,
    parse_partials,
    require_columns,
    wrong_shape,
)

__all__ = ["CountParams", "CountPartial", "CountResult", "count_partial", "merge_counts"]


class CountParams(AnalysisModel):
    """Count the rows, and the non-missing values of ``columns``."""

    columns: DistinctColumns = Field(default=(), max_length=1000)


class CountPartial(AnalysisModel):
    """One node's counts."""

    rows: Count
    non_missing: list[Count]


class CountResult(AnalysisModel):
    """Pooled counts."""

    rows: Count
    non_missing: dict[str, Count]


def count_partial(frame: pd.DataFrame, params: CountParams | Mapping[str, Any]) -> dict[str, Any]:
    """Node side: the number of rows and of non-missing values per requested column."""
    params = parse_params(CountParams, params)
    require_columns(frame, params.columns)
    non_missing: list[Count] = [int(frame[column].notna().sum()) for column in params.columns]
    return CountPartial(rows=len(frame), non_missing=non_missing).model_dump()


def merge_counts(
    params: CountParams | Mapping[str, Any], partials: Sequence[CountPartial | Mapping[str, Any]]
) -> CountResult:
    """Coordinator side: the sums over nodes."""
    params = parse_params(CountParams, params)
    parsed = parse_partials(CountPartial, partials)
    for index, partial in enumerate(parsed):
        if len(partial.non_missing) != len(params.columns):
            raise wrong_shape(index, "non_missing")
    totals = [sum_counts(p.non_missing[j] for p in parsed) for j in range(len(params.columns))]
    return CountResult(
        rows=sum_counts(p.rows for p in parsed), non_missing=dict(zip(params.columns, totals, strict=True))
    )
