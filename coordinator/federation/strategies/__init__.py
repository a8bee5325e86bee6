"""The strategies a learning job may name: Flower's own, FLamby's variants, Cyclic, Scaffold, and privacy wrappers.

``flavour: flower`` (the default) runs Flower's classes unchanged (``flwr.serverapp.strategy.FedAvg``,
``FedProx``, ``FedAdam``, ``FedYogi``, ``FedAdagrad``). ``flavour: flamby`` reproduces FLamby's
definitions (owkin/FLamby ``flamby/strategies/``) as subclasses of Flower's classes. FedAvg and FedProx
are the same in both (FedProx's proximal term mu/2·‖w - w_global‖² is added by the node to its minibatch
loss; Flower's ``FedProx`` sends ``proximal-mu`` in the train config). One module per family:

* :mod:`.spec`: :class:`StrategySpec`, what a job says (validated: no hyper-parameter of another strategy);
* :mod:`.fedopt`: FLamby's FedAdam, FedYogi, FedAdagrad (no bias correction, Adagrad with momentum);
* :mod:`.cyclic`: :class:`Cyclic` (weight transfer) and :class:`FlambyCyclic` (FLamby's code: no transfer);
* :mod:`.scaffold`: :class:`Scaffold`, SCAFFOLD as FLamby runs it (flavour flamby only: Flower has none);
* :mod:`.central_dp`: :class:`CentralDp`, client-level DP at the coordinator (FedAvg, FedProx only);
* :mod:`.secure`: :class:`SecureAggregation`, masked updates the coordinator only sees the sum of;
* :mod:`.build`: :func:`build_strategy`, the spec to an object inside its wrappers;
* :mod:`.state`: :func:`strategy_state` / :func:`load_strategy_state`, what resumes bit for bit.

The round driver (:mod:`coordinator.federation.driver`) samples nodes, enforces the quorum and calls a
strategy's ``configure_train``/``configure_evaluate`` (over a view of the Grid that holds only the sampled
nodes) and ``aggregate_train``/``aggregate_evaluate``.
"""

from __future__ import annotations

from coordinator.federation.strategies.build import build_strategy
from coordinator.federation.strategies.central_dp import CentralDp, CentralDpSettings
from coordinator.federation.strategies.cyclic import Cyclic, FlambyCyclic
from coordinator.federation.strategies.fedopt import FlambyFedAdagrad, FlambyFedAdam, FlambyFedYogi
from coordinator.federation.strategies.scaffold import Scaffold
from coordinator.federation.strategies.secure import SecureAggregation
from coordinator.federation.strategies.spec import StrategySpec
from coordinator.federation.strategies.state import load_strategy_state, strategy_state

__all__ = [
    "CentralDp",
    "CentralDpSettings",
    "Cyclic",
    "FlambyCyclic",
    "FlambyFedAdagrad",
    "FlambyFedAdam",
    "FlambyFedYogi",
    "Scaffold",
    "SecureAggregation",
    "StrategySpec",
    "build_strategy",
    "load_strategy_state",
    "strategy_state",
]
