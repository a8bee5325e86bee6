"""What a strategy carries from one round to the next, as JSON the round driver saves after every round.

The driver (:mod:`coordinator.federation.driver`) puts :func:`strategy_state` into the job's saved state
(``DriverState.strategy``, stored by the runner with ``jobs.save_job_state``) and hands it back through
:func:`load_strategy_state` on resume, and before retrying an abandoned attempt. Arrays travel as base64
of the model-bytes format (:func:`common.models.checkpoints.encode_tensors`: exact, no pickle), so a
resumed job continues bit for bit: FedOpt's moments, Cyclic's order and models, Scaffold's server control
variate and the rounds it took from each node, the wrappers' counters and keys.
"""

from __future__ import annotations

import base64
from typing import Any

from flwr.serverapp.strategy import FedAdagrad, FedAdam, FedYogi, Strategy

from common.models.checkpoints import decode_tensors, encode_tensors
from coordinator.federation.strategies.central_dp import CentralDp
from coordinator.federation.strategies.cyclic import Cyclic, FlambyCyclic
from coordinator.federation.strategies.fedopt import Arrays
from coordinator.federation.strategies.scaffold import Scaffold
from coordinator.federation.strategies.secure import SecureAggregation

__all__ = ["load_strategy_state", "strategy_state"]


def _pack(arrays: Arrays | None) -> str | None:
    return None if not arrays else base64.b64encode(encode_tensors(arrays)).decode("ascii")


def _unpack(text: str | None) -> Arrays | None:
    return None if text is None else dict(decode_tensors(base64.b64decode(text)))


def strategy_state(strategy: Strategy) -> dict[str, Any]:
    """What ``strategy`` carries from one round to the next, JSON-ready (arrays as base64 model bytes)."""
    if isinstance(strategy, CentralDp):
        return {"central_dp_releases": strategy.releases, "inner": strategy_state(strategy.strategy)}
    if isinstance(strategy, SecureAggregation):
        keys = {str(node_id): base64.b64encode(key).decode("ascii") for node_id, key in sorted(strategy.keys.items())}
        return {"secure_keys": keys, "inner": strategy_state(strategy.strategy)}
    if isinstance(strategy, FlambyCyclic):
        models = {str(node_id): _pack(arrays) for node_id, arrays in sorted(strategy.models.items())}
        return {
            "order": list(strategy.order),
            "position": strategy.position,
            "initial": _pack(strategy.initial),
            "models": models,
        }
    if isinstance(strategy, Cyclic):
        return {"order": list(strategy.order), "position": strategy.position}
    if isinstance(strategy, Scaffold):
        applied = {str(node_id): server_round for node_id, server_round in sorted(strategy.applied.items())}
        return {"control": _pack(strategy.control), "applied": applied}
    if isinstance(strategy, FedAdam | FedYogi | FedAdagrad):  # FedOpt: the moments
        return {"m_t": _pack(strategy.m_t), "v_t": _pack(strategy.v_t)}
    return {}


def load_strategy_state(strategy: Strategy, state: dict[str, Any]) -> None:
    """Put back what :func:`strategy_state` returned (an empty mapping: the strategy's initial state)."""
    if isinstance(strategy, CentralDp):
        strategy.releases = int(state.get("central_dp_releases", 0))
        load_strategy_state(strategy.strategy, state.get("inner", {}))
        return
    if isinstance(strategy, SecureAggregation):
        keys = state.get("secure_keys", {})
        strategy.keys = {int(node_id): base64.b64decode(text) for node_id, text in keys.items()}
        load_strategy_state(strategy.strategy, state.get("inner", {}))
        return
    if isinstance(strategy, Cyclic):
        strategy.order = [int(node_id) for node_id in state.get("order", [])]
        strategy.position = int(state.get("position", 0))
    if isinstance(strategy, FlambyCyclic):
        strategy.initial = _unpack(state.get("initial"))
        strategy.models = {
            int(node_id): arrays
            for node_id, packed in state.get("models", {}).items()
            if (arrays := _unpack(packed)) is not None
        }
    elif isinstance(strategy, Scaffold):
        strategy.control = _unpack(state.get("control"))
        strategy.applied = {
            int(node_id): int(server_round) for node_id, server_round in state.get("applied", {}).items()
        }
    elif isinstance(strategy, FedAdam | FedYogi | FedAdagrad):
        strategy.m_t = _unpack(state.get("m_t"))
        strategy.v_t = _unpack(state.get("v_t"))
