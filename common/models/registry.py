"""Model names to constructors; a node builds only models registered here (never code from the network)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from torch import nn

from common.models.linear import CoxLinear, LogisticRegression
from common.models.mlp import MLP

__all__ = ["build_model", "model_names"]

_REGISTRY: Final[dict[str, Callable[..., nn.Module]]] = {
    "mlp": MLP,
    "logistic_regression": LogisticRegression,
    "cox_linear": CoxLinear,
}


def model_names() -> tuple[str, ...]:
    """The names :func:`build_model` accepts, sorted."""
    return tuple(sorted(_REGISTRY))


def build_model(name: str, **params: Any) -> nn.Module:
    """Build the registered model ``name`` with ``params``; raise ``KeyError`` for an unknown name."""
    try:
        constructor = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(model_names())}") from None
    return constructor(**params)
