"""Rate limits both services share: per-key token buckets, and the guard on failed authentication.

:class:`TokenBucketLimiter` — a key's bucket holds at most ``burst`` tokens and refills at ``rate_per_s``
per second; an action costs one token. The coordinator limits index lookups per node with it, the node
limits record-locator lookups per token, and both limit failed authentication per client address.

:class:`AuthFailureGuard` — failed bearer-token authentications per client address. Each refused token
takes one token from the address's bucket. While the bucket is empty, a token from that address is
refused with 429 (``RATE_LIMITED``) at once, without a database lookup, unless it is a token that
authenticated successfully before (kept in memory as its SHA-256, as the stores keep it): then it is
looked up as usual, so a revoked token still fails. Why a valid token keeps working: behind a hospital's
proxy or NAT every user shares one address, so refusing every token there would let one noisy client
lock a whole ward out; and refusing only the *unknown* tokens is what stops guessing, since a guess
is never looked up while the address is over its budget. A token used for the first time from an
over-limit address waits for the bucket to refill (one second at the default rate).

In memory and per process, like the enrolment limiter; memory is bounded (least recently used keys go).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from common.errors import AccessError, ErrorCode, InputError

__all__ = [
    "DEFAULT_AUTH_FAILURE_BURST",
    "DEFAULT_AUTH_FAILURE_REFILL_PER_S",
    "AuthFailureGuard",
    "TokenBucketLimiter",
]

DEFAULT_AUTH_FAILURE_BURST = 20.0
DEFAULT_AUTH_FAILURE_REFILL_PER_S = 1.0


class TokenBucketLimiter:
    """Per-key token buckets (thread-safe); memory bounded by ``max_keys`` (least recently used dropped)."""

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: float,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.pop(key, (self._burst, now))
        return min(self._burst, tokens + (now - at) * self._rate)

    def _keep(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)  # most recent last
        while len(self._buckets) > self._max_keys:
            del self._buckets[next(iter(self._buckets))]

    def try_take(self, key: str, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``key``'s bucket; False (nothing taken) when it holds fewer."""
        with self._lock:
            now = self._clock()
            tokens = self._level(key, now)
            allowed = tokens >= cost
            if allowed:
                tokens -= cost
            self._keep(key, tokens, now)
            return allowed

    def has(self, key: str, cost: float = 1.0) -> bool:
        """Whether ``key``'s bucket holds ``cost`` tokens now (nothing is taken)."""
        with self._lock:
            now = self._clock()
            if key not in self._buckets:
                return self._burst >= cost
            tokens = self._level(key, now)
            self._keep(key, tokens, now)
            return tokens >= cost

    def take(self, key: str, cost: float = 1.0, *, detail: str = "over the rate limit") -> None:
        """Take ``cost`` tokens, or raise InputError(RATE_LIMITED) (429) with ``detail`` for the local log."""
        if not self.try_take(key, cost):
            raise InputError(ErrorCode.RATE_LIMITED, detail=detail)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


Principal = TypeVar("Principal")


class AuthFailureGuard:
    """Failed bearer-token authentication per client address (see the module docstring for the policy)."""

    def __init__(
        self,
        *,
        burst: float = DEFAULT_AUTH_FAILURE_BURST,
        refill_per_s: float = DEFAULT_AUTH_FAILURE_REFILL_PER_S,
        max_known_tokens: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failures = TokenBucketLimiter(rate_per_s=refill_per_s, burst=burst, clock=clock)
        self._known: OrderedDict[str, None] = OrderedDict()  # SHA-256 of tokens that authenticated
        self._max_known = max_known_tokens
        self._lock = threading.Lock()

    def authenticate(self, address: str, token: str, lookup: Callable[[str], Principal]) -> Principal:
        """``lookup(token)`` under the guard: 429 without a lookup while ``address`` is over its budget (and the
        token never authenticated here); a refusal (AccessError) is counted against the address."""
        self.check(address, token)
        try:
            principal = lookup(token)
        except AccessError:
            self.failed(address)
            raise
        self.succeeded(token)
        return principal

    def check(self, address: str, token: str) -> None:
        """Before the lookup: raise InputError(RATE_LIMITED) when ``address`` is over its budget and ``token``
        never authenticated here; otherwise return, and the caller looks the token up."""
        if self._failures.has(address):
            return
        with self._lock:
            if _digest(token) in self._known:
                return
        raise InputError(ErrorCode.RATE_LIMITED, detail="authentication refused: too many failures from the address")

    def failed(self, address: str) -> None:
        """The token from ``address`` was refused: count it."""
        self._failures.try_take(address)

    def succeeded(self, token: str) -> None:
        """The token authenticated: remember it (as its SHA-256), so it keeps working from an over-limit address."""
        digest = _digest(token)
        with self._lock:
            self._known[digest] = None
            self._known.move_to_end(digest)
            while len(self._known) > self._max_known:
                self._known.popitem(last=False)
