"""A small multi-layer perceptron for tabular features (ReLU between layers, raw logits out)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """``in_features -> hidden... -> out_features`` with ReLU; ``seed`` makes the initial weights reproducible.

    With a ``seed`` the weights come from a private ``torch.Generator`` (the same values PyTorch's default
    initialisation would draw), so building a model never touches the process-global RNG and two jobs
    building models in two threads cannot disturb each other.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (64, 64),
        out_features: int = 1,
        *,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1 or any(width < 1 for width in hidden):
            raise ValueError("layer widths must be positive")

        def linear(fan_in: int, fan_out: int) -> nn.Linear:
            # With a seed, skip nn.Linear's own initialisation (it draws from the global RNG).
            if seed is None:
                return nn.Linear(fan_in, fan_out)
            return nn.Linear(fan_in, fan_out, device="meta").to_empty(device="cpu")

        layers: list[nn.Module] = []
        width = in_features
        for next_width in hidden:
            layers += [linear(width, next_width), nn.ReLU()]
            width = next_width
        layers.append(linear(width, out_features))
        self.net = nn.Sequential(*layers)
        if seed is not None:
            self.reset_parameters(torch.Generator().manual_seed(seed))

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-draw every weight and bias from ``generator`` with ``nn.Linear``'s default distributions."""
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                    bound = 1 / math.sqrt(layer.in_features)
                    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(batch, out_features)``."""
        out: torch.Tensor = self.net(x)
        return out
