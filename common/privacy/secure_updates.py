"""Secure aggregation of model updates: what a node masks and how the coordinator reads the sum.

A learning job with ``privacy.secure_aggregation`` has every node send its update masked with the
pairwise masks of :mod:`common.privacy.secure_sum` (X25519 round keys, SHAKE-256 masks mod ``2**k``),
so the coordinator learns the sample-weighted *sum* of the updates and nothing about any one of them.

**The vector.** A node's update is its trained model minus the global model it was sent, flattened in
the state dict's order. Each coordinate is clipped to ``[-R, R]`` (``clip_range``) and rounded to the
nearest of ``2**b`` levels (``bits``): ``level = round((u + R) / (2R) * (2**b - 1))``. FedAvg weights a
node by its training rows ``n``, so the node sends ``n * level`` for every coordinate, then ``n`` itself,
then the number of coordinates it had to clip: ``d + 2`` non-negative integers. The coordinator adds the
masked vectors mod ``2**k`` and gets ``sum(n_i * level_i)``, ``sum(n_i)`` and the total clip count; the
weighted mean level over ``sum(n_i)``, mapped back, is the weighted mean update within half a level
(``R / (2**b - 1)``) per coordinate of the plain FedAvg mean of the clipped updates. Rounding is
deterministic, so a resumed job aggregates bit for bit what an uninterrupted one did (stochastic
rounding would be unbiased, but at 16 bits the bias is below a part in 10^5 of ``R``).

**Sizes.** ``n`` must be below ``2**32``; ``max_total = participants * (2**32 - 1) * (2**b - 1)``
declares the largest possible total, and ``k`` is the smallest modulus above it (so with ``b <= 24`` and
up to 256 participants, ``k <= 64``). A node's values never exceed ``(2**32 - 1) * (2**b - 1)``.

**Binding.** The round (:class:`~common.privacy.secure_sum.SecureSumRound`) is named
``learning:<run id>:<nonce>``: the coordinator draws a fresh random nonce for every train instruction it
configures, so a retried attempt of a round uses independent masks, and a node masks at most one
vector per nonce (a second update under the same masks would reveal the difference of the two).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.errors import ErrorCode, InputError
from common.privacy.secure_sum import SecureSumRound, modulus_bits_for

__all__ = [
    "MAX_WEIGHT",
    "PUBLIC_KEY",
    "SECAGG_KEYS",
    "SECAGG_NODES",
    "SECAGG_NONCE",
    "SECAGG_PUBLISH",
    "SECAGG_RECORD",
    "SECAGG_SETUP",
    "DecodedSum",
    "decode_sum",
    "encode_update",
    "participant_name",
    "update_round",
]

MAX_WEIGHT = 2**32 - 1
"""The largest training-row count a node may weigh its update with."""

# The instruction config entries of the protocol (written by the coordinator's strategy, read by nodes).
SECAGG_PUBLISH = "secagg-publish"
"""evaluate: make a fresh round key and answer its public half (ConfigRecord ``secagg``, ``PUBLIC_KEY``)."""
SECAGG_SETUP = "secagg-setup"
"""train: no keys are known yet; answer without training (the job's first round is its key step)."""
SECAGG_NONCE = "secagg-nonce"
"""train: the instruction's fresh nonce (hex), which binds the masks."""
SECAGG_NODES = "secagg-nodes"
"""train: the participants' node ids, ascending."""
SECAGG_KEYS = "secagg-keys"
"""train: the participants' public round keys (raw X25519), in the order of ``SECAGG_NODES``."""
PUBLIC_KEY = "public-key"
"""The entry of a node's ``secagg`` ConfigRecord (evaluate reply) that holds its public round key."""
SECAGG_RECORD = "secagg"
"""The record that carries the protocol in a node's reply: its masked vector (train: an ArrayRecord with
one uint64 array, ``masked``) or its public round key (evaluate: a ConfigRecord, ``PUBLIC_KEY``)."""


def participant_name(node_id: int) -> str:
    """A node's name in a secure-sum round: its Flower id, zero-padded so that text order is numeric order."""
    return f"{node_id:020d}"


def update_round(
    *, run_id: int, nonce: str, server_round: int, participants: Sequence[int], parameters: int, bits: int
) -> SecureSumRound:
    """The secure-sum round of one train instruction (the node and the coordinator build the same one)."""
    max_total = len(participants) * MAX_WEIGHT * (2**bits - 1)
    return SecureSumRound(
        job_id=f"learning:{run_id}:{nonce}",
        round=server_round,
        attempt=1,
        length=parameters + 2,
        max_total=max_total,
        modulus_bits=modulus_bits_for(max_total),
        participants=tuple(sorted(participant_name(node_id) for node_id in participants)),
    )


def _levels(bits: int) -> int:
    return int(2**bits - 1)


def encode_update(
    update: Sequence[npt.NDArray[np.floating]], *, weight: int, clip_range: float, bits: int
) -> tuple[npt.NDArray[np.uint64], int]:
    """The node's vector (``n * level`` per coordinate, ``n``, the clip count) and how many coordinates clipped."""
    if type(weight) is not int or not 0 < weight <= MAX_WEIGHT:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="a node's weight is 1..2**32-1 training rows")
    flat = np.concatenate([np.asarray(part, dtype=np.float64).reshape(-1) for part in update])
    if not np.isfinite(flat).all():
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the model update is not finite")
    clipped = int((np.abs(flat) > clip_range).sum())
    levels = np.rint((np.clip(flat, -clip_range, clip_range) + clip_range) / (2 * clip_range) * _levels(bits))
    values = np.concatenate([levels.astype(np.uint64) * np.uint64(weight), np.array([weight, clipped], np.uint64)])
    return values, clipped


@dataclass(frozen=True, slots=True)
class DecodedSum:
    """What the coordinator reads from the total: the weighted mean update, the total weight, the clip count."""

    mean_update: list[npt.NDArray[np.float64]]
    total_weight: int
    clipped: int


def decode_sum(total: Sequence[int], *, shapes: Sequence[tuple[int, ...]], clip_range: float, bits: int) -> DecodedSum:
    """The weighted mean update (in ``shapes``) from the exact total of the nodes' vectors."""
    sizes = [math.prod(shape) for shape in shapes]
    if len(total) != sum(sizes) + 2:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the total does not fit the model's parameters")
    weight, clipped = int(total[-2]), int(total[-1])
    if weight <= 0:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the total weight is zero")
    # Exact integers until the one division: sums reach 2**56 and more, beyond float64's 53 bits.
    scale = 2 * clip_range / _levels(bits)
    mean_levels = np.array([int(value) / weight for value in total[:-2]], dtype=np.float64)
    flat = mean_levels * scale - clip_range
    parts, offset = [], 0
    for shape, size in zip(shapes, sizes, strict=True):
        parts.append(flat[offset : offset + size].reshape(shape))
        offset += size
    return DecodedSum(parts, weight, clipped)
