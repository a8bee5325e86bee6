"""Record-level DP-SGD for the registry's binary models: Poisson minibatches, per-example clipping, noise.

One step (Abadi et al. 2016): every training row joins the minibatch independently with probability
``q = batch_size / n`` (Poisson sampling, the sampling the accountant in :mod:`common.privacy.rdp`
assumes: a fixed-size shuffled batch would need another analysis); the gradient of each row's loss is
clipped to L2 norm ``max_grad_norm`` over all parameters together; the clipped gradients are summed,
Gaussian noise of standard deviation ``noise_multiplier * max_grad_norm`` is added to every coordinate,
and the sum is divided by the *expected* batch size ``q * n`` (dividing by the realised size would make
the divisor depend on the data). The optimizer then steps with that gradient: anything after the noise
is post-processing, so SGD with momentum, Adam and FedProx's proximal term (which depends on the
models only) keep the guarantee.

Per-example gradients come from ``torch.func`` (``vmap`` of ``grad`` over a functional call of the
model), one batched pass; measured on a logistic regression with 13 inputs and batches of 64 it is
several times faster than one backward pass per row (numbers in ``docs/privacy.md``).

Only losses that are a mean of per-row terms are clipped this way: binary cross-entropy. The Cox
partial likelihood couples every row of the batch through its risk sets, so clipping per row does not
bound one patient's influence; DP-SGD refuses survival models (:class:`~common.models.task.DpSgd`).

Both random draws (the batch and the noise) come from a ``torch.Generator`` the caller seeds from a
secret of the node: the coordinator, which knows the job's seed, must predict neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

__all__ = ["DpStepResult", "PrivateWork", "binary_row_loss", "dp_sgd_gradients", "poisson_batch", "private_steps"]

RowLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""The loss of one row: ``(model output for one row, that row's label) -> scalar``."""


@dataclass(frozen=True, slots=True)
class DpStepResult:
    """What one private step used: the realised batch size and how many rows had their gradient clipped."""

    batch_rows: int
    clipped_rows: int
    loss: float


@dataclass(frozen=True, slots=True)
class PrivateWork:
    """One round of private local work: the steps taken, the rows drawn in all, the rows clipped."""

    steps: int
    rows: int
    clipped_rows: int


def binary_row_loss(logit: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of one row on its logit (the per-row term of the binary models' mean loss)."""
    return nn.functional.binary_cross_entropy_with_logits(logit, label)


def poisson_batch(n_rows: int, q: float, generator: torch.Generator) -> torch.Tensor:
    """The row indices of one Poisson minibatch: each of ``n_rows`` joins with probability ``q``."""
    return torch.nonzero(torch.rand(n_rows, generator=generator) < q).reshape(-1)


def _per_example_gradients(
    model: nn.Module, loss_of_row: RowLoss, x: torch.Tensor, y: torch.Tensor
) -> dict[str, torch.Tensor]:
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def row_loss(p: dict[str, torch.Tensor], row: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        output = functional_call(model, (p, buffers), (row.unsqueeze(0),))
        return loss_of_row(output.reshape(-1)[0], label)

    per_row: dict[str, torch.Tensor] = vmap(grad(row_loss), in_dims=(None, 0, 0))(params, x, y)
    return per_row


def dp_sgd_gradients(
    model: nn.Module,
    loss_of_row: RowLoss,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    expected_batch: float,
    max_grad_norm: float,
    noise_multiplier: float,
    generator: torch.Generator,
) -> DpStepResult:
    """Set every parameter's ``.grad`` to the private gradient of the batch ``(x, y)``; see the module docstring.

    An empty batch is a valid draw of Poisson sampling: the gradient is then noise alone.
    """
    named = dict(model.named_parameters())
    if x.shape[0]:
        per_row = _per_example_gradients(model, loss_of_row, x, y)
        flat = torch.cat([g.reshape(x.shape[0], -1) for g in per_row.values()], dim=1)
        norms = flat.norm(dim=1)
        scale = (max_grad_norm / (norms + 1e-12)).clamp(max=1.0)
        summed = {name: torch.einsum("b,b...->...", scale, g) for name, g in per_row.items()}
        clipped = int((norms > max_grad_norm).sum())
        with torch.no_grad():
            loss = float(vmap(loss_of_row)(model(x).reshape(-1), y).mean())
    else:
        summed = {name: torch.zeros_like(p) for name, p in named.items()}
        clipped, loss = 0, 0.0
    std = noise_multiplier * max_grad_norm
    for name, parameter in named.items():
        noise = torch.normal(0.0, std, size=parameter.shape, generator=generator, dtype=parameter.dtype)
        parameter.grad = (summed[name] + noise) / expected_batch
    return DpStepResult(int(x.shape[0]), clipped, loss)


def private_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    q: float,
    max_grad_norm: float,
    noise_multiplier: float,
    generator: torch.Generator,
    proximal_mu: float = 0.0,
    anchor: list[torch.Tensor] | None = None,
) -> PrivateWork:
    """``steps`` DP-SGD updates of ``model`` on ``(x, y)`` with a binary outcome; FedProx's term after the noise."""
    n = int(x.shape[0])
    rows = clipped = 0
    model.train()
    for _ in range(steps):
        batch = poisson_batch(n, q, generator)
        optimizer.zero_grad()
        result = dp_sgd_gradients(
            model,
            binary_row_loss,
            x[batch],
            y[batch].reshape(-1),
            expected_batch=q * n,
            max_grad_norm=max_grad_norm,
            noise_multiplier=noise_multiplier,
            generator=generator,
        )
        if proximal_mu and anchor is not None:  # depends on the models only: post-processing
            with torch.no_grad():
                for parameter, start in zip(model.parameters(), anchor, strict=True):
                    assert parameter.grad is not None
                    parameter.grad += proximal_mu * (parameter - start)
        optimizer.step()
        rows += result.batch_rows
        clipped += result.clipped_rows
    return PrivateWork(steps, rows, clipped)
