"""A learning task as it travels to the nodes: which model learns what from which columns, and how.

A ``learning`` job sends every node the same :class:`LearningTask` in the ``config`` of each ``train`` and
``evaluate`` instruction (key :data:`TASK_KEY`, canonical JSON; the node parses it strictly and refuses a
task that differs from the one its job started with). The task names

* the **model** of the registry (``logistic_regression``, ``mlp``: a binary ``target``, positive when the
  value is above ``positive_above``; ``cox_linear``: ``event`` and ``time`` columns);
* the **inputs**: numeric ``features`` then one-hot ``categorical`` columns (declared levels, the first
  one dropped, as ``pandas.get_dummies(drop_first=True)`` does in FLamby), standardised as the task
  declares: ``none``, or ``node_train`` (each node z-scores every input with the mean and the n-1
  standard deviation of its own training rows plus 1e-9, FLamby's per-centre normalisation);
* the **split**: the node's local test split is the rows whose ``split.column`` equals ``split.test`` (the
  FLamby split column); without a split column, the last fifth of the rows;
* the **local work**: ``local_steps`` batch updates per round with ``batch_size`` rows, drawn from a data
  iterator that persists across rounds (FLamby's ``DataLoaderWithMemory``), the optimizer and its
  learning rate;
* the **privacy** the nodes apply (``docs/privacy.md``): ``privacy.dp_sgd`` (record-level DP-SGD at
  every node, its epsilon charged to the node's ledger on the account of the job's submitter and
  ``study``) and ``privacy.secure_aggregation`` (every node masks its update, so the coordinator sees
  only the sum). Both are in the task so that a node enforces them: a node never answers such a task
  with a plain update.

A refusal by a node is a Flower error reply with code :data:`LEARNING_ERROR_CODE` and the reason
``{"code", "hints"}`` of :func:`common.analytics.task.encode_refusal`: a catalog code and location-only
hints, never a value.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.analytics.cohort import ColumnName, Source
from common.errors import ErrorCode, InputError

__all__ = [
    "LEARNING_ERROR_CODE",
    "RESEARCHER_KEY",
    "STANDARDIZE_EPSILON",
    "TASK_KEY",
    "CategoricalInput",
    "DpSgd",
    "LearningPrivacy",
    "LearningTask",
    "SecureUpdates",
    "Split",
    "parse_learning_task",
]

TASK_KEY: Final[str] = "task"
"""The config entry that carries the task as JSON."""
RESEARCHER_KEY: Final[str] = "researcher"
"""The config entry naming the job's submitter, written by the coordinator: nodes charge DP-SGD to it."""
LEARNING_ERROR_CODE: Final[int] = 111
"""Flower error code of a learning task refused by a node (next to the analysis refusal's 110)."""
STANDARDIZE_EPSILON: Final[float] = 1e-9
"""Added to each standard deviation before dividing (FLamby's value): a constant column becomes 0."""

