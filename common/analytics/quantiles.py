"""Exact type-7 quantiles by federated bisection on counts.

Definition: Hyndman & Fan type 7, numpy's default ``method='linear'`` (R's default too). With the pooled
non-missing values sorted as ``x_1 <= ... <= x_n``, ``h = (n - 1) p``, ``j = floor(h)``, ``g = h - j``, the
p-quantile is ``x_(j+1)`` interpolated towards ``x_(j+2)`` by ``g`` (computed with numpy's own ``_lerp``
arithmetic, so the result equals ``numpy.quantile`` of the pooled data exactly, not approximately).

How order statistics are found without moving rows: every finite double maps to an integer key that
preserves order (its IEEE-754 bits, negated for negative numbers). ``x_(k)`` is the smallest key ``t``
whose count ``#{x <= t}`` reaches ``k``. The coordinator keeps, per needed rank ``k``, an interval of
keys ``(lo, hi]`` with ``count(lo) < k <= count(hi)``, starting from the declared bounds, and asks every
node only for **integer counts of values at or below** a few thresholds (``probes`` per open interval,
default 15, so each round cuts every interval 16-fold). When ``hi == lo + 1``, ``x_(k)`` is the double of
key ``hi``: exact, in at most ``ceil(log_{probes+1}(key span))`` rounds, i.e. **at most 16 rounds at
the default** for any finite bounds (the key span of all finite doubles is below 2**64). The first
round also returns ``n`` (which fixes the ranks wanted) and already narrows every interval; all wanted
ranks are searched in the same rounds. Fewer probes mean smaller messages and more rounds (at most 64
with one probe).

What each party learns: nodes learn thresholds (they reveal nothing a node does not already see in the
parameters and the final result); the coordinator learns pooled counts at thresholds and, necessarily,
the order statistics that define the quantiles. Node counts are integers (disclosure control and
secure aggregation apply unchanged).

Bounds are declared ``[lower, upper]`` (from the schema). A value outside them is **refused** by the
node (``DATA_OUTSIDE_DECLARED``): the search would otherwise not bracket it.

Under disclosure control a node counts its values rounded to its declared ``precision`` (so the counts
change only on that grid) and says so in its partial with its ``min_cell``; a node with ``1 .. k-1``
values withholds its counts (``suppressed``). The coordinator then withholds every quantile (a
suppressed node), rounds the quantiles to the coarsest declared precision, withholds a quantile with
fewer than ``k`` values at or below it or at or above it (the extremes name one patient's value), and
does not report the exact pooled ``n``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, NonNegativeInt, model_validator

from common.analytics.params import (
    AnalysisModel,
    numeric_column,
    parse_params,
    parse_partials,
    parse_request,
    wrong_shape,
)
from common.errors import ErrorCode, InputError, InternalError
from common.privacy.release import round_to_precision

__all__ = [
    "QuantileParams",
    "QuantilePartial",
    "QuantileRequest",
    "QuantileResult",
    "QuantileState",
    "answer_quantiles",
    "float_key",
    "key_float",
    "start_quantiles",
    "step_quantiles",
    "type7",
]

_SIGN_MASK = 0x7FFF_FFFF_FFFF_FFFF


def float_key(value: float) -> int:
    """An integer that orders like ``value`` over all finite doubles (-0.0 and 0.0 share key 0)."""
    bits: int = struct.unpack("<q", struct.pack("<d", value))[0]
    return bits if bits >= 0 else -(bits & _SIGN_MASK)


def key_float(key: int) -> float:
    """The double of an order-preserving key (inverse of :func:`float_key`)."""
    magnitude: float = struct.unpack("<d", struct.pack("<q", abs(key)))[0]
    return magnitude if key >= 0 else -magnitude


class QuantileParams(AnalysisModel):
    """Type-7 quantiles of ``column`` at ``probabilities``; values must lie in ``[lower, upper]``."""

    column: str = Field(min_length=1)
    probabilities: tuple[float, ...] = Field(min_length=1, max_length=100)
    lower: float
    upper: float
    probes: int = Field(default=15, ge=1, le=255)
    max_rounds: int = Field(default=80, ge=1, le=1000)

    @model_validator(mode="after")
    def _valid(self) -> QuantileParams:
        if not all(0.0 <= p <= 1.0 for p in self.probabilities):
            raise ValueError("probabilities must lie in [0, 1]")
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)) or not self.lower <= self.upper:
            raise ValueError("bounds must be finite with lower <= upper")
        return self


class QuantileRequest(AnalysisModel):
    """Count the values at or below each threshold."""

    thresholds: list[float] = Field(max_length=100 * 2 * 255)


class QuantilePartial(AnalysisModel):
    """One node's non-missing count and counts at or below each threshold.

    Under disclosure control: ``precision`` the grid the node's values were rounded to, ``min_cell`` its
    minimum cell size, ``suppressed`` when it withheld its counts (then ``n`` and ``counts`` are 0).
    """

    n: NonNegativeInt
    counts: list[NonNegativeInt]
    suppressed: bool = False
    precision: float | None = Field(default=None, gt=0)
    min_cell: int | None = Field(default=None, ge=1)


class QuantileState(AnalysisModel):
    """The coordinator's search: per needed rank, the open key interval ``(lo, hi]``."""

    n: int | None = None
    asked: list[int] = Field(default_factory=list)
    intervals: dict[int, tuple[int, int]] = Field(default_factory=dict)
    rounds: int = 0


