"""The job's rows at this node: loaded and prepared once, pinned in the job's context, and its model.

On the job's first message the node loads the task's source once (``load_source``), prepares its train
and test rows (:func:`common.models.features.prepare`: columns, one-hot levels, the split,
standardisation) and keeps them in the job's ``context.state`` with the task digest and the data
snapshot id. A later message with another task is refused, and so is data that changed under the job
(a node that restarted and reloads its source finds another snapshot): a job trains on one snapshot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message
from torch import nn

from common.errors import ConflictError
from common.models import build_model
from common.models.features import prepare
from common.models.losses import binary_cross_entropy_loss, cox_partial_likelihood_loss
from common.models.task import LearningTask
from node.federation.apps.learning.instruction import ARRAYS_KEY
from node.federation.sources import SourceLoader

__all__ = ["DATA_KEY", "PIN_KEY", "LearningData", "global_model", "loss", "pinned_data"]

_log = logging.getLogger(__name__)

PIN_KEY: Final[str] = "medfed.learning.pin"
"""ConfigRecord in ``context.state``: the job's task digest and data snapshot id."""
DATA_KEY: Final[str] = "medfed.learning.data"
"""ArrayRecord in ``context.state``: the prepared train and test rows."""


@dataclass(frozen=True, slots=True)
class LearningData:
    """The job's prepared rows at this node, as tensors."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def pinned_data(load_source: SourceLoader, task: LearningTask, context: Context) -> LearningData:
    """The job's prepared rows: loaded and prepared on the first message, kept in the job's context."""
    pin = context.state.config_records.get(PIN_KEY)
    if pin is not None and pin.get("task") != task.digest():
        raise ConflictError(detail="another task than the job's first", hints=["config.task: changed during the job"])
    if pin is None or DATA_KEY not in context.state.array_records:
        loaded = load_source(task.source)
        if pin is not None and pin.get("snapshot") != loaded.snapshot:
            raise ConflictError(detail="the data changed during the job", hints=["source: changed since round 1"])
        prepared = prepare(loaded.frame, task)
        context.state[DATA_KEY] = ArrayRecord(
            {
                "x_train": Array(prepared.train.x),
                "y_train": Array(prepared.train.y),
                "x_test": Array(prepared.test.x),
                "y_test": Array(prepared.test.y),
            }
        )
        context.state[PIN_KEY] = ConfigRecord({"task": task.digest(), "snapshot": loaded.snapshot})
        _log.info("learning data prepared: %d train, %d test rows", len(prepared.train), len(prepared.test))
    record = context.state.array_records[DATA_KEY]
    x_train, y_train, x_test, y_test = (
        torch.from_numpy(record[key].numpy()) for key in ("x_train", "y_train", "x_test", "y_test")
    )
    return LearningData(x_train, y_train, x_test, y_test)


def global_model(message: Message, task: LearningTask) -> nn.Module:
    """The registry's model of the task with the instruction's weights."""
    # seed=0: a throw-away initialisation that stays off torch's global RNG; the weights are replaced next.
    model = build_model(task.model, **task.model_params(), seed=0)
    model.load_state_dict(message.content.array_records[ARRAYS_KEY].to_torch_state_dict())
    return model


def loss(task: LearningTask, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """FLamby's Cox loss on the minibatch for a Cox model, binary cross-entropy otherwise."""
    if task.survival:
        return cox_partial_likelihood_loss(scores, y[:, 0], y[:, 1])
    return binary_cross_entropy_loss(scores, y)
