"""DP-SGD's private gradient: per-example clipping, the noise's scale, Poisson batches."""

from __future__ import annotations

import pytest
import torch

from common.models import build_model
from common.models.dp_sgd import binary_row_loss, dp_sgd_gradients, poisson_batch


def _data(rows: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(rows, 4, generator=generator) * 3
    y = (torch.rand(rows, generator=generator) > 0.5).float()
    return x, y


def _clipped_sum_by_hand(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bound: float) -> list[torch.Tensor]:
    """One backward pass per row, each row's gradient scaled to norm at most ``bound``, summed."""
    total = [torch.zeros_like(p) for p in model.parameters()]
    for row in range(x.shape[0]):
        model.zero_grad()
        torch.autograd.backward(binary_row_loss(model(x[row : row + 1]).reshape(-1)[0], y[row]))
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        norm = torch.cat([g.reshape(-1) for g in grads]).norm()
        scale = min(1.0, bound / float(norm))
        total = [t + g * scale for t, g in zip(total, grads, strict=True)]
    return total


def test_without_noise_the_gradient_is_the_sum_of_per_row_gradients_clipped_to_the_bound_over_the_batch() -> None:
    """With noise multiplier 0 the private gradient equals, by hand, sum(clip(g_i, C)) / expected batch;
    rows whose gradient norm passed C are counted as clipped."""
    model = build_model("logistic_regression", in_features=4, seed=1)
    x, y = _data()
    bound = 0.5
    want = _clipped_sum_by_hand(model, x, y, bound)
    result = dp_sgd_gradients(
        model,
        binary_row_loss,
        x,
        y,
        expected_batch=8.0,
        max_grad_norm=bound,
        noise_multiplier=0.0,
        generator=torch.Generator().manual_seed(0),
    )
    for parameter, expected in zip(model.parameters(), want, strict=True):
        assert parameter.grad is not None
        torch.testing.assert_close(parameter.grad, expected / 8.0, rtol=1e-5, atol=1e-6)
    assert result.batch_rows == 12
    assert 0 < result.clipped_rows <= 12


def test_the_noise_has_standard_deviation_noise_multiplier_times_the_bound_over_the_expected_batch() -> None:
    """An empty batch leaves the noise alone: over many coordinates its spread is sigma * C / batch."""
    model = torch.nn.Linear(20_000, 1)
    empty = torch.zeros((0, 20_000)), torch.zeros(0)
    dp_sgd_gradients(
        model,
        binary_row_loss,
        *empty,
        expected_batch=4.0,
        max_grad_norm=2.0,
        noise_multiplier=1.5,
        generator=torch.Generator().manual_seed(5),
    )
    assert model.weight.grad is not None
    assert float(model.weight.grad.std()) == pytest.approx(1.5 * 2.0 / 4.0, rel=0.03)


def test_poisson_batches_take_each_row_independently_at_the_rate() -> None:
    """Over 200 draws of 500 rows at q = 0.1 the mean batch is 50 rows and batch sizes vary."""
    generator = torch.Generator().manual_seed(9)
    sizes = [int(poisson_batch(500, 0.1, generator).numel()) for _ in range(200)]
    assert sum(sizes) / len(sizes) == pytest.approx(50, rel=0.05)
    assert len(set(sizes)) > 5
