"""Evaluation of the global model on this node's local test split (the coordinator holds no data).

The metrics are ``eval_loss`` and ``num-examples`` (the test rows), and ``eval_acc`` for binary models
(accuracy at probability 0.5) or ``eval_cindex`` for Cox models (Harrell's C of ``-risk``, as FLamby
scores it; ``eval_cindex_pairs`` is its number of admissible pairs, and with none it is reported as 0.5).
"""

from __future__ import annotations

import torch
from flwr.app import MetricRecordValues
from torch import nn

from common.models.metrics import admissible_pairs, binary_accuracy, risk_concordance_index
from common.models.task import LearningTask
from node.federation.apps.learning.data import LearningData, loss

__all__ = ["evaluate"]


def evaluate(model: nn.Module, data: LearningData, task: LearningTask) -> dict[str, MetricRecordValues]:
    """The model's metrics on the test rows (see the module)."""
    model.eval()
    with torch.no_grad():
        scores = model(data.x_test).reshape(-1)
        test_loss = float(loss(task, scores, data.y_test).item())
    metrics: dict[str, MetricRecordValues] = {"eval_loss": test_loss, "num-examples": int(data.x_test.shape[0])}
    if not task.survival:
        metrics["eval_acc"] = binary_accuracy(scores.numpy(), data.y_test.numpy())
        return metrics
    times, events = data.y_test[:, 1].numpy(), data.y_test[:, 0].numpy()
    pairs = admissible_pairs(times, events)
    metrics["eval_cindex_pairs"] = pairs
    metrics["eval_cindex"] = risk_concordance_index(times, scores.numpy(), events) if pairs else 0.5
    return metrics
