"""A hand-moved clock for code that takes ``clock: Callable[[], float]`` (rate limits, expiry windows)."""

from __future__ import annotations


class Clock:
    """A hand-moved clock: it reads :attr:`now` until a test moves it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
