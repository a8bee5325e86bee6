"""Secure aggregation of integer vectors: exact totals, masked vectors that reveal nothing, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from common.crypto import SealingKey, agree_key
from common.errors import InputError
from common.privacy.secure_sum import (
    MaskedVector,
    SecureAggregationError,
    SecureSumParticipant,
    SecureSumRound,
    aggregate,
    modulus_bits_for,
)

NODES = ("node-a", "node-b", "node-c", "node-d")


def _round(participants: tuple[str, ...] = NODES, *, length: int = 6, max_total: int = 10_000) -> SecureSumRound:
    return SecureSumRound(
        job_id="job-1",
        round=1,
        attempt=0,
        length=length,
        max_total=max_total,
        modulus_bits=modulus_bits_for(max_total),
        participants=participants,
    )


def _masked(
    secure_round: SecureSumRound, inputs: dict[str, np.ndarray]
) -> tuple[dict[str, SecureSumParticipant], list[MaskedVector]]:
    parties = {node: SecureSumParticipant(node) for node in secure_round.participants}
    keys = {node: party.public_key for node, party in parties.items()}
    vectors = [
        party.mask(inputs[node], secure_round, {n: k for n, k in keys.items() if n != node})
        for node, party in parties.items()
    ]
    return parties, vectors


def test_the_total_of_masked_vectors_is_exact() -> None:
    """Four nodes' counts add up exactly, to the declared maximum itself."""
    rng = np.random.default_rng(0)
    inputs = {node: rng.integers(0, 2500, 6) for node in NODES}
    inputs["node-d"][0] = 10_000 - sum(int(inputs[n][0]) for n in NODES[:3])
    secure_round = _round()
    _, vectors = _masked(secure_round, inputs)
    total = aggregate(secure_round, vectors)
    assert total == tuple(int(v) for v in np.sum(list(inputs.values()), axis=0))
    assert total[0] == 10_000


def test_a_masked_vector_differs_from_the_plain_one_and_looks_uniform() -> None:
    """Each masked coordinate is uniform mod 2**k: an all-zero input masks to values spread over the range."""
    secure_round = _round(length=20_000, max_total=(1 << 20) - 1)
    inputs = {node: np.zeros(20_000, dtype=np.int64) for node in NODES}
    inputs["node-a"][:] = 7
    _, vectors = _masked(secure_round, inputs)
    for vector in vectors:
        values = vector.values.astype(np.float64) / (1 << secure_round.modulus_bits)
        assert not np.array_equal(vector.values, inputs[vector.node_id])
        assert abs(values.mean() - 0.5) < 0.01
        histogram, _ = np.histogram(values, bins=16, range=(0.0, 1.0))
        assert histogram.min() > 20_000 / 16 * 0.85
        top_bit = (vector.values >> np.uint64(secure_round.modulus_bits - 1)) & np.uint64(1)
        assert abs(float(top_bit.mean()) - 0.5) < 0.02
    assert aggregate(secure_round, vectors) == (7,) * 20_000


def test_a_modulus_too_small_for_the_declared_total_is_refused() -> None:
    """k must be large enough for the declared maximum total, and a vector for another k is refused."""
    with pytest.raises(InputError):
        SecureSumRound(
            job_id="job-1", round=1, attempt=0, length=2, max_total=1_000, modulus_bits=9, participants=NODES
        )
    secure_round = _round(length=2)
    _, vectors = _masked(secure_round, {node: np.array([1, 2]) for node in NODES})
    forged = MaskedVector(vectors[0].node_id, vectors[0].round_digest, 64, vectors[0].values)
    with pytest.raises(InputError):
        aggregate(secure_round, [forged, *vectors[1:]])
    assert modulus_bits_for(1023) == 10
    assert modulus_bits_for(1024) == 11
    with pytest.raises(InputError):
        modulus_bits_for(1 << 64)


def test_values_outside_the_declared_range_are_refused_before_masking() -> None:
    """A node will not mask a negative value or one above the declared maximum total."""
    secure_round = _round(length=2, max_total=100)
    party = SecureSumParticipant("node-a")
    peers = {n: SecureSumParticipant(n).public_key for n in NODES[1:]}
    for values in ([-1, 0], [101, 0], [1, 2, 3]):
        with pytest.raises(InputError):
            party.mask(np.array(values), secure_round, peers)


def test_a_dropped_node_fails_the_round_and_the_retry_without_it_is_exact() -> None:
    """With one vector missing the round fails; the next attempt, with new keys, sums the others exactly."""
    secure_round = _round(length=3)
    inputs = {node: np.array([i + 1, 10 * (i + 1), 0]) for i, node in enumerate(NODES)}
    _, vectors = _masked(secure_round, inputs)
    survivors = [v for v in vectors if v.node_id != "node-c"]
    with pytest.raises(SecureAggregationError) as failure:
        aggregate(secure_round, survivors)
    assert failure.value.code == "secure_aggregation_failed"
    retry = secure_round.without(["node-c"])
    assert retry.attempt == 1
    assert retry.participants == ("node-a", "node-b", "node-d")
    _, again = _masked(retry, inputs)
    assert aggregate(retry, again) == (1 + 2 + 4, 10 + 20 + 40, 0)
    # The failed attempt's vectors stay masked: without node-c's they add up to noise, not the survivors' total.
    stale = sum((v.values for v in survivors), start=np.zeros(3, dtype=np.uint64)) & np.uint64(
        (1 << retry.modulus_bits) - 1
    )
    assert tuple(int(v) for v in stale) != (7, 70, 0)


def test_vectors_for_another_round_from_strangers_or_twice_are_refused() -> None:
    """The coordinator refuses a vector bound to another round, an unknown node, or a duplicate."""
    secure_round = _round(length=2)
    _, vectors = _masked(secure_round, {node: np.array([1, 1]) for node in NODES})
    other_round = _round(("node-a", "node-b", "node-c", "node-e"), length=2)
    with pytest.raises(InputError):
        aggregate(other_round, vectors)
    with pytest.raises(InputError):
        aggregate(secure_round, [*vectors, vectors[0]])


def test_both_sides_of_a_pair_agree_on_their_key_and_nobody_else_does() -> None:
    """agree_key gives the same bytes to both holders, different bytes per context and to a third key."""
    a, b, c = SealingKey.generate(), SealingKey.generate(), SealingKey.generate()
    key = agree_key(a, b.public_key(), context=b"round-1")
    assert key == agree_key(b, a.public_key(), context=b"round-1")
    assert key != agree_key(a, b.public_key(), context=b"round-2")
    assert key != agree_key(c, b.public_key(), context=b"round-1")
    assert len(key) == 32
