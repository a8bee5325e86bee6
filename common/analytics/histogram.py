"""Histogram with bins from declared bounds, never from the data's minimum and maximum.

The bins are ``bins`` equal-width intervals over ``[lower, upper]`` as declared in the parameters
(normally the bounds of the view or dataset schema): the edges are ``numpy.linspace(lower, upper,
bins + 1)``, each bin half-open ``[a, b)`` except the last, ``[a, upper]``, exactly as
``numpy.histogram`` with those edges. Because the edges never depend on data, every node bins alike, the
partial's size is fixed by the parameters, and no node's extremes leak.

Values outside the declared bounds are **counted, not dropped or refused**: ``underflow`` (below
``lower``) and ``overflow`` (above ``upper``) are explicit cells, so a narrower window than the schema's
bounds is allowed and the total still adds up. Missing values are counted in ``missing``. Every cell is
an integer, ready for disclosure control and secure aggregation. Under disclosure control a node sends
each cell as a released cell, plus its released ``total`` (all its rows), and the merge follows
:func:`common.analytics.cells.add_counts` (a cell suppressed at one node is suppressed in the total).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from common.analytics.cells import Count, sum_counts, sum_optional
from common.analytics.params import (
    AnalysisModel,
    FloatArray,
    numeric_column,
    parse_params,
    parse_partials,
    wrong_shape,
)

__all__ = [
    "HistogramParams",
    "HistogramPartial",
    "HistogramResult",
    "histogram_cell_index",
    "histogram_partial",
    "merge_histograms",
]


class HistogramParams(AnalysisModel):
    """A histogram of ``column`` with ``bins`` equal bins over the declared ``[lower, upper]``."""

    column: str = Field(min_length=1)
    lower: float
    upper: float
    bins: int = Field(ge=1, le=10_000)

    @model_validator(mode="after")
    def _ordered_finite_bounds(self) -> HistogramParams:
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)):
            raise ValueError("bounds must be finite")
        if not self.lower < self.upper:
            raise ValueError("lower must be below upper")
        return self

    def edges(self) -> FloatArray:
        """The ``bins + 1`` bin edges."""
        return np.linspace(self.lower, self.upper, self.bins + 1)


class HistogramPartial(AnalysisModel):
    """One node's bin counts and the explicit out-of-bounds and missing cells (and released total)."""

    counts: list[Count]
    underflow: Count
    overflow: Count
    missing: Count
    total: Count | None = None


class HistogramResult(AnalysisModel):
    """The pooled histogram."""

    edges: list[float]
    counts: list[Count]
    underflow: Count
    overflow: Count
    missing: Count
    total: Count | None = None


def histogram_partial(frame: pd.DataFrame, params: HistogramParams | Mapping[str, Any]) -> dict[str, Any]:
    """Node side: counts per declared bin, below, above and missing."""
    params = parse_params(HistogramParams, params)
    values = numeric_column(frame, params.column)
    present = values[~np.isnan(values)]
    inside = present[(present >= params.lower) & (present <= params.upper)]
    counts, _ = np.histogram(inside, bins=params.edges())
    return HistogramPartial(
        counts=[int(c) for c in counts],
        underflow=int(np.count_nonzero(present < params.lower)),
        overflow=int(np.count_nonzero(present > params.upper)),
        missing=int(len(values) - len(present)),
    ).model_dump()


def histogram_cell_index(frame: pd.DataFrame, params: HistogramParams | Mapping[str, Any]) -> np.ndarray:
    """Each row's cell: ``0 .. bins-1`` a bin, ``bins`` underflow, ``bins + 1`` overflow, ``bins + 2`` missing.

    The same cells as :func:`histogram_partial` (``numpy.histogram`` with explicit edges puts ``x`` in
    bin ``i`` when ``edges[i] <= x < edges[i+1]``, the last bin closed), row by row, for release rules
    that need to know which records are in which cell.
    """
    params = parse_params(HistogramParams, params)
    values = numeric_column(frame, params.column)
    cells = np.full(len(values), params.bins + 2, dtype=np.int64)
    present = ~np.isnan(values)
    cells[present & (values < params.lower)] = params.bins
    cells[present & (values > params.upper)] = params.bins + 1
    inside = present & (values >= params.lower) & (values <= params.upper)
    found = np.searchsorted(params.edges(), values[inside], side="right") - 1
    cells[inside] = np.minimum(found, params.bins - 1)
    return cells


def merge_histograms(
    params: HistogramParams | Mapping[str, Any], partials: Sequence[HistogramPartial | Mapping[str, Any]]
) -> HistogramResult:
    """Coordinator side: cell-wise sums."""
    params = parse_params(HistogramParams, params)
    parsed = parse_partials(HistogramPartial, partials)
    for index, partial in enumerate(parsed):
        if len(partial.counts) != params.bins:
            raise wrong_shape(index, "counts")
    return HistogramResult(
        edges=[float(e) for e in params.edges()],
        counts=[sum_counts(p.counts[j] for p in parsed) for j in range(params.bins)],
        underflow=sum_counts(p.underflow for p in parsed),
        overflow=sum_counts(p.overflow for p in parsed),
        missing=sum_counts(p.missing for p in parsed),
        total=sum_optional([p.total for p in parsed]),
    )
