"""The torch model registry both sides build from, byte for byte: a job names a model and its parameters.

Public API: :func:`build_model` and :func:`model_names` (from :mod:`common.models.registry`) and the
model classes themselves (:class:`~common.models.mlp.MLP`, :class:`~common.models.linear.LogisticRegression`,
:class:`~common.models.linear.CoxLinear`). Next to them: their losses (:mod:`common.models.losses`),
metrics (:mod:`common.models.metrics`), the learning task a job sends to nodes (:mod:`common.models.task`),
its input preparation (:mod:`common.models.features`), record-level DP-SGD (:mod:`common.models.dp_sgd`)
and the one checkpoint module (:mod:`common.models.checkpoints`).
"""

from __future__ import annotations

from common.models.linear import CoxLinear, LogisticRegression
from common.models.mlp import MLP
from common.models.registry import build_model, model_names

__all__ = ["MLP", "CoxLinear", "LogisticRegression", "build_model", "model_names"]
