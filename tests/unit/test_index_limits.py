"""The per-node token bucket that rate-limits index lookups."""

from __future__ import annotations

import pytest

from common.errors import ErrorCode, InputError
from coordinator.index.limits import TokenBucketLimiter
from tests.clock import Clock


def test_a_burst_is_allowed_then_refused_until_the_bucket_refills() -> None:
    """Burst 3 at 1 per second: three at once, the fourth refused, one more after a second."""
    clock = Clock()
    limiter = TokenBucketLimiter(rate_per_s=1.0, burst=3, clock=clock)
    assert [limiter.try_take("site-a") for _ in range(4)] == [True, True, True, False]
    clock.now = 1.0
    assert limiter.try_take("site-a")
    assert not limiter.try_take("site-a")


def test_each_node_has_its_own_bucket() -> None:
    """One node's exhausted bucket does not limit another."""
    limiter = TokenBucketLimiter(rate_per_s=0.001, burst=1, clock=Clock())
    assert limiter.try_take("site-a")
    assert not limiter.try_take("site-a")
    assert limiter.try_take("site-b")


def test_take_raises_rate_limited_with_a_429() -> None:
    """Past the budget, ``take`` raises the catalog's RATE_LIMITED (HTTP 429)."""
    limiter = TokenBucketLimiter(rate_per_s=0.001, burst=1, clock=Clock())
    limiter.take("site-a")
    with pytest.raises(InputError) as refused:
        limiter.take("site-a")
    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert refused.value.status == 429


def test_the_number_of_remembered_nodes_is_bounded() -> None:
    """Beyond ``max_keys`` nodes the least recently seen is forgotten (and starts with a full bucket)."""
    limiter = TokenBucketLimiter(rate_per_s=0.001, burst=1, max_keys=2, clock=Clock())
    for node in ("a", "b", "c"):
        assert limiter.try_take(node)
    assert limiter.try_take("a"), "a was forgotten, so its bucket is full again"
    assert not limiter.try_take("c")