class QuantileResult(AnalysisModel):
    """Pooled type-7 quantiles (``None`` when there are no values) and how many rounds it took.

    Under disclosure control ``suppressed`` flags the withheld quantiles and ``n`` is not reported.
    """

    probabilities: list[float]
    values: list[float | None]
    n: int | None
    rounds: int
    suppressed: list[bool] | None = None


def _probe_keys(lo: int, hi: int, probes: int) -> list[int]:
    span = hi - lo
    if span - 1 <= probes:
        return list(range(lo + 1, hi))
    return sorted({lo + (i * span) // (probes + 1) for i in range(1, probes + 1)} - {lo, hi})


def _initial_interval(params: QuantileParams) -> tuple[int, int]:
    return float_key(params.lower) - 1, float_key(params.upper)


def start_quantiles(params: QuantileParams | Mapping[str, Any]) -> tuple[QuantileState, QuantileRequest]:
    """Coordinator: the first round asks ``n`` and counts at thresholds spread over the bounds."""
    params = parse_params(QuantileParams, params)
    lo, hi = _initial_interval(params)
    asked = _probe_keys(lo, hi, params.probes)
    return QuantileState(asked=asked), QuantileRequest(thresholds=[key_float(k) for k in asked])


def answer_quantiles(
    frame: pd.DataFrame,
    params: QuantileParams | Mapping[str, Any],
    request: QuantileRequest | Mapping[str, Any],
) -> dict[str, Any]:
    """Node: its count of non-missing values and of values at or below each threshold."""
    params = parse_params(QuantileParams, params)
    request = parse_request(QuantileRequest, request)
    values = numeric_column(frame, params.column)
    present = np.sort(values[~np.isnan(values)])
    if len(present) and (present[0] < params.lower or present[-1] > params.upper):
        raise InputError(
            ErrorCode.DATA_OUTSIDE_DECLARED,
            detail="value outside the declared bounds",
            hints=[f"{params.column}: value(s) outside the declared bounds"],
        )
    counts = np.searchsorted(present, np.asarray(request.thresholds, dtype=np.float64), side="right")
    return QuantilePartial(n=len(present), counts=[int(c) for c in counts]).model_dump()


def _needed_ranks(n: int, probabilities: Sequence[float]) -> set[int]:
    ranks: set[int] = set()
    for p in probabilities:
        virtual = (n - 1) * p
        if virtual >= n - 1:
            ranks.add(n)
            continue
        previous = math.floor(virtual)
        ranks.add(previous + 1)
        if virtual - previous > 0:
            ranks.add(previous + 2)
    return ranks


def type7(order_stat: Mapping[int, float], n: int, p: float) -> float:
    """The type-7 quantile from 1-based order statistics, with numpy's interpolation arithmetic."""
    virtual = (n - 1) * p
    if virtual >= n - 1:
        return order_stat[n]
    previous = math.floor(virtual)
    gamma = virtual - previous
    a = order_stat[previous + 1]
    if gamma == 0:
        return a
    b = order_stat[previous + 2]
    diff = b - a
    if gamma >= 0.5:
        return b - diff * (1 - gamma)
    return a + diff * gamma


def step_quantiles(
    params: QuantileParams | Mapping[str, Any],
    state: QuantileState,
    partials: Sequence[QuantilePartial | Mapping[str, Any]],
) -> tuple[QuantileState, QuantileRequest | QuantileResult]:
    """Coordinator: narrow every interval with the pooled counts; finish when all are one key wide."""
    params = parse_params(QuantileParams, params)
    parsed = parse_partials(QuantilePartial, partials)
    if any(partial.suppressed for partial in parsed):
        withheld = len(params.probabilities)
        result = QuantileResult(
            probabilities=list(params.probabilities),
            values=[None] * withheld,
            n=None,
            rounds=state.rounds + 1,
            suppressed=[True] * withheld,
        )
        return state, result
    pooled = np.zeros(len(state.asked), dtype=np.int64)
    for index, partial in enumerate(parsed):
        if len(partial.counts) != len(state.asked):
            raise wrong_shape(index, "counts")
        pooled += np.asarray(partial.counts, dtype=np.int64)
    n = sum(partial.n for partial in parsed)
    rounds = state.rounds + 1
    if state.n is not None and n != state.n:
        raise InternalError(ErrorCode.INVALID_PARTIAL, detail="node counts changed between rounds")
    intervals = dict(state.intervals)
    if state.n is None:
        start = _initial_interval(params)
        intervals = dict.fromkeys(sorted(_needed_ranks(n, params.probabilities)), start) if n else {}
    counted = dict(zip(state.asked, (int(c) for c in pooled), strict=True))
    for rank, (lo, hi) in intervals.items():
        for key, count in counted.items():
            if lo < key < hi:
                if count >= rank:
                    hi = key
                else:
                    lo = key
        intervals[rank] = (lo, hi)
    open_intervals = [(lo, hi) for lo, hi in intervals.values() if hi - lo > 1]
    if not open_intervals:
        order_stat = {rank: key_float(hi) for rank, (_, hi) in intervals.items()}
        values: list[float | None] = (
            [type7(order_stat, n, p) for p in params.probabilities] if n else [None] * len(params.probabilities)
        )
        result = QuantileResult(probabilities=list(params.probabilities), values=values, n=n, rounds=rounds)
        if any(partial.min_cell is not None for partial in parsed):
            result = _disclosed(params, result, parsed)
        return QuantileState(n=n, intervals=intervals, rounds=rounds), result
    if rounds >= params.max_rounds:
        raise InternalError(ErrorCode.INTERNAL, detail="quantile search did not close within max_rounds")
    asked = sorted({key for lo, hi in open_intervals for key in _probe_keys(lo, hi, params.probes)})
    next_state = QuantileState(n=n, asked=asked, intervals=intervals, rounds=rounds)
    return next_state, QuantileRequest(thresholds=[key_float(k) for k in asked])


def _disclosed(params: QuantileParams, result: QuantileResult, parsed: Sequence[QuantilePartial]) -> QuantileResult:
    """The result under the nodes' disclosure rules: rounded, the extremes withheld, ``n`` not reported."""
    n = result.n or 0
    k = max(partial.min_cell or 1 for partial in parsed)
    precision = max((partial.precision for partial in parsed if partial.precision is not None), default=None)
    values: list[float | None] = []
    suppressed: list[bool] = []
    for p, value in zip(params.probabilities, result.values, strict=True):
        virtual = (n - 1) * p
        lowest, highest = math.floor(virtual) + 1, math.ceil(virtual) + 1
        if value is None or lowest < k or highest > n - k + 1:
            values.append(None)
            suppressed.append(True)
            continue
        values.append(value if precision is None else round_to_precision(value, precision))
        suppressed.append(False)
    return QuantileResult(
        probabilities=result.probabilities, values=values, n=None, rounds=result.rounds, suppressed=suppressed
    )
