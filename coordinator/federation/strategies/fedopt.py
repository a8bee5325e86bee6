"""FLamby's FedOpt variants (``flavour: flamby``) as subclasses of Flower's FedAdam, FedYogi and FedAdagrad.

Read in owkin/FLamby ``flamby/strategies/fed_opt.py``. With Δ the sample-weighted mean of the nodes'
updates and x the global model, every FedOpt variant does ``m = β1·m + (1-β1)·Δ`` and
``x ← x + η·m / (√v + τ)`` (Flower's shared ``_compute_deltat_and_mt``), and:

============  ==========================================  =============================================
strategy      Flower 1.42                                 FLamby (``flavour: flamby``)
============  ==========================================  =============================================
FedAdam       v = β2·v + (1-β2)·Δ²; η bias-corrected:      v = β2·v + (1-β2)·Δ²; plain η (no bias
              η·√(1-β2^(t+1)) / (1-β1^(t+1))               correction)
FedYogi       v = v - (1-β2)·Δ²·sign(v-Δ²)                 the same (written out here so that a Flower
                                                           change cannot alter the reproduction)
FedAdagrad    v = v + Δ²; no momentum (β1 forced to 0)     v = v + Δ²; momentum β1 (0.9 by default)
============  ==========================================  =============================================

FLamby's published runs used τ = 1e-8, β1 = 0.9, β2 = 0.999 and server learning rates per dataset; those
are the ``flamby`` defaults (:data:`~coordinator.federation.strategies.spec.FLAMBY_DEFAULTS`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAdagrad, FedAdam, FedAvg, FedYogi
from numpy.typing import NDArray

__all__ = ["Arrays", "FlambyFedAdagrad", "FlambyFedAdam", "FlambyFedYogi"]

Arrays = dict[str, NDArray[Any]]


class _FlambyFedOpt:
    """FLamby's server step, shared by its three FedOpt variants; mixed into Flower's FedOpt subclasses."""

    current_arrays: Arrays | None
    v_t: Arrays | None
    eta: float
    tau: float

    def _flamby_step(
        self,
        server_round: int,
        replies: Iterable[Message],
        second_moment: Callable[[NDArray[Any], NDArray[Any]], NDArray[Any]],
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Weighted mean (FedAvg), then ``x + eta * m / (sqrt(v) + tau)`` with ``v = second_moment(v, delta)``."""
        averaged, metrics = FedAvg.aggregate_train(cast(FedAvg, self), server_round, replies)
        if averaged is None or self.current_arrays is None:
            return averaged, metrics
        delta, momentum, _ = cast(Any, self)._compute_deltat_and_mt(averaged)
        if not self.v_t:
            self.v_t = {key: np.zeros_like(value) for key, value in delta.items()}
        self.v_t = {key: second_moment(self.v_t[key], delta[key]) for key in delta}
        updated = {
            key: x + self.eta * momentum[key] / (np.sqrt(self.v_t[key]) + self.tau)
            for key, x in self.current_arrays.items()
        }
        return ArrayRecord({key: Array(np.asarray(value)) for key, value in updated.items()}), metrics


class FlambyFedAdam(_FlambyFedOpt, FedAdam):
    """FedAdam as FLamby defines it: ``v = β2·v + (1-β2)·Δ²`` and no bias correction of η."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """One FLamby FedAdam step."""
        beta_2 = self.beta_2
        return self._flamby_step(server_round, replies, lambda v, d: beta_2 * v + (1 - beta_2) * d * d)


class FlambyFedYogi(_FlambyFedOpt, FedYogi):
    """FedYogi as FLamby defines it: ``v = v - (1-β2)·Δ²·sign(v - Δ²)``, no bias correction."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """One FLamby FedYogi step."""
        beta_2 = self.beta_2
        return self._flamby_step(server_round, replies, lambda v, d: v - (1 - beta_2) * d * d * np.sign(v - d * d))


class FlambyFedAdagrad(_FlambyFedOpt, FedAdagrad):
    """FedAdagrad as FLamby defines it: ``v = v + Δ²`` with momentum ``β1`` on Δ (Flower forces β1 = 0)."""

    def __init__(self, *, beta_1: float = 0.9, beta_2: float | None = None, **kwargs: Any) -> None:
        """``beta_2`` is accepted for a uniform FedOpt signature and unused: Adagrad sums the squares."""
        super().__init__(**kwargs)
        self.beta_1 = beta_1

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """One FLamby FedAdagrad step."""
        return self._flamby_step(server_round, replies, lambda v, d: v + d * d)
