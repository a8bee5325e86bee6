"""What a learning job says about its strategy: :class:`StrategySpec`, validated before anything runs.

The spec is part of the job's (signed) document, so it only names installed strategies and their
hyper-parameters; :func:`coordinator.federation.strategies.build.build_strategy` turns it into an object.
A hyper-parameter that the named strategy does not have is a validation error rather than a silent no-op,
so a researcher never believes a setting was applied when it was not.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from common.models.task import SecureUpdates
from coordinator.federation.strategies.central_dp import CentralDpSettings

__all__ = ["FEDOPT", "FLAMBY_DEFAULTS", "StrategyName", "StrategySpec"]

StrategyName = Literal["fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad", "cyclic", "scaffold"]
FEDOPT = frozenset({"fedadam", "fedyogi", "fedadagrad"})
FLAMBY_DEFAULTS: dict[str, float] = {"server_lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "tau": 1e-8}
"""The settings of FLamby's published FedOpt runs (the seed CSVs: tau 1e-8, beta1 0.9, beta2 0.999)."""


class StrategySpec(BaseModel):
    """The strategy of a learning job and its hyper-parameters (``None``: the flavour's default).

    The job's privacy wrappers (its ``central_dp`` and ``privacy.secure_aggregation``) are attached by
    :class:`~coordinator.federation.jobs.learning.LearningSpec` (:meth:`with_privacy`), so that
    :func:`~coordinator.federation.strategies.build_strategy` sees them; they are not part of the
    strategy's own fields.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    _central_dp: CentralDpSettings | None = PrivateAttr(default=None)
    _secure_updates: SecureUpdates | None = PrivateAttr(default=None)

    name: StrategyName = "fedavg"
    flavour: Literal["flower", "flamby"] = "flower"
    server_lr: float | None = Field(default=None, gt=0, le=100, description="FedOpt's eta; Scaffold's server lr.")
    beta1: float | None = Field(default=None, ge=0, lt=1)
    beta2: float | None = Field(default=None, ge=0, lt=1)
    tau: float | None = Field(default=None, gt=0, le=1)
    proximal_mu: float = Field(default=0.0, ge=0, le=1000, description="FedProx's mu.")
    reference_node: int | None = Field(
        default=None,
        ge=2,
        lt=2**63,
        description="Cyclic, flavour flamby: the node (Flower id) whose model is the job's.",
    )

    @model_validator(mode="after")
    def _coherent(self) -> StrategySpec:
        if self.name not in FEDOPT and any(value is not None for value in (self.beta1, self.beta2, self.tau)):
            raise ValueError("beta1, beta2 and tau apply to fedadam, fedyogi and fedadagrad only")
        if self.server_lr is not None and self.name not in FEDOPT | {"scaffold"}:
            raise ValueError("server_lr applies to fedadam, fedyogi, fedadagrad and scaffold only")
        if self.proximal_mu and self.name != "fedprox":
            raise ValueError("proximal_mu applies to fedprox only")
        if self.name == "fedadagrad" and self.flavour == "flower" and self.beta1 not in (None, 0.0):
            raise ValueError("Flower's FedAdagrad has no momentum; use flavour flamby for beta1")
        if self.name == "scaffold" and self.flavour != "flamby":
            raise ValueError("Flower 1.42 has no Scaffold: name flavour flamby (FLamby's Scaffold)")
        if (self.reference_node is not None) != (self.name == "cyclic" and self.flavour == "flamby"):
            raise ValueError("reference_node is required by cyclic with flavour flamby, and by nothing else")
        return self

    def with_privacy(self, central_dp: CentralDpSettings | None, secure_updates: SecureUpdates | None) -> StrategySpec:
        """A copy of this spec that builds its strategy inside the job's privacy wrappers."""
        copy = self.model_copy()
        copy._central_dp = central_dp
        copy._secure_updates = secure_updates
        return copy

    @property
    def central_dp(self) -> CentralDpSettings | None:
        """The job's central DP, attached by :meth:`with_privacy`."""
        return self._central_dp

    @property
    def secure_updates(self) -> SecureUpdates | None:
        """The job's secure aggregation, attached by :meth:`with_privacy`."""
        return self._secure_updates

    def fedopt_settings(self) -> dict[str, float]:
        """``eta``, ``beta_1``, ``beta_2``, ``tau`` as given, else the flavour's defaults (Flower's: omitted)."""
        given = {"eta": self.server_lr, "beta_1": self.beta1, "beta_2": self.beta2, "tau": self.tau}
        if self.flavour == "flamby":
            defaults = dict(zip(("eta", "beta_1", "beta_2", "tau"), FLAMBY_DEFAULTS.values(), strict=True))
            return {key: defaults[key] if value is None else value for key, value in given.items()}
        return {key: value for key, value in given.items() if value is not None}