ModelName = Literal["logistic_regression", "mlp", "cox_linear"]
Level = int | str
_BINARY_MODELS = frozenset({"logistic_regression", "mlp"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoricalInput(_Model):
    """A categorical column one-hot encoded over its declared levels, without the first level."""

    column: ColumnName
    levels: tuple[Level, ...] = Field(min_length=2, max_length=1000)

    @model_validator(mode="after")
    def _distinct(self) -> CategoricalInput:
        if len(set(self.levels)) != len(self.levels):
            raise ValueError("levels must be distinct")
        return self


class Split(_Model):
    """The node's train/test split: rows whose ``column`` equals ``train`` or ``test`` (others unused)."""

    column: ColumnName
    train: str = Field(default="train", min_length=1, max_length=200)
    test: str = Field(default="test", min_length=1, max_length=200)


class DpSgd(_Model):
    """Record-level DP-SGD at every node (:mod:`common.models.dp_sgd`, accountant :mod:`common.privacy.rdp`).

    ``epsilon_budget`` is what the job may spend at each node (at ``delta``); a node refuses the round
    that would pass it, or pass its ledger's budgets. Local work is then ``local_steps`` Poisson
    minibatches of expected size ``batch_size`` per round.
    """

    noise_multiplier: float = Field(gt=0, le=100)
    max_grad_norm: float = Field(gt=0, le=1e6)
    delta: float = Field(gt=0, lt=1)
    epsilon_budget: float = Field(gt=0, le=1e6)


class SecureUpdates(_Model):
    """Secure aggregation of model updates (:mod:`common.privacy.secure_updates`).

    Each coordinate of a node's update (its model minus the global model) is clipped to
    ``[-clip_range, clip_range]`` and rounded to ``bits`` bits before masking.
    """

    clip_range: float = Field(gt=0, le=1e6)
    bits: int = Field(default=16, ge=8, le=24)


class LearningPrivacy(_Model):
    """The privacy every node of a learning job applies (each option off by default)."""

    dp_sgd: DpSgd | None = None
    secure_aggregation: SecureUpdates | None = None


class LearningTask(_Model):
    """What every node of a learning job trains and evaluates (see the module docstring)."""

    model: ModelName
    hidden: tuple[Annotated[int, Field(ge=1, le=4096)], ...] | None = Field(default=None, max_length=8)
    source: Source
    features: tuple[ColumnName, ...] = Field(default=(), max_length=10_000)
    categorical: tuple[CategoricalInput, ...] = Field(default=(), max_length=1000)
    target: ColumnName | None = None
    positive_above: float = 0.0
    event: ColumnName | None = None
    time: ColumnName | None = None
    split: Split | None = None
    standardize: Literal["none", "node_train"] = "none"
    local_steps: int = Field(default=100, ge=1, le=1_000_000)
    batch_size: int = Field(default=32, ge=1, le=100_000)
    lr: float = Field(default=0.01, gt=0, le=100)
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = Field(default=0.0, ge=0, lt=1)
    study: str | None = Field(default=None, min_length=1, max_length=200)
    privacy: LearningPrivacy | None = None

    @model_validator(mode="after")
    def _coherent(self) -> LearningTask:
        inputs = list(self.features) + [c.column for c in self.categorical]
        if not inputs:
            raise ValueError("name at least one feature or categorical column")
        outcome = [c for c in (self.target, self.event, self.time) if c is not None]
        if len(set(inputs + outcome)) != len(inputs) + len(outcome):
            raise ValueError("input and outcome columns must be distinct")
        if self.split is not None and self.split.column in inputs + outcome:
            raise ValueError("the split column cannot be an input or the outcome")
        if self.model in _BINARY_MODELS and (self.target is None or self.event is not None or self.time is not None):
            raise ValueError(f"{self.model} needs target (and no event or time)")
        if self.model == "cox_linear" and (self.event is None or self.time is None or self.target is not None):
            raise ValueError("cox_linear needs event and time (and no target)")
        if self.hidden is not None and self.model != "mlp":
            raise ValueError("hidden applies to the mlp only")
        if self.momentum and self.optimizer != "sgd":
            raise ValueError("momentum applies to sgd only")
        if self.dp_sgd is not None and self.study is None:
            raise ValueError("privacy.dp_sgd needs a study (whose epsilon budget the nodes charge)")
        if self.dp_sgd is not None and self.survival:
            raise ValueError("privacy.dp_sgd clips per row: the Cox loss couples the rows of a batch")
        return self

    @property
    def dp_sgd(self) -> DpSgd | None:
        """The task's DP-SGD settings, or None."""
        return None if self.privacy is None else self.privacy.dp_sgd

    @property
    def secure_updates(self) -> SecureUpdates | None:
        """The task's secure-aggregation settings, or None."""
        return None if self.privacy is None else self.privacy.secure_aggregation

    @property
    def in_features(self) -> int:
        """The model's input width: the features, then each categorical column's levels but the first."""
        return len(self.features) + sum(len(c.levels) - 1 for c in self.categorical)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The model's inputs in order: ``features``, then ``column=level`` for each kept level."""
        dummies = [f"{c.column}={level}" for c in self.categorical for level in c.levels[1:]]
        return (*self.features, *dummies)

    @property
    def survival(self) -> bool:
        """True for a survival model (event and time), False for a binary outcome."""
        return self.model == "cox_linear"

    def model_params(self) -> dict[str, object]:
        """The registry parameters of the task's model, without the seed."""
        params: dict[str, object] = {"in_features": self.in_features}
        if self.model == "mlp":
            params["hidden"] = self.hidden or (64, 64)
        return params

    def to_wire(self) -> str:
        """The task as canonical JSON (field order fixed by this model; ``study`` and ``privacy`` only when set,
        so a task without them keeps the digest it had before they existed)."""
        unset = {name for name in ("study", "privacy") if getattr(self, name) is None}
        return self.model_dump_json(exclude=unset or None)

    def digest(self) -> str:
        """SHA-256 of :meth:`to_wire`: equal digests mean the same task."""
        return hashlib.sha256(self.to_wire().encode()).hexdigest()


def parse_learning_task(value: str | dict[str, object]) -> LearningTask:
    """The task from its JSON text or mapping; InputError ``invalid_learning_task`` with field locations only."""
    try:
        if isinstance(value, str):
            return LearningTask.model_validate_json(value)
        return LearningTask.model_validate(value)
    except ValidationError as exc:
        hints = [
            ".".join(str(part) for part in err["loc"]) + f": {err['type']}" for err in exc.errors(include_input=False)
        ]
        raise InputError(ErrorCode.INVALID_LEARNING_TASK, detail="invalid learning task", hints=hints[:20]) from None
