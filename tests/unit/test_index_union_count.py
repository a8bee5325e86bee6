"""De-duplicated counts across nodes: job-salted bitmaps under secure aggregation, linear counting."""

from __future__ import annotations

import numpy as np
import pytest

from common.linkage import Demographics, LinkageKey, tokens_for
from common.locator.union_count import (
    MODULUS_BITS,
    buckets_for,
    job_salt,
    node_sketch,
    person_token,
    released_total,
    union_estimate,
)
from common.privacy.secure_sum import SecureSumParticipant, SecureSumRound, aggregate

KEY = LinkageKey(bytes(range(32)))


def _letters(i: int) -> str:
    word = ""
    while True:
        i, digit = divmod(i, 26)
        word += chr(ord("a") + digit)
        if not i:
            return word


def _person(i: int) -> bytes:
    """Person ``i``'s person token (names spelt in letters: normalisation drops digits)."""
    demographics = Demographics(given="Ann" + _letters(i), family="Smith" + _letters(i), birth_date="1980-01-01")
    token = person_token(tokens_for(demographics, KEY))
    assert token is not None
    return token


def _secure_total(sketches: list[np.ndarray]) -> tuple[int, ...]:
    names = [f"site-{i}" for i in range(len(sketches))]
    round_ = SecureSumRound(
        job_id="job-1",
        round=1,
        attempt=0,
        length=sketches[0].size,
        max_total=2**MODULUS_BITS - 1,
        modulus_bits=MODULUS_BITS,
        participants=tuple(names),
    )
    participants = {name: SecureSumParticipant(name) for name in names}
    keys = {name: p.public_key for name, p in participants.items()}
    masked = [
        participants[name].mask(sketch, round_, {n: k for n, k in keys.items() if n != name})
        for name, sketch in zip(names, sketches, strict=True)
    ]
    return aggregate(round_, masked)


# Without dummies the estimate is a fixed function of the salt (this salt's hash placement: +2.2 %). Dummy
# buckets are drawn from ``secrets``, so that estimate varies: over 60 draws its error had sd 0.9 % around
# the same +2.2 %, so 6 % is more than four standard deviations away (a 4 % bound failed about 1 run in 40).
@pytest.mark.parametrize(("dummy_rate", "tolerance"), [(0.0, 0.04), (0.02, 0.06)])
def test_a_person_known_at_several_nodes_is_counted_once(dummy_rate: float, tolerance: float) -> None:
    """Three nodes with overlapping cohorts (union 3,000 of 4,500 records): the estimate is within 4 % (6 %
    with random dummy buckets)."""
    salt = job_salt(KEY, job_id="job-1", spec_digest="d" * 64)
    cohorts = [range(0, 1500), range(1000, 2500), range(1500, 3000)]
    buckets = buckets_for(8_000)
    sketches = [
        node_sketch([_person(i) for i in cohort], salt=salt, buckets=buckets, dummy_rate=dummy_rate)
        for cohort in cohorts
    ]
    estimate = union_estimate(_secure_total(sketches), nodes=3, dummy_rate=dummy_rate)
    assert abs(estimate - 3000) / 3000 < tolerance


def test_the_summed_bitmap_does_not_say_how_many_nodes_share_a_person() -> None:
    """The same person at one node or at three: the summed bucket is a random non-zero value either way."""
    salt = job_salt(KEY, job_id="job-1", spec_digest="d" * 64)
    shared = [node_sketch([_person(1)], salt=salt, buckets=1024) for _ in range(3)]
    alone = [node_sketch([_person(1)], salt=salt, buckets=1024), *(np.zeros(1024, dtype=np.uint64),) * 2]
    for sketches in (shared, alone):
        total = np.asarray(_secure_total(sketches))
        assert int((total != 0).sum()) == 1
    assert {int(v) for v in shared[0] if v} != {1}, "set buckets hold random values, not counts"


def test_another_job_salts_the_buckets_differently() -> None:
    """The same cohort in two jobs sets unrelated buckets, so bitmaps of two jobs cannot be linked."""
    people = [_person(i) for i in range(50)]
    first = node_sketch(people, salt=job_salt(KEY, job_id="job-1", spec_digest="d" * 64), buckets=4096)
    second = node_sketch(people, salt=job_salt(KEY, job_id="job-2", spec_digest="d" * 64), buckets=4096)
    assert len(set(np.flatnonzero(first)) & set(np.flatnonzero(second))) < 5


def test_the_released_total_is_rounded_and_small_totals_are_suppressed() -> None:
    """Disclosure rules on the estimate: rounded to 5, nothing below 10."""
    assert released_total(1234.4) == 1235
    assert released_total(7.0) is None
