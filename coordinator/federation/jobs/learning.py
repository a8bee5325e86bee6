"""The coordinator side of ``learning`` jobs: the spec, the task every node receives, the first model.

A learning job is a :class:`~common.models.task.LearningTask` (the model, the columns, the local work:
what every node is told) plus what only the coordinator acts on: the strategy and its hyper-parameters
(:mod:`coordinator.federation.strategies`), the number of rounds, the share of nodes sampled per round,
the quorum and the round deadline. The round driver (:mod:`coordinator.federation.driver`) runs it.

An example (FLamby's Fed-Heart-Disease, FedAdam as FLamby defines it)::

    kind: learning
    model: logistic_regression
    source: {dataset: heart}
    features: [age, sex, trestbps, chol, fbs, thalach, exang, oldpeak]
    categorical: [{column: cp, levels: [1, 2, 3, 4]}, {column: restecg, levels: [0, 1, 2]}]
    target: num
    split: {column: split}
    standardize: node_train
    local_steps: 100
    batch_size: 4
    lr: 0.01
    strategy: {name: fedadam, flavour: flamby, server_lr: 0.01}
    rounds: 15
    quorum: 4

The instruction config carries ``task`` (the task's canonical JSON) and ``seed`` (the job's seed: the
nodes draw their minibatch orders from it), and ``researcher`` (the job's submitter, to whom nodes
charge DP-SGD) when the runner attached it (:meth:`LearningSpec.for_submitter`); Flower's strategies add
``server-round`` and, for FedProx, ``proximal-mu``.

**Privacy** (``docs/privacy.md``): ``study`` and ``privacy.dp_sgd`` (record-level DP-SGD at the nodes,
charged to their ledgers) and ``privacy.secure_aggregation`` (masked updates) are part of the task the
nodes enforce; ``central_dp`` (client-level DP added by the coordinator, never charged to a node) is
the coordinator's alone. Central DP and secure aggregation exclude each other (the coordinator must
see each update to clip it), and neither runs with Cyclic (one update per round). Scaffold runs with
none of them: a node's control-variate change is as revealing as its update and would travel unmasked
and without noise (and central DP accepts FedAvg and FedProx only). The job's privacy figures for its
result are :func:`privacy_report`.
"""

from __future__ import annotations

from typing import Any, Literal

from flwr.app import ArrayRecord, ConfigRecordValues
from pydantic import Field, PrivateAttr, model_validator

from common.models import build_model
from common.models.task import RESEARCHER_KEY, TASK_KEY, LearningTask
from coordinator.federation.strategies import CentralDpSettings, StrategySpec

__all__ = ["LearningSpec", "initial_arrays", "learning_config", "privacy_report"]

_TASK_FIELDS = frozenset(LearningTask.model_fields)


class LearningSpec(LearningTask):
    """A federated learning job: the task every node trains on, and the strategy and rounds around it."""

    kind: Literal["learning"] = "learning"
    app: Literal["learning"] = "learning"
    message_types: tuple[Literal["train"], Literal["evaluate"]] = ("train", "evaluate")
    round_timeout_s: float = Field(default=60.0, gt=0, le=3600, description="How long one round may take.")
    strategy: StrategySpec = Field(default_factory=StrategySpec)
    rounds: int = Field(default=10, ge=1, le=10_000)
    fraction: float = Field(default=1.0, gt=0, le=1, description="Share of eligible nodes sampled per round.")
    quorum: int = Field(default=1, ge=1, le=10_000, description="Fewest valid replies a round aggregates.")
    central_dp: CentralDpSettings | None = None
    _researcher: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _strategy_fits(self) -> LearningSpec:
        if self.strategy.name == "cyclic" and self.fraction != 1.0:
            raise ValueError("cyclic trains one node per round; leave fraction at 1")
        secure = self.secure_updates
        if self.central_dp is not None and secure is not None:
            raise ValueError("central_dp clips each update at the coordinator: not with secure aggregation")
        if self.central_dp is not None and self.strategy.name not in ("fedavg", "fedprox"):
            raise ValueError("central_dp is accounted for a (uniform) mean: fedavg or fedprox only")
        if secure is not None and (self.strategy.name == "cyclic" or self.quorum < 2):
            raise ValueError("secure aggregation sums two or more updates: not cyclic, and quorum at least 2")
        if self.strategy.name == "scaffold":
            self._scaffold_fits()
        if self.central_dp is not None or secure is not None:
            # The driver builds the strategy from ``strategy`` alone: it carries the wrappers (not a field).
            object.__setattr__(self, "strategy", self.strategy.with_privacy(self.central_dp, secure))
        return self

    def _scaffold_fits(self) -> None:
        """Scaffold's control update assumes plain SGD steps, and its control variates travel in the clear."""
        if self.optimizer != "sgd" or self.momentum:
            raise ValueError("scaffold corrects plain SGD steps: optimizer sgd without momentum")
        if self.secure_updates is not None or self.dp_sgd is not None:
            raise ValueError(
                "scaffold is not available with secure aggregation or DP-SGD: each node's control variate "
                "would leave it unmasked and without noise"
            )

    def for_submitter(self, researcher: str) -> LearningSpec:
        """This spec for a job submitted by ``researcher``: its instructions name them (nodes charge DP-SGD to them)."""
        copy = self.model_copy()
        copy._researcher = researcher
        return copy

    @property
    def researcher(self) -> str | None:
        """The job's submitter, when the runner attached it."""
        return self._researcher

    def task(self) -> LearningTask:
        """The task every node receives (the spec without the coordinator's own fields)."""
        return LearningTask.model_validate(self.model_dump(include=set(_TASK_FIELDS)))


def learning_config(spec: LearningSpec, seed: int) -> dict[str, ConfigRecordValues]:
    """The ConfigRecord entries of every instruction of the job (before the strategy adds its own)."""
    config: dict[str, ConfigRecordValues] = {TASK_KEY: spec.task().to_wire(), "seed": seed}
    if spec.researcher is not None:
        config[RESEARCHER_KEY] = spec.researcher
    return config


def privacy_report(spec: LearningSpec, rounds: int) -> dict[str, Any]:
    """The job's privacy, labelled by level, for its result (``rounds``: the rounds that were aggregated).

    ``record_level``: DP-SGD's settings; each node's epsilon is in its replies (``dp_epsilon``) and its
    ledger. ``client_level``: central DP's (epsilon, delta) over the rounds, computed by the coordinator
    and charged to no node. ``secure_aggregation``: the clip range and bits the updates were masked at.
    """
    report: dict[str, Any] = {}
    dp = spec.dp_sgd
    if dp is not None:
        report["record_level"] = {"mechanism": "dp-sgd", "accountant": "rdp", **dp.model_dump(mode="json")}
    if spec.central_dp is not None:
        report["client_level"] = {
            "mechanism": "gaussian, server-side fixed clipping",
            "epsilon": spec.central_dp.epsilon(rounds),
            "delta": spec.central_dp.delta,
            "rounds": rounds,
            "amplification": "none",
            **spec.central_dp.model_dump(mode="json", exclude={"delta"}),
        }
    if spec.secure_updates is not None:
        report["secure_aggregation"] = spec.secure_updates.model_dump(mode="json")
    return report


def initial_arrays(spec: LearningSpec, seed: int) -> ArrayRecord:
    """The model before round 1: the registry's model of the task, initialised from ``seed``."""
    task = spec.task()
    return ArrayRecord(build_model(task.model, **task.model_params(), seed=seed).state_dict())
