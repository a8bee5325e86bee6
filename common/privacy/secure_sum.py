"""Secure aggregation of integer vectors: the coordinator learns the exact total and nothing else.

Counts and integer sums from several nodes are added up under pairwise masks (the construction of
Bonawitz et al. 2017 without its dropout recovery):

- each participant makes a fresh X25519 key for the round and the coordinator relays the public keys;
- every pair ``(a, b)`` derives a shared key with :func:`common.crypto.agree_key`, bound to the job, the
  round, the attempt, the modulus and the participant list, and expands it with SHAKE-256 into a mask
  vector uniform mod ``2**k``;
- a participant sends ``x + sum(masks with higher ids) - sum(masks with lower ids) mod 2**k``; in the
  sum over all participants every mask appears once with each sign, so the coordinator gets
  ``sum(x) mod 2**k``, which is the exact total because ``k`` is chosen so that ``2**k`` exceeds the
  declared maximum total (:func:`modulus_bits_for`). A total above that maximum means a node broke the
  declaration and is refused, not wrapped.

**Threat model.** The coordinator is *semi-honest*: it follows the protocol (relays public keys
unchanged, delivers every participant's vector, reports dropouts truthfully) but tries to learn what it
can from what it sees. Under that assumption a single masked vector is uniformly distributed mod
``2**k`` whatever the node's values (each coordinate is the value plus a pseudorandom mask only the
node and one peer can compute), and any set of masked vectors short of all of them is likewise uniform;
only the total is revealed. Nodes are honest but curious towards each other: a node learns nothing but
the total that is published anyway (with two participants the total and one's own input give the
other's, which is why a job should ask for at least three).

Not covered, and why it matters: a *malicious* coordinator could swap public keys (a man in the middle
learns the masks of one node) or claim that a node dropped after receiving its vector and rerun the
round without it (the two totals differ by that node's input). The first is closed by having nodes sign
their round keys with their enrolled Ed25519 identity (the job envelope's job); the second by nodes
limiting how many attempts of one round they answer and by the disclosure control each node applies to
its inputs before masking (minimum cell size, cell-key noise, DP), which bounds what any single node's
contribution can reveal.

**Dropout.** If a participant drops out after the others have sent their vectors, the round fails
(:class:`SecureAggregationError`) and is retried as a new *attempt* without it. The new attempt uses new
round keys, so its masks are independent of the failed one, and the failed vectors can never be unmasked:
that would need the dropped node's round secret, which never leaves it. (Bonawitz et al. recover instead
by secret-sharing each node's keys among the others; medfed's analytics rounds are cheap to repeat, so it
retries.)

Vectors are numpy ``uint64`` arrays; ``k`` is at most 64.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from common.crypto import SealingKey, SealPublicKey, agree_key, canonical_json
from common.errors import ConflictError, ErrorCode, InputError

__all__ = [
    "MAX_MODULUS_BITS",
    "MaskedVector",
    "SecureAggregationError",
    "SecureSumParticipant",
    "SecureSumRound",
    "aggregate",
    "modulus_bits_for",
]

#: The largest modulus is 2**64 (numpy's uint64 arithmetic wraps exactly there).
MAX_MODULUS_BITS = 64
_CONTEXT_LABEL = b"medfed/secure-sum/v1|"
_MAX_LENGTH = 1_000_000

Vector = npt.NDArray[np.uint64]


class SecureAggregationError(ConflictError):
    """A secure-aggregation round cannot be completed (a participant is missing); retry without it."""

    default_code = ErrorCode.SECURE_AGGREGATION_FAILED


def modulus_bits_for(max_total: int) -> int:
    """The smallest ``k`` with ``max_total < 2**k``: the totals up to ``max_total`` then come back exact."""
    if type(max_total) is not int or max_total < 0:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the declared maximum total is a non-negative integer")
    bits = max(1, max_total.bit_length())
    if bits > MAX_MODULUS_BITS:
        raise InputError(ErrorCode.INVALID_REQUEST, detail=f"totals must stay below 2**{MAX_MODULUS_BITS}")
    return bits


@dataclass(frozen=True, slots=True)
class SecureSumRound:
    """What every participant and the coordinator agree on before masking."""

    job_id: str
    round: int
    attempt: int
    length: int
    max_total: int
    modulus_bits: int
    participants: tuple[str, ...]
    _digest: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.job_id or type(self.round) is not int or type(self.attempt) is not int:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="a secure-sum round names its job, round and attempt")
        if type(self.length) is not int or not 1 <= self.length <= _MAX_LENGTH:
            raise InputError(ErrorCode.INVALID_REQUEST, detail=f"a masked vector has 1..{_MAX_LENGTH} entries")
        needed = modulus_bits_for(self.max_total)
        if type(self.modulus_bits) is not int or not needed <= self.modulus_bits <= MAX_MODULUS_BITS:
            raise InputError(
                ErrorCode.INVALID_REQUEST,
                detail=f"the modulus must have {needed}..{MAX_MODULUS_BITS} bits for the declared maximum total",
            )
        if len(self.participants) < 2 or len(set(self.participants)) != len(self.participants):
            raise InputError(ErrorCode.INVALID_REQUEST, detail="a secure sum needs at least two distinct participants")
        if list(self.participants) != sorted(self.participants):
            raise InputError(ErrorCode.INVALID_REQUEST, detail="participants are listed in sorted order")
        document = {
            "job_id": self.job_id,
            "round": self.round,
            "attempt": self.attempt,
            "length": self.length,
            "max_total": self.max_total,
            "modulus_bits": self.modulus_bits,
            "participants": list(self.participants),
        }
        object.__setattr__(self, "_digest", hashlib.sha256(canonical_json(document)).hexdigest())

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the canonical round description; masks and vectors are bound to it."""
        return self._digest

    def without(self, dropped: Sequence[str]) -> SecureSumRound:
        """The next attempt of this round without the ``dropped`` participants."""
        return SecureSumRound(
            job_id=self.job_id,
            round=self.round,
            attempt=self.attempt + 1,
            length=self.length,
            max_total=self.max_total,
            modulus_bits=self.modulus_bits,
            participants=tuple(p for p in self.participants if p not in set(dropped)),
        )


