"""Differential privacy mechanisms: calibration, repeatable noise, costs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from common.errors import ConfigError, InputError
from common.privacy import DpPolicy
from common.privacy.dp import (
    dp_count,
    dp_histogram,
    dp_mean,
    dp_sum,
    gaussian_sigma,
    laplace_scale,
    noise_rng,
    query_digest,
)
from tests.unit.privacy.conftest import TEST_SECRET

LAPLACE = DpPolicy(mechanism="laplace", epsilon=0.5)
GAUSSIAN = DpPolicy(mechanism="gaussian", epsilon=1.0, delta=1e-5)
QUERY = {"analysis": "count", "view": "patients", "where": {"sex": "female"}, "snapshot": "s-42"}


def test_an_identical_query_gets_identical_noise_and_another_query_other_noise() -> None:
    """Noise is seeded by the node secret and the query digest: repeat the query, repeat the answer."""
    digest = query_digest(QUERY)
    first = dp_count(1000, policy=LAPLACE, rng=noise_rng(TEST_SECRET, digest))
    again = dp_count(1000, policy=LAPLACE, rng=noise_rng(TEST_SECRET, query_digest(dict(reversed(QUERY.items())))))
    assert first.value == again.value
    digests = [query_digest({**QUERY, "snapshot": f"s-{i}"}) for i in range(20)]
    here = [dp_count(1000, policy=LAPLACE, rng=noise_rng(TEST_SECRET, d)).value for d in digests]
    elsewhere = [dp_count(1000, policy=LAPLACE, rng=noise_rng(bytes(32), d)).value for d in digests]
    assert len(set(here)) > 5
    assert here != elsewhere


def test_the_query_digest_is_canonical_json_sha256() -> None:
    """Key order does not matter; the digest is labelled with its hash."""
    assert query_digest({"a": 1, "b": [1, 2]}) == query_digest({"b": [1, 2], "a": 1})
    assert query_digest(QUERY).startswith("sha256:")
    assert len(query_digest(QUERY)) == 71


def test_discrete_laplace_counts_have_the_calibrated_spread() -> None:
    """Count noise is integer with variance 2 e^(-1/b) / (1 - e^(-1/b))^2 for scale b = 1/epsilon."""
    rng = np.random.default_rng(1)
    noise = np.array([dp_count(0, policy=LAPLACE, rng=rng).value for _ in range(20_000)])
    assert noise.dtype.kind == "i"
    b = laplace_scale(1.0, 0.5)
    expected_variance = 2 * math.exp(-1 / b) / (1 - math.exp(-1 / b)) ** 2
    assert abs(noise.mean()) < 0.1
    assert noise.var() == pytest.approx(expected_variance, rel=0.05)


def test_the_analytic_gaussian_sigma_is_the_smallest_that_meets_delta() -> None:
    """sigma meets (epsilon, delta) by Balle and Wang's exact condition, 0.1% less does not."""

    def delta_of(sigma: float, epsilon: float) -> float:
        return float(
            norm.cdf(1 / (2 * sigma) - epsilon * sigma)
            - math.exp(epsilon) * norm.cdf(-1 / (2 * sigma) - epsilon * sigma)
        )

    for epsilon, delta in ((0.1, 1e-6), (1.0, 1e-5), (4.0, 1e-8)):
        sigma = gaussian_sigma(1.0, epsilon, delta)
        assert delta_of(sigma, epsilon) <= delta * (1 + 1e-6)
        assert delta_of(sigma * 0.999, epsilon) > delta
    classic = math.sqrt(2 * math.log(1.25 / 1e-5)) / 0.5
    assert gaussian_sigma(1.0, 0.5, 1e-5) < classic


def test_sums_and_means_clip_to_the_declared_bounds() -> None:
    """A value outside the bounds is clipped, so one record moves a sum by at most max(|lower|, |upper|)."""
    rng = np.random.default_rng(3)
    policy = DpPolicy(mechanism="laplace", epsilon=50.0)
    released = dp_sum([1.0, 2.0, 1000.0], lower=0.0, upper=10.0, policy=policy, rng=rng)
    assert released.value == pytest.approx(13.0, abs=2.0)
    assert released.metadata["parameters"]["sensitivity"] == 10.0
    mean = dp_mean([1.0, 2.0, 3.0] * 100, lower=0.0, upper=10.0, policy=policy, rng=rng)
    assert mean.value == pytest.approx(2.0, abs=0.2)
    assert mean.cost.epsilon == 50.0
    assert mean.cost.unit == "record"


def test_a_gaussian_histogram_costs_its_epsilon_and_delta() -> None:
    """The release's cost is what the ledger will be charged: the policy's epsilon and delta, record-level."""
    released = dp_histogram([10, 0, 5], policy=GAUSSIAN, rng=np.random.default_rng(4))
    assert len(released.value) == 3
    assert (released.cost.epsilon, released.cost.delta, released.cost.unit) == (1.0, 1e-5, "record")
    assert released.metadata["method"] == "differential-privacy"


def test_bad_parameters_are_refused() -> None:
    """Gaussian needs delta > 0, Laplace has delta 0, bounds are ordered, counts are not negative."""
    with pytest.raises(ConfigError):
        DpPolicy(mechanism="gaussian", epsilon=1.0, delta=0.0)
    with pytest.raises(ConfigError):
        DpPolicy(mechanism="laplace", epsilon=1.0, delta=1e-5)
    with pytest.raises(ConfigError):
        DpPolicy(epsilon=float("nan"))
    with pytest.raises(InputError):
        dp_sum([1.0], lower=5.0, upper=1.0, policy=LAPLACE, rng=np.random.default_rng(0))
    with pytest.raises(InputError):
        dp_count(-1, policy=LAPLACE, rng=np.random.default_rng(0))
