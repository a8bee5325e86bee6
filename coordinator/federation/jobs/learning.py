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
nodes draw their minibatch orders from it); Flower's strategies add ``server-round`` and, for FedProx,
``proximal-mu``.
"""

from __future__ import annotations

from typing import Literal

from flwr.app import ArrayRecord, ConfigRecordValues
from pydantic import Field, model_validator

from common.models import build_model
from common.models.task import TASK_KEY, LearningTask
from coordinator.federation.strategies import StrategySpec

__all__ = ["LearningSpec", "initial_arrays", "learning_config"]

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

    @model_validator(mode="after")
    def _strategy_fits(self) -> LearningSpec:
        if self.strategy.name == "cyclic" and self.fraction != 1.0:
            raise ValueError("cyclic trains one node per round; leave fraction at 1")
        return self

    def task(self) -> LearningTask:
        """The task every node receives (the spec without the coordinator's own fields)."""
        return LearningTask.model_validate(self.model_dump(include=set(_TASK_FIELDS)))


def learning_config(spec: LearningSpec, seed: int) -> dict[str, ConfigRecordValues]:
    """The ConfigRecord entries of every instruction of the job (before the strategy adds its own)."""
    return {TASK_KEY: spec.task().to_wire(), "seed": seed}


def initial_arrays(spec: LearningSpec, seed: int) -> ArrayRecord:
    """The model before round 1: the registry's model of the task, initialised from ``seed``."""
    task = spec.task()
    return ArrayRecord(build_model(task.model, **task.model_params(), seed=seed).state_dict())
