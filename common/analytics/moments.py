"""Mean and variance, merged exactly with Chan et al.'s parallel update of ``(n, mean, M2)``.

Node side: for each column, the number of non-missing values ``n``, their mean and ``M2``, the sum of
squared deviations from that mean (two-pass, so no catastrophic cancellation). Coordinator side: the
pairwise merge (Chan, Golub & LeVeque 1979)::

    n = na + nb,  delta = mean_b - mean_a,  mean = mean_a + delta * nb / n,
    M2 = M2a + M2b + delta**2 * na * nb / n

which equals the pooled two-pass statistics up to rounding (tests: relative 1e-10 against numpy).
The variance reported is the sample variance ``M2 / (n - 1)`` (numpy ``ddof=1``); with ``n < 2`` it is
``None``, and with ``n == 0`` so is the mean.

Under disclosure control a node releases, per column, ``n`` perturbed by its cell key, its mean exact,
and ``M2`` as its sample variance times ``n' - 1`` (``n'`` the released ``n``), so its own mean and
variance survive the merge and the pooled ones weight nodes by their released ``n``; a column with
``1 .. k-1`` values is withheld (``suppressed``) and the pooled column is then withheld too: never
pooled as if the node had no values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, NonNegativeInt

from common.analytics.cells import Count, add_counts
from common.analytics.params import (
    AnalysisModel,
    DistinctColumns,
    numeric_column,
    parse_params,
    parse_partials,
    wrong_shape,
)

__all__ = [
    "ColumnMoments",
    "ColumnSummary",
    "MomentsParams",
    "MomentsPartial",
    "MomentsResult",
    "chan_merge",
    "merge_moments",
    "moments_partial",
]


class MomentsParams(AnalysisModel):
    """Mean and variance of each of ``columns``."""

    columns: DistinctColumns = Field(min_length=1, max_length=1000)


class ColumnMoments(AnalysisModel):
    """One column at one node: count, mean and sum of squared deviations (0 and 0 when empty).

    ``suppressed``: the node withheld the column (its ``n``, ``mean`` and ``m2`` are then 0 and mean
    nothing).
    """

    n: NonNegativeInt
    mean: float
    m2: float = Field(ge=0)
    missing: Count
    suppressed: bool = False


class MomentsPartial(AnalysisModel):
    """One node's moments, in the order of the parameters' columns."""

    columns: list[ColumnMoments]


class ColumnSummary(AnalysisModel):
    """Pooled moments of one column (all None and ``suppressed`` when a node withheld it)."""

    n: int | None
    missing: Count
    mean: float | None
    m2: float | None
    variance: float | None
    std: float | None
    suppressed: bool = False


class MomentsResult(AnalysisModel):
    """Pooled moments per column."""

    columns: dict[str, ColumnSummary]


def moments_partial(frame: pd.DataFrame, params: MomentsParams | Mapping[str, Any]) -> dict[str, Any]:
    """Node side: ``(n, mean, M2)`` per column, two-pass."""
    params = parse_params(MomentsParams, params)
    out = []
    for column in params.columns:
        values = numeric_column(frame, column)
        present = values[~np.isnan(values)]
        if len(present) == 0:
            out.append(ColumnMoments(n=0, mean=0.0, m2=0.0, missing=len(values)))
            continue
        mean = float(np.mean(present))
        m2 = float(np.sum((present - mean) ** 2))
        out.append(ColumnMoments(n=len(present), mean=mean, m2=m2, missing=len(values) - len(present)))
    return MomentsPartial(columns=out).model_dump()


def chan_merge(a: ColumnMoments, b: ColumnMoments) -> ColumnMoments:
    """Chan's pairwise merge of two ``(n, mean, M2)`` summaries (withheld if either is)."""
    missing = add_counts(a.missing, b.missing)
    if a.suppressed or b.suppressed:
        return ColumnMoments(n=0, mean=0.0, m2=0.0, missing=missing, suppressed=True)
    if b.n == 0:
        return ColumnMoments(n=a.n, mean=a.mean, m2=a.m2, missing=missing)
    if a.n == 0:
        return ColumnMoments(n=b.n, mean=b.mean, m2=b.m2, missing=missing)
    n = a.n + b.n
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.n / n)
    m2 = a.m2 + b.m2 + delta * delta * (a.n * b.n / n)
    return ColumnMoments(n=n, mean=mean, m2=m2, missing=missing)


def merge_moments(
    params: MomentsParams | Mapping[str, Any], partials: Sequence[MomentsPartial | Mapping[str, Any]]
) -> MomentsResult:
    """Coordinator side: Chan's merge over nodes, in node order."""
    params = parse_params(MomentsParams, params)
    parsed = parse_partials(MomentsPartial, partials)
    merged = [ColumnMoments(n=0, mean=0.0, m2=0.0, missing=0) for _ in params.columns]
    for index, partial in enumerate(parsed):
        if len(partial.columns) != len(params.columns):
            raise wrong_shape(index, "columns")
        merged = [chan_merge(a, b) for a, b in zip(merged, partial.columns, strict=True)]
    summaries = {}
    for column, total in zip(params.columns, merged, strict=True):
        if total.suppressed:
            summaries[column] = ColumnSummary(
                n=None, missing=total.missing, mean=None, m2=None, variance=None, std=None, suppressed=True
            )
            continue
        variance = total.m2 / (total.n - 1) if total.n > 1 else None
        summaries[column] = ColumnSummary(
            n=total.n,
            missing=total.missing,
            mean=total.mean if total.n > 0 else None,
            m2=total.m2,
            variance=variance,
            std=float(np.sqrt(variance)) if variance is not None else None,
        )
    return MomentsResult(columns=summaries)
