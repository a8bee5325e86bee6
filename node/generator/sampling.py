"""Small, fast sampling helpers over ``random.Random`` (no numpy), shared by the generator modules."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from random import Random
from statistics import NormalDist
from typing import Generic, TypeVar

__all__ = ["Weighted", "below", "between", "normal", "poisson", "uuid4", "zipf"]

T = TypeVar("T")

# The bits that uuid.UUID(int=n, version=4) clears and sets: variant 10xx and version 0100.
_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_SET = (0x8000 << 48) | (0x4000 << 64)


class Weighted(Generic[T]):
    """A fixed population with weights; :meth:`pick` draws one item in O(log n) with one random()."""

    __slots__ = ("_cum", "_items", "_total")

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        if len(items) != len(weights) or not items:
            raise ValueError("items and weights must be non-empty and of equal length")
        self._items = tuple(items)
        cum: list[float] = []
        total = 0.0
        for weight in weights:
            total += weight
            cum.append(total)
        self._cum = cum
        self._total = total

    @property
    def items(self) -> tuple[T, ...]:
        """The population, in the order given."""
        return self._items

    def pick(self, rng: Random) -> T:
        """Draw one item with probability proportional to its weight."""
        return self._items[bisect_right(self._cum, rng.random() * self._total)]


def zipf(items: Sequence[T], exponent: float = 1.0, offset: float = 1.0) -> Weighted[T]:
    """Weight the items (most frequent first) by ``1 / (rank + offset) ** exponent``."""
    return Weighted(items, [1.0 / (rank + offset) ** exponent for rank in range(len(items))])


# Standard-normal quantiles at 4096 evenly spaced probabilities: a table draw is several times faster
# than random.gauss, and the tails (|z| < 3.5) are all a synthetic measurement needs.
_NORMAL = tuple(NormalDist().inv_cdf((i + 0.5) / 4096) for i in range(4096))


def normal(rng: Random) -> float:
    """A standard-normal draw from the quantile table (one ``getrandbits(12)``)."""
    return _NORMAL[rng.getrandbits(12)]


def below(rng: Random, n: int) -> int:
    """A whole number in ``[0, n)``; cheaper than ``randrange`` (``n`` stays far below 2**53)."""
    return int(rng.random() * n)


def between(rng: Random, lo: int, hi: int) -> int:
    """A whole number in ``[lo, hi)``."""
    return lo + int(rng.random() * (hi - lo))


def poisson(rng: Random, lam: float) -> int:
    """A Poisson draw (Knuth's method; the generator only uses means below ~40)."""
    limit = math.exp(-lam)
    count = 0
    product = rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def uuid4(rng: Random) -> str:
    """``str(uuid.UUID(int=rng.getrandbits(128), version=4))``, without building the UUID object."""
    h = ((rng.getrandbits(128) & _CLEAR) | _SET).to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
