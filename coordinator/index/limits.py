"""A token bucket per node: how many index lookups a node may make, in bursts and on average.

A lookup costs one token; a node's bucket holds at most ``burst`` tokens and refills at ``rate`` per
second. A node with an empty bucket is answered 429 (``RATE_LIMITED``) at once, without touching the
index: a compromised node cannot sweep the index by guessing demographics faster than a clinic could
plausibly ask. In memory and per process, like the enrolment limiter (one coordinator process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from common.errors import ErrorCode, InputError

__all__ = ["DEFAULT_BURST", "DEFAULT_RATE_PER_S", "TokenBucketLimiter"]

DEFAULT_RATE_PER_S = 5.0
DEFAULT_BURST = 60.0


class TokenBucketLimiter:
    """Per-key token buckets (thread-safe); memory bounded by ``max_keys`` (least recently used dropped)."""

    def __init__(
        self,
        *,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: float = DEFAULT_BURST,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def try_take(self, key: str, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``key``'s bucket; False (nothing taken) when it holds fewer."""
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.pop(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - at) * self._rate)
            allowed = tokens >= cost
            if allowed:
                tokens -= cost
            self._buckets[key] = (tokens, now)  # most recent last
            while len(self._buckets) > self._max_keys:
                del self._buckets[next(iter(self._buckets))]
            return allowed

    def take(self, key: str, cost: float = 1.0) -> None:
        """Take ``cost`` tokens, or raise InputError(RATE_LIMITED)."""
        if not self.try_take(key, cost):
            raise InputError(ErrorCode.RATE_LIMITED, detail="index lookups over the node's rate")
