"""The node's local work of a round: minibatch updates from a data iterator that persists across rounds.

Local work is ``local_steps`` minibatch updates per round, drawn from a data iterator kept in the job's
``context.state`` (FLamby's ``DataLoaderWithMemory``): epoch ``e`` visits the training rows in the order
``randperm`` draws from a generator seeded by ``(seed, node, e)``, in batches of ``batch_size`` (the last
one smaller), and a round starts where the previous one stopped. When a round the node has trained
already is asked again (a retried attempt, or a coordinator that restarted mid-round), the iterator is
rewound to where that round started, so the answer is the same. Training uses the task's optimizer
(fresh each round: for SGD without momentum, FLamby's persistent optimizer is the same thing), the
task's loss (:func:`~node.federation.apps.learning.data.loss`), plus FedProx's ``mu/2 * ||w - w_global||^2``,
and, for Scaffold, the control-variate correction added to every gradient. A node that restarts forgets
its iterator: its next round starts at epoch 0 again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

import torch
from flwr.app import ConfigRecord, Context
from torch import nn

from common.models.task import LearningTask
from node.federation.apps.learning.data import LearningData, loss
from node.federation.apps.learning.instruction import Instruction, config_integer

__all__ = ["ITERATOR_KEY", "MinibatchIterator", "epoch_seed", "optimizer_for", "train"]

ITERATOR_KEY: Final[str] = "medfed.learning.iterator"
"""ConfigRecord in ``context.state``: the data iterator (``epoch``, ``batch``) and where the last round began."""


def epoch_seed(seed: int, node_id: int, epoch: int) -> int:
    """The seed of one node's minibatch order in one epoch: SHA-256 of the three, as a 63-bit integer."""
    digest = hashlib.sha256(f"medfed/learning/v1:{seed}:{node_id}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


class MinibatchIterator:
    """The job's minibatch iterator at this node, read from and written back to ``context.state``."""

    def __init__(self, context: Context, *, seed: int, n_rows: int, batch_size: int, server_round: int) -> None:
        self._context = context
        self._seed = seed
        self._n = n_rows
        self._batch_size = batch_size
        state = context.state.config_records.get(ITERATOR_KEY)
        epoch, batch = (0, 0) if state is None else (self._integer(state, "epoch"), self._integer(state, "batch"))
        if state is not None and self._integer(state, "round") == server_round:  # asked again: rewind
            epoch, batch = self._integer(state, "start_epoch"), self._integer(state, "start_batch")
        self.server_round = server_round
        self.start = (epoch, batch)
        self.epoch, self.batch = epoch, batch
        self._order: torch.Tensor | None = None

    @staticmethod
    def _integer(state: ConfigRecord, key: str) -> int:
        return config_integer(state, key, where=ITERATOR_KEY)

    def next_batch(self) -> torch.Tensor:
        """The row indices of the next minibatch (a new epoch, in a new order, after the last one)."""
        if self.batch * self._batch_size >= self._n:
            self.epoch, self.batch, self._order = self.epoch + 1, 0, None
        if self._order is None:
            generator = torch.Generator().manual_seed(epoch_seed(self._seed, self._context.node_id, self.epoch))
            self._order = torch.randperm(self._n, generator=generator)
        start = self.batch * self._batch_size
        self.batch += 1
        return self._order[start : start + self._batch_size]

    def save(self) -> None:
        """Write the position, and where this round began, back to the job's context."""
        self._context.state[ITERATOR_KEY] = ConfigRecord(
            {
                "epoch": self.epoch,
                "batch": self.batch,
                "round": self.server_round,
                "start_epoch": self.start[0],
                "start_batch": self.start[1],
            }
        )


def optimizer_for(task: LearningTask, model: nn.Module) -> torch.optim.Optimizer:
    """The task's optimizer over ``model``'s parameters, fresh (no state from an earlier round)."""
    if task.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=task.lr)
    return torch.optim.SGD(model.parameters(), lr=task.lr, momentum=task.momentum)


def train(
    model: nn.Module,
    data: LearningData,
    order: MinibatchIterator,
    instruction: Instruction,
    *,
    correction: Sequence[torch.Tensor] = (),
) -> float:
    """``local_steps`` minibatch updates; the mean minibatch loss (without the proximal term).

    ``correction`` (Scaffold's ``c - c_i``, one tensor per parameter in ``model.parameters()`` order) is
    added to each gradient before the step, so SGD steps ``w <- w - lr * (g - c_i + c)``.
    """
    task = instruction.task
    optimizer = optimizer_for(task, model)
    anchor = [p.detach().clone() for p in model.parameters()] if instruction.proximal_mu > 0 else []
    model.train()
    total = 0.0
    for _ in range(task.local_steps):
        rows = order.next_batch()
        optimizer.zero_grad()
        batch_loss = loss(task, model(data.x_train[rows]), data.y_train[rows])
        total += float(batch_loss.item())
        if anchor:
            distance = sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor, strict=True))
            batch_loss = batch_loss + instruction.proximal_mu / 2 * distance
        torch.autograd.backward(batch_loss)
        if correction:
            with torch.no_grad():
                for parameter, shift in zip(model.parameters(), correction, strict=True):
                    assert parameter.grad is not None
                    parameter.grad.add_(shift)
        optimizer.step()
    return total / task.local_steps