@dataclass(frozen=True, slots=True)
class MaskedVector:
    """What a participant sends: its masked vector, bound to one round by the round's digest."""

    node_id: str
    round_digest: str
    modulus_bits: int
    values: Vector


def _modulus_mask(bits: int) -> np.uint64:
    return np.uint64((1 << bits) - 1)


def _pair_mask(own: SealingKey, peer: SealPublicKey, secure_round: SecureSumRound) -> Vector:
    key = agree_key(own, peer, context=_CONTEXT_LABEL + secure_round.digest.encode("ascii"))
    stream = hashlib.shake_256(key).digest(8 * secure_round.length)
    return np.frombuffer(stream, dtype=">u8").astype(np.uint64) & _modulus_mask(secure_round.modulus_bits)


class SecureSumParticipant:
    """One node's side of a round: a fresh X25519 key, and the masking of its vector."""

    __slots__ = ("_key", "node_id")

    def __init__(self, node_id: str) -> None:
        """A participant named ``node_id`` with a new round key (never reuse one across attempts)."""
        self.node_id = node_id
        self._key = SealingKey.generate()

    @classmethod
    def from_key(cls, node_id: str, key: SealingKey) -> SecureSumParticipant:
        """A participant with a round key made earlier (a node that keeps its key between two messages)."""
        participant = cls.__new__(cls)
        participant.node_id = node_id
        participant._key = key
        return participant

    @property
    def public_key(self) -> SealPublicKey:
        """The round key's public half, relayed by the coordinator to the other participants."""
        return self._key.public_key()

    def mask(
        self,
        values: Sequence[int] | npt.NDArray[np.integer],
        secure_round: SecureSumRound,
        peers: Mapping[str, SealPublicKey],
    ) -> MaskedVector:
        """Mask ``values`` (integers in ``0..max_total``) for ``secure_round`` with every peer's public key."""
        if self.node_id not in secure_round.participants:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="this node is not a participant of the round")
        others = [p for p in secure_round.participants if p != self.node_id]
        if set(peers) != set(others):
            raise InputError(ErrorCode.INVALID_REQUEST, detail="one public key per other participant is needed")
        plain = _checked_values(values, secure_round)
        masked = plain.copy()
        for peer_id in others:
            pair = _pair_mask(self._key, peers[peer_id], secure_round)
            # uint64 arithmetic wraps mod 2**64; the final & reduces mod 2**k (k <= 64 divides it).
            masked = masked + pair if self.node_id < peer_id else masked - pair
        masked &= _modulus_mask(secure_round.modulus_bits)
        return MaskedVector(self.node_id, secure_round.digest, secure_round.modulus_bits, masked)


def _checked_values(values: Sequence[int] | npt.NDArray[np.integer], secure_round: SecureSumRound) -> Vector:
    array = np.asarray(values)
    if array.shape != (secure_round.length,) or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the vector must hold the round's number of integers")
    if array.size and (int(array.min()) < 0 or int(array.max()) > secure_round.max_total):
        raise InputError(ErrorCode.INVALID_REQUEST, detail="a value lies outside 0..the declared maximum total")
    return array.astype(np.uint64)


def aggregate(secure_round: SecureSumRound, vectors: Sequence[MaskedVector]) -> tuple[int, ...]:
    """The exact total of the participants' vectors (the coordinator's side).

    A vector for another round or another modulus, a duplicate or a stranger is refused (InputError);
    a missing participant fails the round (SecureAggregationError) — retry with ``round.without(...)``.
    """
    seen: set[str] = set()
    total = np.zeros(secure_round.length, dtype=np.uint64)
    for vector in vectors:
        if vector.modulus_bits != secure_round.modulus_bits:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="a masked vector was made for another modulus")
        if vector.round_digest != secure_round.digest:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="a masked vector was made for another round")
        if vector.node_id not in secure_round.participants or vector.node_id in seen:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="a masked vector from a stranger or twice")
        values = np.asarray(vector.values)
        if values.shape != (secure_round.length,) or values.dtype != np.uint64:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="a masked vector has the wrong length or type")
        if bool((values > _modulus_mask(secure_round.modulus_bits)).any()):
            raise InputError(ErrorCode.INVALID_REQUEST, detail="a masked value is not reduced mod 2**k")
        seen.add(vector.node_id)
        total = total + values
    missing = len(secure_round.participants) - len(seen)
    if missing:
        raise SecureAggregationError(detail=f"{missing} participant(s) sent no masked vector")
    total &= _modulus_mask(secure_round.modulus_bits)
    result = tuple(int(v) for v in total)
    if any(v > secure_round.max_total for v in result):
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the total exceeds the declared maximum")
    return result
