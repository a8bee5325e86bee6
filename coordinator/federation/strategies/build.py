"""From a job's :class:`~coordinator.federation.strategies.spec.StrategySpec` to a Flower strategy object.

Every strategy is built with Flower's own sampling switched off (fractions 1, minimums 1): the round
driver samples the nodes, enforces the quorum and shows the strategy only the sampled nodes. The job's
privacy wrappers go around the plain strategy: :class:`CentralDp` or :class:`SecureAggregation` (the job
spec refuses both at once, and either with a strategy they cannot wrap).
"""

from __future__ import annotations

from typing import Any

from flwr.serverapp.strategy import FedAdagrad, FedAdam, FedAvg, FedProx, FedYogi, Strategy

from coordinator.federation.strategies.central_dp import CentralDp
from coordinator.federation.strategies.cyclic import Cyclic, FlambyCyclic
from coordinator.federation.strategies.fedopt import FlambyFedAdagrad, FlambyFedAdam, FlambyFedYogi
from coordinator.federation.strategies.scaffold import Scaffold
from coordinator.federation.strategies.secure import SecureAggregation
from coordinator.federation.strategies.spec import StrategySpec

__all__ = ["build_strategy"]

# The round driver samples and enforces the quorum; no other minimum means anything here.
_DRIVER_OWNS_SAMPLING: dict[str, Any] = {
    "fraction_train": 1.0,
    "fraction_evaluate": 1.0,
    "min_train_nodes": 1,
    "min_evaluate_nodes": 1,
    "min_available_nodes": 1,
}


def build_strategy(spec: StrategySpec, *, client_lr: float) -> Strategy:
    """The strategy ``spec`` names, configured so that the round driver owns sampling and quorum,
    inside the job's privacy wrappers when it has any."""
    strategy = _plain_strategy(spec, client_lr=client_lr)
    if spec.central_dp is not None:
        return CentralDp(strategy, spec.central_dp)
    if spec.secure_updates is not None:
        return SecureAggregation(strategy, spec.secure_updates)
    return strategy


def _plain_strategy(spec: StrategySpec, *, client_lr: float) -> Strategy:
    if spec.name == "fedavg":
        return FedAvg(**_DRIVER_OWNS_SAMPLING)
    if spec.name == "fedprox":
        return FedProx(**_DRIVER_OWNS_SAMPLING, proximal_mu=spec.proximal_mu)
    if spec.name == "scaffold":
        return Scaffold(**_DRIVER_OWNS_SAMPLING, server_lr=1.0 if spec.server_lr is None else spec.server_lr)
    if spec.name == "cyclic" and spec.reference_node is not None:
        return FlambyCyclic(**_DRIVER_OWNS_SAMPLING, reference_node=spec.reference_node)
    if spec.name == "cyclic":
        return Cyclic(**_DRIVER_OWNS_SAMPLING)
    settings = {**_DRIVER_OWNS_SAMPLING, **spec.fedopt_settings(), "eta_l": client_lr}
    if spec.flavour == "flamby":
        classes: dict[str, type[Strategy]] = {
            "fedadam": FlambyFedAdam,
            "fedyogi": FlambyFedYogi,
            "fedadagrad": FlambyFedAdagrad,
        }
    else:
        classes = {"fedadam": FedAdam, "fedyogi": FedYogi, "fedadagrad": FedAdagrad}
        if spec.name == "fedadagrad":
            settings.pop("beta_1", None)
            settings.pop("beta_2", None)
    return classes[spec.name](**settings)
