"""Secure aggregation of model updates around a Message-API strategy: the coordinator sees only a sum.

The nodes' updates arrive masked (:mod:`common.privacy.secure_updates`) and the coordinator sees only
their weighted sum. Keys travel with the evaluate phase: every available node evaluates each round and
answers a fresh public round key, and the next round's train instructions carry the participants' keys
and a fresh nonce. Round 1 has no keys yet: it is the key step (nothing is trained; the nodes evaluate
the initial model), so training starts in round 2. A participant that does not answer fails the attempt
(its masks cannot be removed without it); the driver retries the round once with a new nonce. The
wrapped strategy then steps from the weighted mean update as if one node had sent it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    MetricRecordValues,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from numpy.typing import NDArray

from common.errors import MedfedError
from common.models.task import SecureUpdates
from common.privacy.secure_sum import MaskedVector, SecureSumRound, aggregate
from common.privacy.secure_updates import (
    PUBLIC_KEY,
    SECAGG_KEYS,
    SECAGG_NODES,
    SECAGG_NONCE,
    SECAGG_PUBLISH,
    SECAGG_RECORD,
    SECAGG_SETUP,
    decode_sum,
    participant_name,
    update_round,
)
from coordinator.federation.strategies.central_dp import METRICS, WEIGHT

__all__ = ["SecureAggregation"]


@dataclass(frozen=True, slots=True)
class _PendingRound:
    """What the coordinator needs to read the masked sum of one train instruction."""

    secure_round: SecureSumRound | None  # None: the key step
    current: dict[str, NDArray[Any]]


class SecureAggregation(Strategy):
    """The nodes' updates arrive masked; the wrapped strategy steps from their weighted mean (see the module)."""

    def __init__(self, strategy: Strategy, settings: SecureUpdates) -> None:
        super().__init__()
        self.strategy = strategy
        self.settings = settings
        self.keys: dict[int, bytes] = {}
        self.clipped = 0
        self._pending: _PendingRound | None = None

    def summary(self) -> None:
        """The wrapped strategy's summary."""
        self.strategy.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The wrapped strategy's instructions, with the participants' keys and a fresh nonce (or the key step)."""
        current = {name: np.array(array.numpy(), copy=True) for name, array in arrays.items()}
        participants = sorted(node_id for node_id in grid.get_node_ids() if node_id in self.keys)
        if not self.keys:
            config[SECAGG_SETUP] = True
            self._pending = _PendingRound(None, current)
        else:
            nonce = secrets.token_hex(16)
            config[SECAGG_NONCE] = nonce
            config[SECAGG_NODES] = participants
            config[SECAGG_KEYS] = [self.keys[node_id] for node_id in participants]
            size = sum(int(value.size) for value in current.values())
            secure_round = (
                update_round(
                    run_id=grid.run.run_id,
                    nonce=nonce,
                    server_round=server_round,
                    participants=participants,
                    parameters=size,
                    bits=self.settings.bits,
                )
                if len(participants) >= 2
                else None
            )
            self._pending = _PendingRound(secure_round, current) if secure_round is not None else None
        return self.strategy.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The weighted mean update from the exact sum of the masked vectors; None when anyone is missing."""
        pending, replies = self._pending, list(replies)
        if pending is None:
            return None, None  # fewer than two participants: a sum would reveal an update
        if pending.secure_round is None:  # the key step: the model stays as it was
            record = ArrayRecord({name: Array(value) for name, value in pending.current.items()})
            return record, MetricRecord({"secagg-setup": 1})
        secure_round = pending.secure_round
        vectors, losses = [], []
        for reply in replies:
            masked = reply.content.array_records.get(SECAGG_RECORD)
            if masked is None or "masked" not in masked:
                return None, None
            name = participant_name(reply.metadata.src_node_id)
            vectors.append(MaskedVector(name, secure_round.digest, secure_round.modulus_bits, masked["masked"].numpy()))
            loss = reply.content.metric_records.get(METRICS, MetricRecord()).get("train_loss")
            if isinstance(loss, float):
                losses.append(loss)
        try:
            total = aggregate(secure_round, vectors)
        except MedfedError:
            return None, None  # a participant missing (or a vector that is not the round's): the attempt fails
        shapes = [tuple(value.shape) for value in pending.current.values()]
        decoded = decode_sum(total, shapes=shapes, clip_range=self.settings.clip_range, bits=self.settings.bits)
        self.clipped += decoded.clipped
        mean = {
            name: (value.astype(np.float64) + update).astype(value.dtype)
            for (name, value), update in zip(pending.current.items(), decoded.mean_update, strict=True)
        }
        metrics: dict[str, MetricRecordValues] = {WEIGHT: decoded.total_weight}
        if losses:
            metrics["train_loss"] = float(np.mean(losses))
        content = RecordDict(
            {"arrays": ArrayRecord({k: Array(v) for k, v in mean.items()}), METRICS: MetricRecord(metrics)}
        )
        arrays, aggregated = self.strategy.aggregate_train(
            server_round, [Message(content=content, dst_node_id=0, message_type=MessageType.TRAIN)]
        )
        aggregated = aggregated if aggregated is not None else MetricRecord()
        aggregated["secagg_participants"] = len(vectors)
        aggregated["secagg_clipped"] = decoded.clipped
        return arrays, aggregated

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The wrapped strategy's instructions, asking every node for a fresh public round key."""
        config[SECAGG_PUBLISH] = True
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def evaluate_targets(self, trained: Sequence[int], available: Sequence[int]) -> list[int]:
        """Every available node evaluates (and so has a key for the next round)."""
        return sorted(set(available) | set(trained))

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Keep the nodes' new public keys for the next round; the wrapped strategy aggregates the metrics."""
        replies = list(replies)
        keys: dict[int, bytes] = {}
        for reply in replies:
            record = reply.content.config_records.get(SECAGG_RECORD)
            key = None if record is None else record.get(PUBLIC_KEY)
            if isinstance(key, bytes):
                keys[reply.metadata.src_node_id] = key
        self.keys = keys
        return self.strategy.aggregate_evaluate(server_round, replies)
