"""Run an analysis over in-memory node tables, the way the federated job runs it.

For tests, benchmarks and the SDK's local mode. Everything that would cross the network crosses a JSON
encoding here too (``allow_nan=False``): parameters, every request, every partial and the coordinator
state between rounds. So a partial that is not plain JSON, or a state that does not survive being
persisted, fails here as it would in the round driver.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel

from common.analytics.registry import ANALYSES, OneShot
from common.errors import ErrorCode, InputError, InternalError

__all__ = ["run_local"]


def _wire(value: BaseModel | Mapping[str, Any]) -> Any:
    payload = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return json.loads(json.dumps(payload, allow_nan=False))


def run_local(
    name: str,
    params: BaseModel | Mapping[str, Any],
    frames: Sequence[pd.DataFrame],
    *,
    max_rounds: int = 1000,
) -> BaseModel:
    """The result of analysis ``name`` over ``frames`` (one per node, in node order)."""
    analysis = ANALYSES.get(name)
    if analysis is None:
        raise InputError(ErrorCode.INVALID_ANALYSIS, detail="unknown analysis", hints=["analysis: unknown name"])
    wire_params = _wire(params)
    if isinstance(analysis, OneShot):
        return analysis.merge(wire_params, [_wire(analysis.partial(frame, wire_params)) for frame in frames])
    state, request = analysis.start(wire_params)
    for _ in range(max_rounds):
        wire_request = _wire(request)
        partials = [_wire(analysis.answer(frame, wire_params, wire_request)) for frame in frames]
        state = analysis.state.model_validate_json(json.dumps(_wire(state), allow_nan=False))
        state, outcome = analysis.step(wire_params, state, partials)
        if isinstance(outcome, analysis.result):
            return outcome
        request = outcome
    raise InternalError(ErrorCode.INTERNAL, detail=f"{name} did not finish within {max_rounds} rounds")
