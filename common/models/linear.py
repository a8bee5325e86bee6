"""Linear models of the registry: logistic regression (binary outcome) and a linear Cox model (survival).

Both are one ``nn.Linear(in_features, 1)`` under the name ``linear`` (so a state dict reads
``linear.weight``, ``linear.bias``), and both return the raw linear predictor:

* :class:`LogisticRegression` returns logits; the probability is ``sigmoid(logit)`` and the loss is
  binary cross-entropy on logits (FLamby's Fed-Heart-Disease baseline is the same model with the sigmoid
  inside it and ``BCELoss`` outside: the same function, computed more stably here);
* :class:`CoxLinear` returns the log relative risk ``x·β + b``; the bias cancels in the partial likelihood
  (see :func:`common.models.losses.cox_partial_likelihood_loss`) and is kept only so that the parameter
  layout matches FLamby's Fed-TCGA-BRCA baseline.

With a ``seed``, the initial weights are drawn from a private ``torch.Generator`` with ``nn.Linear``'s own
distributions (weight first, then bias), so building a model never touches the process-global RNG; the
values equal what ``torch.manual_seed(seed)`` followed by ``nn.Linear(...)`` draws.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["CoxLinear", "LogisticRegression", "init_linear", "new_linear"]


def init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    """Re-draw ``layer``'s weight and bias from ``generator`` with ``nn.Linear``'s default distributions."""
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        if layer.bias is not None:
            bound = 1 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def new_linear(fan_in: int, fan_out: int, seed: int | None) -> nn.Linear:
    """An ``nn.Linear``; with a seed, initialised from a private generator (never the global RNG)."""
    if seed is None:
        return nn.Linear(fan_in, fan_out)
    layer = nn.Linear(fan_in, fan_out, device="meta").to_empty(device="cpu")
    init_linear(layer, torch.Generator().manual_seed(seed))
    return layer


class _LinearPredictor(nn.Module):
    def __init__(self, in_features: int, *, seed: int | None = None) -> None:
        super().__init__()
        if in_features < 1:
            raise ValueError("in_features must be positive")
        self.linear = new_linear(in_features, 1, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The linear predictor, shape ``(batch, 1)``."""
        out: torch.Tensor = self.linear(x)
        return out


class LogisticRegression(_LinearPredictor):
    """``logit = x·w + b`` for a binary outcome (FLamby Fed-Heart-Disease's baseline model)."""


class CoxLinear(_LinearPredictor):
    """``log relative risk = x·β + b`` for a Cox proportional-hazards model (FLamby Fed-TCGA-BRCA's baseline)."""
