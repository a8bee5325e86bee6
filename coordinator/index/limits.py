"""How many index lookups a node may make, in bursts and on average: a token bucket per node.

A lookup costs one token; a node's bucket holds at most :data:`DEFAULT_BURST` tokens and refills at
:data:`DEFAULT_RATE_PER_S` per second. A node with an empty bucket is answered 429 (``RATE_LIMITED``)
at once, without touching the index: a compromised node cannot sweep the index by guessing demographics
faster than a clinic could plausibly ask. The bucket itself is :class:`common.limits.TokenBucketLimiter`
(the one implementation both services use); in memory and per process, like the enrolment limiter.
"""

from __future__ import annotations

from common.limits import TokenBucketLimiter

__all__ = ["DEFAULT_BURST", "DEFAULT_RATE_PER_S", "TokenBucketLimiter", "lookup_limiter"]

DEFAULT_RATE_PER_S = 5.0
DEFAULT_BURST = 60.0


def lookup_limiter() -> TokenBucketLimiter:
    """The per-node bucket for index lookups, at the defaults above."""
    return TokenBucketLimiter(rate_per_s=DEFAULT_RATE_PER_S, burst=DEFAULT_BURST)
