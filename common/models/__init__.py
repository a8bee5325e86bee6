"""The torch model registry both sides build from, byte for byte: a job names a model and its parameters.

Public API: :func:`build_model` and :func:`model_names` (from :mod:`common.models.registry`) and the
model classes themselves (:class:`~common.models.mlp.MLP`).
"""

from __future__ import annotations

from common.models.mlp import MLP
from common.models.registry import build_model, model_names

__all__ = ["MLP", "build_model", "model_names"]
