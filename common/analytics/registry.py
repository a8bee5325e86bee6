"""Every built-in analysis by name: its parameter model and its node and coordinator functions.

Two shapes. A **one-shot** analysis is one round: each node runs ``partial(frame, params)``, the
coordinator runs ``merge(params, partials)``. An **iterative** one is a small state machine on the
coordinator: ``start(params) -> (state, request)``; each node runs ``answer(frame, params, request)``;
``step(params, state, partials) -> (state, request | result)`` until a result comes out. Requests,
partials and states are JSON-shaped (pydantic models or plain dicts), so a round driver can persist the
state and resume; partials are passed in node order. The coordinator never sees rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pydantic import BaseModel

from common.analytics.count import CountParams, count_partial, merge_counts
from common.analytics.cox import CoxParams, CoxResult, CoxState, answer_cox, start_cox, step_cox
from common.analytics.crosstab import CrosstabParams, crosstab_partial, merge_crosstabs
from common.analytics.distinct import DistinctCountParams, distinct_partial, merge_distinct
from common.analytics.glm import GlmParams, GlmResult, GlmState, answer_glm, start_glm, step_glm
from common.analytics.histogram import HistogramParams, histogram_partial, merge_histograms
from common.analytics.kaplan_meier import KaplanMeierParams, kaplan_meier_partial, merge_kaplan_meier
from common.analytics.moments import MomentsParams, merge_moments, moments_partial
from common.analytics.quantiles import (
    QuantileParams,
    QuantileResult,
    QuantileState,
    answer_quantiles,
    start_quantiles,
    step_quantiles,
)

__all__ = ["ANALYSES", "Iterative", "OneShot"]

Partials = Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class OneShot:
    """An analysis of one round."""

    params: type[BaseModel]
    partial: Callable[[pd.DataFrame, Any], dict[str, Any]]
    merge: Callable[[Any, Partials], BaseModel]


@dataclass(frozen=True, slots=True)
class Iterative:
    """An analysis of several rounds, driven by the coordinator's state machine."""

    params: type[BaseModel]
    start: Callable[[Any], tuple[Any, BaseModel]]
    answer: Callable[[pd.DataFrame, Any, Any], dict[str, Any]]
    step: Callable[[Any, Any, Partials], tuple[Any, BaseModel]]
    state: type[BaseModel]
    result: type[BaseModel]


ANALYSES: Mapping[str, OneShot | Iterative] = {
    "count": OneShot(CountParams, count_partial, merge_counts),
    "histogram": OneShot(HistogramParams, histogram_partial, merge_histograms),
    "moments": OneShot(MomentsParams, moments_partial, merge_moments),
    "crosstab": OneShot(CrosstabParams, crosstab_partial, merge_crosstabs),
    # Answered by each node from its store and linkage key, under secure aggregation (see its module).
    "distinct_count": OneShot(DistinctCountParams, distinct_partial, merge_distinct),
    "kaplan_meier": OneShot(KaplanMeierParams, kaplan_meier_partial, merge_kaplan_meier),
    "quantiles": Iterative(
        QuantileParams, start_quantiles, answer_quantiles, step_quantiles, QuantileState, QuantileResult
    ),
    "glm": Iterative(GlmParams, start_glm, answer_glm, step_glm, GlmState, GlmResult),
    "cox": Iterative(CoxParams, start_cox, answer_cox, step_cox, CoxState, CoxResult),
}
