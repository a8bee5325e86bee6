"""Crosstab of two categorical columns over declared levels.

The cells are the declared ``row_levels`` x ``column_levels``, never the levels found in data: every
node sends a matrix of the same fixed shape, in the same order, and no node reveals which levels it
holds. A value outside the declared levels is **refused** (``DATA_OUTSIDE_DECLARED``) rather than
pooled into an "other" cell, because such a cell would silently mix categories the researcher did not
ask for. Rows with either value missing are counted in ``missing``. All cells are integers. Under
disclosure control a node sends released cells and its released margins (row totals, column totals,
the total), and the merge follows :func:`common.analytics.cells.add_counts`: a cell or margin
suppressed at one node is suppressed in the pooled table, and a margin is pooled only when every node
sent it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from common.analytics.cells import Count, sum_counts, sum_optional
from common.analytics.design import level_codes
from common.analytics.params import (
    AnalysisModel,
    Scalar,
    parse_params,
    parse_partials,
    require_columns,
    wrong_shape,
)

__all__ = [
    "CrosstabParams",
    "CrosstabPartial",
    "CrosstabResult",
    "crosstab_codes",
    "crosstab_partial",
    "merge_crosstabs",
]


class CrosstabParams(AnalysisModel):
    """Counts of ``row`` x ``column`` over their declared levels."""

    row: str = Field(min_length=1)
    column: str = Field(min_length=1)
    row_levels: tuple[Scalar, ...] = Field(min_length=1, max_length=1000)
    column_levels: tuple[Scalar, ...] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _valid_levels(self) -> CrosstabParams:
        if self.row == self.column:
            raise ValueError("row and column must differ")
        for levels in (self.row_levels, self.column_levels):
            if len({repr(level) for level in levels}) != len(levels):
                raise ValueError("levels must be distinct")
        return self


class CrosstabPartial(AnalysisModel):
    """One node's table (rows x columns), its count of rows with a missing value, and released margins."""

    counts: list[list[Count]]
    missing: Count
    row_totals: list[Count] | None = None
    column_totals: list[Count] | None = None
    total: Count | None = None


class CrosstabResult(AnalysisModel):
    """The pooled table."""

    row_levels: list[Scalar]
    column_levels: list[Scalar]
    counts: list[list[Count]]
    missing: Count
    row_totals: list[Count] | None = None
    column_totals: list[Count] | None = None
    total: Count | None = None


def crosstab_codes(frame: pd.DataFrame, params: CrosstabParams | Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's row-level and column-level index (-1 when missing): the cell every record is in."""
    params = parse_params(CrosstabParams, params)
    require_columns(frame, [params.row, params.column])
    rows = level_codes(frame[params.row], params.row_levels, params.row)
    cols = level_codes(frame[params.column], params.column_levels, params.column)
    return rows, cols


def crosstab_partial(frame: pd.DataFrame, params: CrosstabParams | Mapping[str, Any]) -> dict[str, Any]:
    """Node side: the table of counts over the declared levels."""
    params = parse_params(CrosstabParams, params)
    rows, cols = crosstab_codes(frame, params)
    both = (rows >= 0) & (cols >= 0)
    table = np.zeros((len(params.row_levels), len(params.column_levels)), dtype=np.int64)
    np.add.at(table, (rows[both], cols[both]), 1)
    return CrosstabPartial(
        counts=[[int(c) for c in row] for row in table], missing=int(len(frame) - np.count_nonzero(both))
    ).model_dump()


def merge_crosstabs(
    params: CrosstabParams | Mapping[str, Any], partials: Sequence[CrosstabPartial | Mapping[str, Any]]
) -> CrosstabResult:
    """Coordinator side: cell-wise sums."""
    params = parse_params(CrosstabParams, params)
    parsed = parse_partials(CrosstabPartial, partials)
    shape = (len(params.row_levels), len(params.column_levels))
    for index, partial in enumerate(parsed):
        if len(partial.counts) != shape[0] or any(len(row) != shape[1] for row in partial.counts):
            raise wrong_shape(index, "counts")
        if partial.row_totals is not None and len(partial.row_totals) != shape[0]:
            raise wrong_shape(index, "row_totals")
        if partial.column_totals is not None and len(partial.column_totals) != shape[1]:
            raise wrong_shape(index, "column_totals")
    return CrosstabResult(
        row_levels=list(params.row_levels),
        column_levels=list(params.column_levels),
        counts=[[sum_counts(p.counts[i][j] for p in parsed) for j in range(shape[1])] for i in range(shape[0])],
        missing=sum_counts(p.missing for p in parsed),
        row_totals=_margin([p.row_totals for p in parsed], shape[0]),
        column_totals=_margin([p.column_totals for p in parsed], shape[1]),
        total=sum_optional([p.total for p in parsed]),
    )


def _margin(margins: list[list[Count] | None], size: int) -> list[Count] | None:
    """A pooled margin, only when every node sent it."""
    if not margins or any(margin is None for margin in margins):
        return None
    return [sum_counts(margin[k] for margin in margins if margin is not None) for k in range(size)]
