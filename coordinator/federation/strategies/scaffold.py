"""SCAFFOLD as FLamby runs it (``strategy: {name: scaffold, flavour: flamby}``), a subclass of Flower's FedAvg.

SCAFFOLD (Karimireddy et al., 2020, option II) keeps a server control variate c here and a control
variate c_i at every node (in the node's job context, :mod:`node.federation.apps.learning.scaffold`).
Each round, the sampled nodes S receive x and c (:data:`~common.models.scaffold.SCAFFOLD_CONTROL`), take
K corrected steps ``y <- y - lr * (g - c_i + c)``, and answer y and ``delta c_i = -c + (x - y) / (K * lr)``
(:data:`~common.models.scaffold.SCAFFOLD_DELTA`). The server then sets

    x <- x + server_lr * sum_j w_j (y_j - x)        c <- c + (|S| / N) * sum_j w_j delta c_j

with ``w_j = n_j / sum_S n`` (the nodes' training rows, Flower's ``num-examples``) and N the number of
nodes of the job that hold a control variate (those that trained at least once, this round's included).

**Why sample weights for c as well.** FLamby's ``flamby/strategies/scaffold.py`` is the "efficient"
form for full participation: each client keeps its last model q_i and a correction C_i, and each round
does ``C_i <- C_i + (x - q_i) / (server_lr * lr * K)`` before K steps of ``g - C_i``, with x updated by the
sample-weighted mean update. Working it through, ``C_i = c_i - c`` round after round *if and only if* c's
mean is weighted the way x's is (the paper's uniform mean gives another c as soon as the nodes differ in
size). With every node in every round (|S| = N, FLamby's assumption), this strategy's rounds are FLamby's
rounds; ``tests/unit/test_learning_scaffold.py`` checks both forms against each other on numbers. FLamby's
default server learning rate, 1, is the default here; its runs use client SGD without momentum, which
:class:`~coordinator.federation.jobs.learning.LearningSpec` requires of a Scaffold job.

A node that has never trained is not yet counted in N: its c_i is 0 until it joins (the paper counts it
from the start, which only matters when the first rounds sample a fraction of the nodes).

**Abandoned attempts.** A node advances c_i when it trains, but the round driver may abandon the attempt
(quorum, deadline) and retry the round without that node, so c would never include its delta c_i. The
train config therefore carries, per node holding a control variate, the last round whose delta c_i was
aggregated (:data:`~common.models.scaffold.SCAFFOLD_NODES` / :data:`~common.models.scaffold.SCAFFOLD_ROUNDS`);
a node whose last trained round is not that round starts from its c_i from before it, as if the abandoned
training had not happened. So c stays the weighted mean of the c_i it was told about.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from numpy.typing import NDArray

from common.models.scaffold import SCAFFOLD_CONTROL, SCAFFOLD_DELTA, SCAFFOLD_NODES, SCAFFOLD_ROUNDS
from coordinator.federation.strategies.central_dp import METRICS, WEIGHT
from coordinator.federation.strategies.fedopt import Arrays

__all__ = ["Scaffold"]

_ARRAYS = "arrays"


class Scaffold(FedAvg):
    """SCAFFOLD's server: the global model and the server control variate c (see the module)."""

    def __init__(self, *, server_lr: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.server_lr = server_lr
        self.control: Arrays | None = None  # c; None: zero (no round aggregated yet)
        self.applied: dict[int, int] = {}  # node -> last round its delta c_i was aggregated; N = len(applied)
        self.current_arrays: Arrays | None = None  # x, as sent in the round being aggregated

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's instructions, with the server control variate c next to the global model and, in the
        config, the rounds whose control changes were aggregated (see the module)."""
        self.current_arrays = {key: np.array(array.numpy(), copy=True) for key, array in arrays.items()}
        config[SCAFFOLD_NODES] = sorted(self.applied)
        config[SCAFFOLD_ROUNDS] = [self.applied[node_id] for node_id in sorted(self.applied)]
        control = self.control or {key: np.zeros_like(value) for key, value in self.current_arrays.items()}
        record = ArrayRecord({key: Array(np.array(value, copy=True)) for key, value in control.items()})
        messages = list(super().configure_train(server_round, arrays, config, grid))
        for message in messages:  # Flower's messages share one RecordDict; setting it twice is harmless
            message.content[SCAFFOLD_CONTROL] = record
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """``x + server_lr * (weighted mean - x)`` and ``c + |S|/N * weighted mean delta c``; None when a
        reply is not a Scaffold reply (the attempt then fails and is retried)."""
        current = self.current_arrays
        valid = [reply for reply in replies if not reply.has_error()]
        if current is None or not valid:
            return None, None
        models, deltas, weights = [], [], []
        for reply in valid:
            delta = reply.content.array_records.get(SCAFFOLD_DELTA)
            model = reply.content.array_records.get(_ARRAYS)
            metrics = reply.content.metric_records.get(METRICS)
            weight = None if metrics is None else metrics.get(WEIGHT)
            if delta is None or model is None or metrics is None or not isinstance(weight, int | float):
                return None, None
            if {key: tuple(value.shape) for key, value in delta.items()} != {
                key: tuple(value.shape) for key, value in current.items()
            }:
                return None, None
            models.append(Message(RecordDict({_ARRAYS: model, METRICS: metrics}), 0, MessageType.TRAIN))
            deltas.append({key: value.numpy().astype(np.float64) for key, value in delta.items()})
            weights.append(float(weight))
        averaged, metrics_out = super().aggregate_train(server_round, models)
        total = sum(weights)
        if averaged is None or total <= 0:
            return None, None
        shares = [weight / total for weight in weights]
        updated = {key: _toward(x, averaged[key].numpy(), self.server_lr) for key, x in current.items()}
        applied = {**self.applied, **{reply.metadata.src_node_id: server_round for reply in valid}}
        scale = len(valid) / len(applied)
        control = self.control or {key: np.zeros_like(value) for key, value in current.items()}
        self.control = {
            key: (
                value.astype(np.float64)
                + scale * sum(share * delta[key] for share, delta in zip(shares, deltas, strict=True))
            ).astype(value.dtype)
            for key, value in control.items()
        }
        self.applied = applied
        return ArrayRecord({key: Array(value) for key, value in updated.items()}), metrics_out


def _toward(x: NDArray[Any], mean: NDArray[Any], server_lr: float) -> NDArray[Any]:
    """``x + server_lr * (mean - x)`` in float64, in ``x``'s dtype (``mean`` itself when server_lr is 1)."""
    step: NDArray[np.float64] = x.astype(np.float64) + server_lr * (mean.astype(np.float64) - x)
    return step.astype(x.dtype)
