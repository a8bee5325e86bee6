"""The shared rate limits: token buckets, and the guard on failed authentication per client address."""

from __future__ import annotations

import pytest

from common.errors import ErrorCode, InputError
from common.limits import AuthFailureGuard, TokenBucketLimiter
from tests.clock import Clock


def test_has_tells_without_taking() -> None:
    """``has`` reports whether a token is there and leaves the bucket as it was."""
    limiter = TokenBucketLimiter(rate_per_s=1.0, burst=1, clock=Clock())
    assert limiter.has("a")
    assert limiter.has("a")
    assert limiter.try_take("a")
    assert not limiter.has("a")


def test_take_raises_rate_limited_with_the_given_local_detail() -> None:
    """Past the budget, ``take`` raises RATE_LIMITED (429) whose detail is the caller's, for the local log."""
    limiter = TokenBucketLimiter(rate_per_s=0.001, burst=1, clock=Clock())
    limiter.take("a", detail="lookups over the rate")
    with pytest.raises(InputError) as refused:
        limiter.take("a", detail="lookups over the rate")
    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert refused.value.status == 429
    assert refused.value.detail == "lookups over the rate"


def test_an_address_over_its_failures_is_refused_for_unknown_tokens_until_it_refills() -> None:
    """Burst 3 at 1/s: three failures are allowed, then unknown tokens are refused; one second later one more."""
    clock = Clock()
    guard = AuthFailureGuard(burst=3, refill_per_s=1.0, clock=clock)
    for _ in range(3):
        guard.check("10.0.0.1", "mfn_guess")
        guard.failed("10.0.0.1")
    with pytest.raises(InputError) as refused:
        guard.check("10.0.0.1", "mfn_guess")
    assert refused.value.code is ErrorCode.RATE_LIMITED
    guard.check("10.0.0.2", "mfn_guess")  # another address has its own budget
    clock.now = 1.0
    guard.check("10.0.0.1", "mfn_guess")


def test_a_token_that_authenticated_before_passes_the_check_from_an_address_over_its_budget() -> None:
    """Only unknown tokens are refused at once: a token that authenticated before is looked up as usual."""
    guard = AuthFailureGuard(burst=1, refill_per_s=0.001, clock=Clock())
    guard.succeeded("mfn_good")
    guard.failed("10.0.0.1")
    guard.check("10.0.0.1", "mfn_good")
    with pytest.raises(InputError):
        guard.check("10.0.0.1", "mfn_other")


def test_the_remembered_tokens_are_bounded() -> None:
    """Beyond ``max_known_tokens`` the least recently authenticated token is forgotten."""
    guard = AuthFailureGuard(burst=1, refill_per_s=0.001, max_known_tokens=2, clock=Clock())
    for token in ("mfn_a", "mfn_b", "mfn_c"):
        guard.succeeded(token)
    guard.failed("10.0.0.1")
    guard.check("10.0.0.1", "mfn_b")
    guard.check("10.0.0.1", "mfn_c")
    with pytest.raises(InputError):
        guard.check("10.0.0.1", "mfn_a")
