"""Counts under secure aggregation: the two steps, the vector layout, and the pooled result from totals.

With ``secure_aggregation`` a ``count``, ``histogram`` or ``crosstab`` job takes two steps instead of
one (:mod:`common.privacy.secure_sum` has the masking and its threat model):

1. **keys**: every node pins its data, makes a fresh X25519 round key and answers
   :class:`SecureKeysPartial`: the public key, the largest value it will put in any entry
   (``max_value``, ``2**b - 1`` for the bit length ``b`` of its source's row count plus its noise
   bound, so it reveals the order of magnitude of the source's size and nothing of the cohort), its
   minimum cell size ``min_cell`` (1 without disclosure control) and its release ``method``;
2. **mask**: the coordinator fixes the round (participants, length, ``max_total`` = the sum of the
   declared maxima, ``k`` the smallest with ``2**k > max_total``) and sends every node the others'
   public keys (:class:`SecureMaskRequest`); each node computes its integer vector
   (:func:`vector_length` entries in the layout below), perturbs it under its own rules, masks it
   and answers :class:`SecureMaskPartial`. The coordinator adds the vectors mod ``2**k`` and sees the
   totals only.

Layout (every entry a count, margins included so that disclosure control can judge them):

* ``count``: ``rows``, then ``non_missing`` per column;
* ``histogram``: the bins, ``underflow``, ``overflow``, ``missing``, ``total``;
* ``crosstab``: the cells row by row, ``missing``, the row totals, the column totals, ``total``.

**Suppression with secure aggregation.** A node cannot withhold its own small cells without telling
the coordinator which cells are small, so each node perturbs *every* non-zero entry with its cell key
(a p-table whose smallest released value is 1: a non-zero count never becomes 0 and none goes
negative) or adds its DP noise, and the coordinator applies primary and secondary suppression to the
**totals**, with ``k`` the largest ``min_cell`` any node declared (:func:`result_from_totals`). The
coordinator necessarily sees the totals it suppresses; the researcher gets the suppressed table.
Without disclosure control at every node (``k = 1``) the totals are exact and equal the pooled counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, NonNegativeInt

from common.analytics.cells import Count, ReleasedCell
from common.analytics.count import CountParams, CountResult
from common.analytics.crosstab import CrosstabParams, CrosstabResult
from common.analytics.histogram import HistogramParams, HistogramResult
from common.analytics.params import AnalysisModel, parse_params
from common.errors import ErrorCode, InputError
from common.privacy.suppression import suppress_table

__all__ = [
    "SecureKeysPartial",
    "SecureKeysRequest",
    "SecureMaskPartial",
    "SecureMaskRequest",
    "max_value_for",
    "result_from_totals",
    "vector_length",
]


class SecureKeysRequest(AnalysisModel):
    """Step 1: send a fresh round key and what the round must know."""

    secure_aggregation: Literal["keys"] = "keys"


class SecureKeysPartial(AnalysisModel):
    """A node's answer to step 1."""

    public_key: str = Field(min_length=1, max_length=100)
    max_value: NonNegativeInt
    min_cell: int = Field(ge=1)
    method: str = Field(min_length=1, max_length=64)


class SecureMaskRequest(AnalysisModel):
    """Step 2: the round every participant masks for, and every participant's public key."""

    secure_aggregation: Literal["mask"] = "mask"
    round: int = Field(ge=1)
    attempt: int = Field(ge=1)
    length: int = Field(ge=1)
    max_total: NonNegativeInt
    modulus_bits: int = Field(ge=1, le=64)
    participants: list[str] = Field(min_length=2)
    public_keys: dict[str, str]


class SecureMaskPartial(AnalysisModel):
    """A node's masked vector (entries mod ``2**modulus_bits``) and the round it was made for."""

    round_digest: str = Field(min_length=64, max_length=64)
    masked: list[NonNegativeInt]


def max_value_for(rows: int, max_noise: int) -> int:
    """The declared maximum of a node's entries: ``2**b - 1`` with ``b`` the bit length of ``rows + max_noise``."""
    return (1 << max(1, (rows + max_noise).bit_length())) - 1


