"""De-duplicated cross-hospital counts: a patient known to several nodes is counted once.

**Protocol** (a securely aggregated, job-salted bitmap; linear counting):

1. Every node derives the job's salt from the network linkage key, which the coordinator never holds,
   and the signed job's id and spec digest: ``salt = HKDF(linkage key, info="medfed/union-count/v1|" +
   job id + "|" + spec digest)`` (:func:`job_salt`). A new job is a new salt, so two jobs' bitmaps
   cannot be linked, and without the key nobody can tell which person a bucket stands for.
2. For each person of its cohort the node takes one *person token* — the token of the first variant in
   :data:`PERSON_VARIANTS` its record has (the same person gives the same token at every node) — and
   sets bucket ``HMAC(salt, token) mod m`` of an ``m``-bucket vector (:func:`node_sketch`). A set bucket
   holds a *random non-zero* value mod 2**32, not 1; with ``dummy_rate`` it also sets random other
   buckets (randomised response, for deniability of single buckets).
3. The vectors travel under secure aggregation (:mod:`common.privacy.secure_sum`, mod 2**32). The sum
   of random non-zero values is non-zero (but for a 2**-32 chance per bucket) exactly where *some* node
   set the bucket, and its value says nothing about *how many*: the coordinator learns the union's
   bitmap, not per-node bitmaps, sizes or overlaps.
4. The coordinator counts the empty buckets and estimates the union (:func:`union_estimate`), corrected
   for the dummies: ``n = -m ln(V / (1 - q)^k)`` with ``V`` the empty fraction, ``q`` the dummy rate and
   ``k`` the number of nodes (linear counting, Whang et al. 1990). The estimate then goes through the
   normal disclosure rules (here: rounded to :data:`ROUND_TO`, suppressed below :data:`MIN_COUNT`)
   before anyone sees it.

**Cost.** Per node and job: ``m`` HMACs for nothing but the cohort (one per person) and an ``m``-entry
vector of 8 bytes (2**16 buckets: 512 KiB) masked once per peer (SHAKE-256 of the same size). Accuracy:
linear counting's relative standard error is about ``sqrt(e^t - t - 1) / (t sqrt(m))`` at load
``t = n/m``: under 1 % for ``n <= m`` at ``m = 2**16``; choose ``m`` of the order of the largest union
expected (:func:`buckets_for`). Persons whose records carry no variant of :data:`PERSON_VARIANTS`, or
whose records at two nodes fall back to different variants, are counted twice: the estimate errs high.

**What this is not.** Not a formal differential-privacy guarantee: the dummies give each bucket
deniability (a set bucket may be a dummy), and the disclosure rules round and suppress the total; a
node that wants DP on the total adds its own noise to its cohort before step 2.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from common.crypto import derive_key, hmac_sha256
from common.errors import ErrorCode, InputError
from common.linkage import LinkageKey, Token

__all__ = [
    "MIN_COUNT",
    "MODULUS_BITS",
    "PERSON_VARIANTS",
    "ROUND_TO",
    "buckets_for",
    "job_salt",
    "node_sketch",
    "person_token",
    "released_total",
    "sketches_from",
    "union_estimate",
]

#: The secure-sum modulus of the bitmap (random non-zero values mod 2**32).
MODULUS_BITS = 32
#: The variants a person token is taken from, best first.
PERSON_VARIANTS = (
    "given+family+birth_date",
    "birth_date+national_id",
    "given_phonetic+family_phonetic+birth_date",
    "given+family+birth_year_month",
)
ROUND_TO = 5
MIN_COUNT = 10
_MODULUS = 1 << MODULUS_BITS


def buckets_for(max_union: int) -> int:
    """A power-of-two bucket count of at least ``max_union`` (2**10 .. 2**22)."""
    return 1 << min(22, max(10, math.ceil(math.log2(max(2, max_union)))))


def job_salt(key: LinkageKey, *, job_id: str, spec_digest: str) -> bytes:
    """The job's bucket salt: nodes share it (they hold the linkage key), the coordinator cannot make it."""
    return derive_key(key.secret, info=f"medfed/union-count/v1|{job_id}|{spec_digest}".encode())


def person_token(tokens: Iterable[Token]) -> bytes | None:
    """The person token of one record: the token of its first variant in :data:`PERSON_VARIANTS`."""
    by_variant = {token.variant: token for token in tokens}
    for variant in PERSON_VARIANTS:
        if variant in by_variant:
            return bytes.fromhex(by_variant[variant].value_hex)
    return None


def node_sketch(
    person_tokens: Iterable[bytes], *, salt: bytes, buckets: int, dummy_rate: float = 0.0
) -> npt.NDArray[np.uint64]:
    """A node's bitmap for the secure sum: random non-zero values mod 2**32 at its persons' buckets."""
    if buckets < 1 or not 0.0 <= dummy_rate < 0.5:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="buckets >= 1 and a dummy rate in [0, 0.5)")
    sketch = np.zeros(buckets, dtype=np.uint64)
    for token in person_tokens:
        bucket = int.from_bytes(hmac_sha256(salt, token)[:8], "big") % buckets
        sketch[bucket] = 1 + secrets.randbelow(_MODULUS - 1)
    if dummy_rate > 0:
        generator = np.random.default_rng(secrets.randbits(128))
        dummies = generator.random(buckets) < dummy_rate
        values = generator.integers(1, _MODULUS, size=buckets, dtype=np.uint64)
        sketch = np.where(dummies & (sketch == 0), values, sketch)
    return sketch


def union_estimate(total: Sequence[int] | npt.NDArray[np.integer], *, nodes: int, dummy_rate: float = 0.0) -> float:
    """The estimated number of distinct persons from the securely summed bitmaps of ``nodes`` nodes."""
    values = np.asarray(total)
    buckets = values.size
    empty = int((values == 0).sum())
    if buckets == 0 or nodes < 1:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="an empty bitmap or no nodes")
    kept = (1.0 - dummy_rate) ** nodes
    fraction = min(1.0, empty / buckets / kept)
    if fraction <= 0.0:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the bitmap is full: ask with more buckets")
    return -buckets * math.log(fraction)


def released_total(estimate: float, *, round_to: int = ROUND_TO, min_count: int = MIN_COUNT) -> int | None:
    """The estimate as released: rounded to ``round_to``; None (suppressed) below ``min_count``."""
    if estimate < min_count:
        return None
    return int(round_to * round(estimate / round_to))


def sketches_from(records: Mapping[str, Iterable[Token]], *, salt: bytes, buckets: int) -> npt.NDArray[np.uint64]:
    """:func:`node_sketch` of the person tokens of ``records`` (record id -> its tokens)."""
    tokens = (person_token(family) for family in records.values())
    return node_sketch((t for t in tokens if t is not None), salt=salt, buckets=buckets)
