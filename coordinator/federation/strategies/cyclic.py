"""Cyclic weight transfer, and FLamby's ``Cyclic`` as its code behaves.

:class:`Cyclic`: one node trains per round, in an order drawn afresh (from the job's seeded RNG) at the
start of every cycle through the nodes; the global model is that node's model. FLamby's ``Cyclic`` class
returns, as the benchmark's model, the model of its *first* client, which its code never passes the
other clients' weights (``flamby/strategies/cyclic.py``: each client's ``_Model`` is a deep copy trained
only on its own data). That is client 0's local model, not cyclic weight transfer. medfed's Cyclic
transfers the weights as the strategy is described; ``flavour: flamby`` (:class:`FlambyCyclic`, with
``reference_node`` naming FLamby's client 0) reproduces FLamby's code.

The round driver asks a strategy with a ``sample_train`` method to pick the round's nodes, and one with
``evaluate_targets`` which nodes evaluate; both hooks are the driver's, not Flower's.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from coordinator.federation.strategies.fedopt import Arrays

__all__ = ["Cyclic", "FlambyCyclic"]


class Cyclic(FedAvg):
    """Cyclic weight transfer: one node per round, a fresh order of the nodes at every cycle (see module)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.order: list[int] = []
        self.position = 0

    def sample_train(self, available: Sequence[int], rng: random.Random) -> list[int]:
        """The next node of the cycle that is available; a new cycle (order drawn from ``rng``) when needed."""
        online = set(available)
        while True:
            while self.position < len(self.order):
                node_id = self.order[self.position]
                self.position += 1
                if node_id in online:
                    return [node_id]
            if not online:
                return []
            nodes = sorted(online)
            self.order, self.position = rng.sample(nodes, len(nodes)), 0

    def evaluate_targets(self, trained: Sequence[int], available: Sequence[int]) -> list[int]:
        """Every available node evaluates the model the round's one node trained."""
        return sorted(set(available) | set(trained))


class FlambyCyclic(Cyclic):
    """FLamby's ``Cyclic`` as its code behaves: no weight transfer (see the module docstring).

    The nodes are visited as by :class:`Cyclic`, but each node trains its *own* model, which starts as the
    job's initial model and is kept here between its turns; the job's model (evaluated by every node,
    saved, exported) is the model of ``reference_node``, FLamby's client 0. Kept for reproducing FLamby's
    published Cyclic numbers, which are those of one centre's model trained on that centre alone.
    """

    def __init__(self, *, reference_node: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reference_node = reference_node
        self.initial: Arrays | None = None
        self.models: dict[int, Arrays] = {}

    def _record(self, arrays: Arrays) -> ArrayRecord:
        return ArrayRecord({key: Array(np.array(value, copy=True)) for key, value in arrays.items()})

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send the round's one node its own model (the initial model on its first turn)."""
        if self.initial is None:
            self.initial = {key: np.array(array.numpy(), copy=True) for key, array in arrays.items()}
        (node_id,) = grid.get_node_ids()
        own = self.models.get(node_id, self.initial)
        return super().configure_train(server_round, self._record(own), config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Keep the node's new model as its own; the job's model is the reference node's."""
        replies = list(replies)
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is None or self.initial is None:
            return arrays, metrics
        trained = next(reply for reply in replies if not reply.has_error()).metadata.src_node_id
        self.models[trained] = {key: np.array(array.numpy(), copy=True) for key, array in arrays.items()}
        return self._record(self.models.get(self.reference_node, self.initial)), metrics