def vector_length(analysis: str, params: Mapping[str, Any]) -> int:
    """The number of entries of the analysis' vector (see the module docstring)."""
    if analysis == "count":
        return 1 + len(parse_params(CountParams, params).columns)
    if analysis == "histogram":
        return parse_params(HistogramParams, params).bins + 4
    if analysis == "crosstab":
        crosstab = parse_params(CrosstabParams, params)
        rows, columns = len(crosstab.row_levels), len(crosstab.column_levels)
        return rows * columns + 1 + rows + columns + 1
    raise InputError(
        ErrorCode.INVALID_ANALYSIS, detail="no secure aggregation for this analysis", hints=["secure_aggregation"]
    )


def _cell(value: int, released: bool) -> ReleasedCell:
    return ReleasedCell(value=value, suppressed=False) if released else ReleasedCell(value=None, suppressed=True)


def _plain(value: Any) -> Count:
    return int(value)


def _single(value: int, min_cell: int) -> Count:
    if min_cell <= 1:
        return value
    return _cell(value, not 0 < value < min_cell)


def result_from_totals(analysis: str, params: Mapping[str, Any], totals: Sequence[int], *, min_cell: int) -> BaseModel:
    """The pooled result from the summed vector: exact with ``min_cell`` 1, else suppressed on the totals."""
    if len(totals) != vector_length(analysis, params):
        raise InputError(ErrorCode.INVALID_PARTIAL, detail="the summed vector has the wrong length")
    values = [int(v) for v in totals]
    if analysis == "count":
        count = parse_params(CountParams, params)
        return CountResult(
            rows=_single(values[0], min_cell),
            non_missing={c: _single(v, min_cell) for c, v in zip(count.columns, values[1:], strict=True)},
        )
    if analysis == "histogram":
        return _histogram(parse_params(HistogramParams, params), values, min_cell)
    return _crosstab(parse_params(CrosstabParams, params), values, min_cell)


def _histogram(params: HistogramParams, values: list[int], min_cell: int) -> HistogramResult:
    cells, total = values[:-1], values[-1]
    edges = [float(e) for e in params.edges()]
    if min_cell <= 1:
        exact: list[Count] = list(cells[: params.bins])
        return HistogramResult(edges=edges, counts=exact, underflow=cells[-3], overflow=cells[-2], missing=cells[-1])
    plan = suppress_table(np.asarray(cells, dtype=np.int64), min_cell=min_cell, total=True)
    released = [_cell(v, bool(ok)) for v, ok in zip(cells, plan.released, strict=True)]
    return HistogramResult(
        edges=edges,
        counts=list(released[: params.bins]),
        underflow=released[-3],
        overflow=released[-2],
        missing=released[-1],
        total=_cell(total, plan.margins.total),
    )


def _crosstab(params: CrosstabParams, values: list[int], min_cell: int) -> CrosstabResult:
    n_rows, n_columns = len(params.row_levels), len(params.column_levels)
    size = n_rows * n_columns
    table = np.asarray(values[:size], dtype=np.int64).reshape(n_rows, n_columns)
    missing = values[size]
    row_totals = values[size + 1 : size + 1 + n_rows]
    column_totals = values[size + 1 + n_rows : size + 1 + n_rows + n_columns]
    total = values[-1]
    if min_cell <= 1:
        return CrosstabResult(
            row_levels=list(params.row_levels),
            column_levels=list(params.column_levels),
            counts=[[_plain(c) for c in row] for row in table],
            missing=missing,
        )
    plan = suppress_table(table, min_cell=min_cell)
    return CrosstabResult(
        row_levels=list(params.row_levels),
        column_levels=list(params.column_levels),
        counts=[[_cell(int(table[i, j]), bool(plan.released[i, j])) for j in range(n_columns)] for i in range(n_rows)],
        missing=_single(missing, min_cell),
        row_totals=[_cell(v, ok) for v, ok in zip(row_totals, plan.margins.rows, strict=True)],
        column_totals=[_cell(v, ok) for v, ok in zip(column_totals, plan.margins.columns, strict=True)],
        total=_cell(total, plan.margins.total),
    )
