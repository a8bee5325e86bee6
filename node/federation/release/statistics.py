"""Releasing the analyses that are not tables of counts: moments, quantiles, Kaplan-Meier, models.

Rules (``docs/privacy.md``), each a function of the cohort's rows and the analysis' exact partial:

* **moments**: per column, ``n`` is released as a count of its records (cell-key noise, withheld when
  ``1 .. k-1``; a withheld column withholds its mean and variance too); the mean is exact, and ``M2``
  is sent as the node's sample variance times ``n' - 1`` so that the node's mean and variance survive
  the merge; ``missing`` is a released count;
* **quantiles**: a node with ``1 .. k-1`` values withholds its counts; otherwise it counts its values
  rounded to the policy's ``quantile_precision`` (clipped to the declared bounds), so its counts change
  only on that grid, and says so (``precision``, ``min_cell``); the coordinator rounds and withholds
  extremes (:mod:`common.analytics.quantiles`);
* **Kaplan-Meier**: :meth:`common.privacy.release.Discloser.kaplan_meier` (times binned to
  ``km_time_bin``, small counts carried into the next bin, the table ending before fewer than ``k``
  remain at risk); a node with ``1 .. k-1`` complete rows withholds its table;
* **GLM and Cox**: the partials are exact sums, released only over at least
  ``max(k, p + 1, min_rows_per_node)`` complete rows (``p`` parameters); a node with fewer (but some)
  refuses with ``design_refused``. The pooled design rules (too small, saturated, rank-deficient) are
  the coordinator's, on the merged sums, as without disclosure control.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from common.analytics.cox import CoxParams
from common.analytics.design import complete_rows
from common.analytics.glm import GlmParams
from common.analytics.kaplan_meier import KaplanMeierParams, event_indicator
from common.analytics.moments import MomentsParams
from common.analytics.params import numeric_column, parse_params, parse_request
from common.analytics.quantiles import QuantileParams, QuantileRequest
from common.analytics.task import AnalysisTask
from common.errors import ErrorCode, InputError
from common.privacy.release import Discloser
from common.privacy.suppression import primary_suppressed
from node.federation.release.records import record_identities

__all__ = ["kaplan_meier_partial", "model_partial", "moments_partial", "quantiles_partial"]


def moments_partial(
    task: AnalysisTask, rows: pd.DataFrame, partial: dict[str, Any], discloser: Discloser
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Moments under the policy (see the module docstring)."""
    params = parse_params(MomentsParams, task.params)
    ids = record_identities(task, rows)
    columns = []
    for column, exact in zip(params.columns, partial["columns"], strict=True):
        present = ~np.isnan(numeric_column(rows, column))
        n = discloser.count(ids[present]).count
        missing = discloser.count(ids[~present]).count.to_json()
        if n.suppressed or n.value is None:
            columns.append({"n": 0, "mean": 0.0, "m2": 0.0, "missing": missing, "suppressed": True})
            continue
        count = int(exact["n"])
        variance = exact["m2"] / (count - 1) if count > 1 else 0.0
        m2 = variance * (n.value - 1) if n.value > 1 else 0.0
        columns.append({"n": n.value, "mean": exact["mean"], "m2": m2, "missing": missing, "suppressed": False})
    metadata = discloser.metadata(moments="n perturbed by its cell key; mean and variance exact when n >= min_cell")
    return {"columns": columns}, metadata


def quantiles_partial(
    task: AnalysisTask, rows: pd.DataFrame, request: Any, discloser: Discloser
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Counts at the requested thresholds of the values rounded to the declared precision."""
    params = parse_params(QuantileParams, task.params)
    thresholds = np.asarray(parse_request(QuantileRequest, request).thresholds, dtype=np.float64)
    policy = discloser.policy
    precision = policy.quantile_precision
    metadata = discloser.metadata(quantile_precision=precision, quantile_counts="of values rounded to the precision")
    values = numeric_column(rows, params.column)
    present = values[~np.isnan(values)]
    declared = {"precision": precision, "min_cell": policy.min_cell}
    if primary_suppressed(len(present), policy.min_cell):
        return {"n": 0, "counts": [0] * len(thresholds), "suppressed": True, **declared}, metadata
    rounded = np.sort(np.clip(np.round(present / precision) * precision, params.lower, params.upper))
    counts = np.searchsorted(rounded, thresholds, side="right")
    return {"n": len(present), "counts": [int(c) for c in counts], "suppressed": False, **declared}, metadata


def kaplan_meier_partial(
    task: AnalysisTask, rows: pd.DataFrame, discloser: Discloser
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The binned, carried and truncated survival table (see the module docstring)."""
    params = parse_params(KaplanMeierParams, task.params)
    complete = complete_rows(rows, [params.time, params.event])
    present = np.isin(rows.index, complete.index)
    ids = record_identities(task, rows)
    missing = discloser.count(ids[~present]).count.to_json()
    times = numeric_column(complete, params.time)
    events = event_indicator(complete, params.event).astype(bool)
    released = discloser.kaplan_meier(times.tolist(), events.tolist())
    empty = {"times": [], "events": [], "censored": [], "missing": missing}
    if len(times) == 0:
        return empty, released.metadata
    if released.suppressed:
        return {**empty, "suppressed": True}, released.metadata
    bins = released.bins
    removed = sum(b.events + b.censored for b in bins)
    partial = {
        "times": [b.end for b in bins],
        "events": [b.events for b in bins],
        "censored": [b.censored for b in bins],
        "missing": missing,
        "truncated_at": released.truncated_at,
        "remaining": len(times) - removed,
    }
    return partial, released.metadata


def model_partial(task: AnalysisTask, partial: dict[str, Any], min_cell: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A GLM or Cox partial, released only over enough complete rows (see the module docstring)."""
    params: GlmParams | CoxParams = (
        parse_params(GlmParams, task.params) if task.analysis == "glm" else parse_params(CoxParams, task.params)
    )
    p = len(params.names())
    minimum = max(min_cell, p + 1, params.min_rows_per_node or 0)
    n = int(partial.get("n", 0))
    if 0 < n < minimum:
        raise InputError(
            ErrorCode.DESIGN_REFUSED,
            detail="too few complete rows at this node for its disclosure policy",
            hints=[f"node rows: fewer than this node's minimum of {minimum} for a model of {p} parameters"],
        )
    metadata = {"method": "model-rules", "parameters": {"min_rows_per_node": minimum, "sums": "exact"}}
    return partial, metadata
