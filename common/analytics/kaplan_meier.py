"""Kaplan–Meier survival with numbers at risk, merged exactly from per-node event tables.

Node side: for each distinct time in its complete rows (time and event both present), the number of
events and of censorings at that time. Coordinator side: the union of times, summed counts, and then
the pooled estimator: numbers at risk ``n_j = N - (removed before t_j)`` and
``S(t_j) = prod_{i <= j} (1 - d_i / n_i)``, equal to ``lifelines.KaplanMeierFitter`` on the pooled
rows (tests: 1e-9; lifelines sums logs, we multiply, both the same estimator).

What each party learns: an exact Kaplan–Meier curve is a function of the distinct event and censoring
times with their counts, so the coordinator learns each node's table (times and counts); nodes learn
nothing from one another. The counts are integers, so disclosure control (cell suppression or noise, or
coarsening times on the node) applies to them before they leave. The partial's length is the number of
distinct times at the node, the one partial here whose size depends on data.

The event column must be 0/1 (or boolean): another value is refused (``DATA_OUTSIDE_DECLARED``).

Under disclosure control a node sends its table binned (times are the bin *ends*: a bin's events and
censorings count at its end), small counts carried into the next bin, the table ending at
``truncated_at`` with ``remaining`` patients still at risk there (at least ``k``), and ``missing`` as a
released cell; a node with fewer than ``k`` complete rows withholds its table (``suppressed``). The
merge counts the remaining patients in the numbers at risk, ends the pooled curve at the earliest
truncation, and withholds the whole curve when a node withheld its table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, NonNegativeInt, model_validator

from common.analytics.cells import Count, sum_counts
from common.analytics.design import complete_rows
from common.analytics.params import AnalysisModel, numeric_column, parse_params, parse_partials, wrong_shape
from common.errors import ErrorCode, InputError

__all__ = [
    "KaplanMeierParams",
    "KaplanMeierPartial",
    "KaplanMeierResult",
    "event_indicator",
    "kaplan_meier_partial",
    "merge_kaplan_meier",
]


class KaplanMeierParams(AnalysisModel):
    """Kaplan–Meier of ``time`` with ``event`` (1 = event observed, 0 = censored)."""

    time: str = Field(min_length=1)
    event: str = Field(min_length=1)

    @model_validator(mode="after")
    def _different_columns(self) -> KaplanMeierParams:
        if self.time == self.event:
            raise ValueError("time and event must be different columns")
        return self


class KaplanMeierPartial(AnalysisModel):
    """One node's event table: distinct times ascending, events and censorings at each.

    Under disclosure control: ``truncated_at`` where the node's table ends short of its data, with
    ``remaining`` patients still at risk there; ``suppressed`` when the node withheld its table.
    """

    times: list[float]
    events: list[NonNegativeInt]
    censored: list[NonNegativeInt]
    missing: Count
    truncated_at: float | None = None
    remaining: NonNegativeInt = 0
    suppressed: bool = False


class KaplanMeierResult(AnalysisModel):
    """The pooled curve at every distinct time (event or censoring), ascending."""

    times: list[float]
    at_risk: list[int]
    events: list[int]
    censored: list[int]
    survival: list[float]
    n: int | None
    missing: Count
    truncated_at: float | None = None
    suppressed: bool = False


def event_indicator(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The event column of complete rows as 0/1 integers; another value is refused."""
    values = numeric_column(frame, column)
    if not np.isin(values, (0.0, 1.0)).all():
        raise InputError(
            ErrorCode.DATA_OUTSIDE_DECLARED,
            detail="event indicator not 0/1",
            hints=[f"{column}: value(s) other than 0 and 1"],
        )
    return values.astype(np.int64)


def kaplan_meier_partial(frame: pd.DataFrame, params: KaplanMeierParams | Mapping[str, Any]) -> dict[str, Any]:
    """Node side: events and censorings per distinct time."""
    params = parse_params(KaplanMeierParams, params)
    rows = complete_rows(frame, [params.time, params.event])
    times = numeric_column(rows, params.time)
    events = event_indicator(rows, params.event)
    distinct, inverse = np.unique(times, return_inverse=True)
    event_counts = np.bincount(inverse, weights=events, minlength=len(distinct)).astype(np.int64)
    totals = np.bincount(inverse, minlength=len(distinct)).astype(np.int64)
    return KaplanMeierPartial(
        times=[float(t) for t in distinct],
        events=[int(d) for d in event_counts],
        censored=[int(c) for c in totals - event_counts],
        missing=len(frame) - len(rows),
    ).model_dump()


def merge_kaplan_meier(
    params: KaplanMeierParams | Mapping[str, Any], partials: Sequence[KaplanMeierPartial | Mapping[str, Any]]
) -> KaplanMeierResult:
    """Coordinator side: the pooled event table and the product-limit estimate."""
    parse_params(KaplanMeierParams, params)
    parsed = parse_partials(KaplanMeierPartial, partials)
    missing = sum_counts(p.missing for p in parsed)
    if any(p.suppressed for p in parsed):
        return KaplanMeierResult(
            times=[], at_risk=[], events=[], censored=[], survival=[], n=None, missing=missing, suppressed=True
        )
    tables = []
    for index, partial in enumerate(parsed):
        if not len(partial.times) == len(partial.events) == len(partial.censored):
            raise wrong_shape(index, "times")
        tables.append(
            pd.DataFrame(
                {
                    "time": np.asarray(partial.times, dtype=np.float64),
                    "events": np.asarray(partial.events, dtype=np.int64),
                    "censored": np.asarray(partial.censored, dtype=np.int64),
                }
            )
        )
    empty = pd.DataFrame({"time": np.zeros(0), "events": np.zeros(0, np.int64), "censored": np.zeros(0, np.int64)})
    pooled = pd.concat([empty, *tables]).groupby("time", sort=True).sum()
    events = pooled["events"].to_numpy(dtype=np.int64)
    censored = pooled["censored"].to_numpy(dtype=np.int64)
    n = int(events.sum() + censored.sum()) + sum(p.remaining for p in parsed)
    removed_before = np.concatenate(([0], np.cumsum(events + censored)[:-1])) if len(events) else events
    at_risk = n - removed_before
    survival = np.cumprod(1.0 - events / at_risk) if len(events) else np.zeros(0)
    times = pooled.index.to_numpy(dtype=np.float64)
    truncations = [p.truncated_at for p in parsed if p.truncated_at is not None]
    truncated_at = min(truncations) if truncations else None
    keep = times <= truncated_at if truncated_at is not None else np.ones(len(times), dtype=bool)
    return KaplanMeierResult(
        times=[float(t) for t in times[keep]],
        at_risk=[int(a) for a in at_risk[keep]],
        events=[int(d) for d in events[keep]],
        censored=[int(c) for c in censored[keep]],
        survival=[float(s) for s in survival[keep]],
        n=n,
        missing=missing,
        truncated_at=truncated_at,
    )
