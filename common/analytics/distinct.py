"""The ``distinct_count`` analysis: how many different patients a cohort holds across the nodes.

A patient treated at two hospitals is one person: summing the nodes' counts would count them twice.
Here every node turns its cohort into a **job-salted bitmap** of its persons' tokens
(:mod:`common.locator.union_count`: the salt comes from the network linkage key, which the
coordinator never holds, and the job; a set bucket holds a random non-zero value mod ``2**32``), and
the bitmaps travel under **secure aggregation** (:mod:`common.analytics.secure`'s two steps: round
keys, then masked vectors; always, whatever the spec's ``secure_aggregation`` says). The coordinator
adds the masked vectors mod ``2**32`` and sees only the union's bitmap — which buckets some node set,
never which node or how many — and estimates the number of distinct persons from its empty buckets
(linear counting). What it releases is that estimate rounded to :data:`ROUND_TO` and suppressed below
the larger of :data:`MIN_COUNT` and every node's declared minimum cell size; the nodes' sizes, their
overlaps and the union bitmap are not in the result.

Node side (it needs the store and the linkage key, so it is not a frame function):
``node.federation.apps.distinct``. Coordinator side: :func:`distinct_result` from the summed vector.
Parameters: ``patient``, the source column naming each row's patient (a Patient id or a
``Patient/<id>`` reference); ``buckets`` (a power of two; of the order of the largest union expected,
:func:`common.locator.union_count.buckets_for`); ``dummy_rate`` (randomised response per bucket).

Cost: per node one HMAC per cohort person, a vector of ``buckets`` entries (2**16: about 0.7 MB of JSON)
masked once per peer; accuracy better than 1 % while the union stays below ``buckets``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from pydantic import Field, field_validator

from common.analytics.cells import Count, ReleasedCell
from common.analytics.params import AnalysisModel
from common.errors import ErrorCode, InputError
from common.locator.union_count import MIN_COUNT, MODULUS_BITS, ROUND_TO, released_total, union_estimate

__all__ = [
    "BITMAP_MAX",
    "DISTINCT_COUNT",
    "DistinctCountParams",
    "DistinctCountResult",
    "distinct_partial",
    "distinct_result",
    "merge_distinct",
]

DISTINCT_COUNT = "distinct_count"
#: Every bitmap entry is below ``2**32``: the declared maximum and the secure sum's modulus.
BITMAP_MAX = (1 << MODULUS_BITS) - 1


class DistinctCountParams(AnalysisModel):
    """Which column names the patient, and the bitmap's size and dummy rate."""

    patient: str = Field(default="patient_id", min_length=1, max_length=200)
    buckets: int = Field(default=1 << 16, ge=1 << 10, le=1 << 20)
    dummy_rate: float = Field(default=0.0, ge=0.0, lt=0.5)

    @field_validator("buckets")
    @classmethod
    def _power_of_two(cls, buckets: int) -> int:
        if buckets & (buckets - 1):
            raise ValueError("buckets must be a power of two")
        return buckets


class DistinctCountResult(AnalysisModel):
    """The distinct persons of the cohort over every node, as released (rounded, or suppressed)."""

    distinct: Count
    round_to: int
    buckets: int


def distinct_partial(frame: pd.DataFrame, params: Any) -> dict[str, Any]:
    """Refused: a node answers ``distinct_count`` from its store and linkage key, under secure aggregation."""
    raise InputError(
        ErrorCode.INVALID_ANALYSIS,
        detail="distinct_count runs only as a federated job",
        hints=["analysis: distinct_count needs every node's linkage key and a secure sum"],
    )


def merge_distinct(params: Any, partials: Sequence[Mapping[str, Any]]) -> DistinctCountResult:
    """Refused: there are no plain partials to merge (see :func:`distinct_result`)."""
    raise InputError(
        ErrorCode.INVALID_ANALYSIS,
        detail="distinct_count has no plain partials",
        hints=["analysis: distinct_count runs only as a federated job"],
    )


def distinct_result(
    params: DistinctCountParams, totals: Sequence[int], *, nodes: int, min_cell: int
) -> DistinctCountResult:
    """The released count from the securely summed bitmaps of ``nodes`` nodes.

    Suppressed below ``max(MIN_COUNT, min_cell)``; InputError when the vector has the wrong length or
    the bitmap is full (ask again with more buckets).
    """
    if len(totals) != params.buckets:
        raise InputError(ErrorCode.INVALID_PARTIAL, detail="the summed bitmap has the wrong length")
    estimate = union_estimate(totals, nodes=nodes, dummy_rate=params.dummy_rate)
    released = released_total(estimate, round_to=ROUND_TO, min_count=max(MIN_COUNT, min_cell))
    distinct: Count = ReleasedCell(value=None, suppressed=True) if released is None else released
    return DistinctCountResult(distinct=distinct, round_to=ROUND_TO, buckets=params.buckets)
