"""Differential privacy for released counts, histograms, sums and means, with noise that repeats.

**Unit and sensitivity.** Record-level: neighbouring data sets differ by adding or removing one row of
the analysed view (a patient when the view has one row per patient). Sensitivities follow from bounds
the job declares, never from the data: a count or a histogram (each row in one bin) changes by 1; a
sum of values clipped to ``[lower, upper]`` by ``max(|lower|, |upper|)``. A mean is a noisy sum over a
noisy count, each with half of the query's epsilon (and delta): post-processing of two releases.

**Mechanisms.** Laplace (pure epsilon-DP): counts and histograms get *discrete* Laplace noise (the
two-sided geometric distribution, the difference of two geometric variables), so the output is an
integer and the low-order-bits attack on floating-point Laplace samples (Mironov 2012) has nothing to
read; sums and means get continuous Laplace with scale ``sensitivity / epsilon``. Gaussian
((epsilon, delta)-DP): sigma from the *analytic* Gaussian mechanism (Balle & Wang 2018), the smallest
sigma whose privacy profile meets delta, valid for every epsilon (the textbook
``sqrt(2 ln(1.25/delta))`` bound holds only for epsilon < 1); counts are rounded afterwards.

**Repeatable noise.** The random generator of a release is seeded with
``HMAC-SHA256(HMAC-SHA256(node secret, "medfed/disclosure/dp-noise/v1"), query digest)``, where the
digest is the SHA-256 of the canonical JSON of the query (analysis, parameters, data snapshot). An
identical query therefore returns the identical answer — which is why the epsilon ledger charges it only
once — while any change to the query, including a new data snapshot, draws fresh noise and is charged
again. The digest must name the snapshot: the same noise on changed data would reveal the change.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.crypto.canonical import canonical_json
from common.errors import ErrorCode, InputError
from common.privacy.policy import DpPolicy
from common.privacy.record_keys import derive_subkey

__all__ = [
    "DpCost",
    "DpRelease",
    "dp_count",
    "dp_histogram",
    "dp_mean",
    "dp_sum",
    "gaussian_sigma",
    "laplace_scale",
    "noise_rng",
    "query_digest",
]

_NOISE_LABEL = b"medfed/disclosure/dp-noise/v1"
#: The privacy unit of every release here (and of every ledger entry they lead to).
UNIT_RECORD = "record"


@dataclass(frozen=True, slots=True)
class DpCost:
    """What a release costs: charged to the node's epsilon ledger before the query runs."""

    epsilon: float
    delta: float
    unit: str = UNIT_RECORD


@dataclass(frozen=True, slots=True)
class DpRelease:
    """A differentially private value, its cost and what the result's metadata says about it."""

    value: Any
    cost: DpCost
    metadata: dict[str, Any]


def query_digest(query: Mapping[str, Any]) -> str:
    """``"sha256:<hex>"`` of the canonical JSON of ``query`` (include the data snapshot in it)."""
    return "sha256:" + hashlib.sha256(canonical_json(query)).hexdigest()


def noise_rng(secret: bytes, digest: str) -> np.random.Generator:
    """The generator for the query with ``digest``: the same secret and digest give the same draws."""
    seed = hmac.new(derive_subkey(secret, _NOISE_LABEL), digest.encode("utf-8"), hashlib.sha256).digest()
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int.from_bytes(seed, "big"))))


def laplace_scale(sensitivity: float, epsilon: float) -> float:
    """The Laplace scale ``b = sensitivity / epsilon`` for epsilon-DP."""
    _check_positive(sensitivity, "sensitivity")
    _check_positive(epsilon, "epsilon")
    return sensitivity / epsilon


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _gaussian_delta(sigma: float, sensitivity: float, epsilon: float) -> float:
    """The smallest delta for which N(0, sigma^2) noise is (epsilon, delta)-DP (Balle & Wang 2018, Thm 8)."""
    a = sensitivity / (2.0 * sigma)
    b = epsilon * sigma / sensitivity
    return _phi(a - b) - math.exp(epsilon) * _phi(-a - b)


def gaussian_sigma(sensitivity: float, epsilon: float, delta: float) -> float:
    """The smallest sigma (to 1e-9 relative) for which Gaussian noise is (epsilon, delta)-DP."""
    _check_positive(sensitivity, "sensitivity")
    _check_positive(epsilon, "epsilon")
    if not 0 < delta < 1:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the gaussian mechanism needs 0 < delta < 1")
    low, high = 1e-6 * sensitivity, sensitivity
    while _gaussian_delta(high, sensitivity, epsilon) > delta:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if _gaussian_delta(middle, sensitivity, epsilon) > delta:
            low = middle
        else:
            high = middle
        if high - low <= 1e-9 * high:
            break
    return high


def _check_positive(value: float, name: str) -> None:
    if not math.isfinite(value) or value <= 0:
        raise InputError(ErrorCode.INVALID_REQUEST, detail=f"{name} must be a positive number")


def _discrete_laplace(rng: np.random.Generator, scale: float, size: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Integers with P(k) proportional to exp(-|k| / scale): the difference of two geometric variables."""
    p = 1.0 - math.exp(-1.0 / scale)
    return (rng.geometric(p, size) - rng.geometric(p, size)).astype(np.int64)


def _integer_noise(policy: DpPolicy, sensitivity: float, rng: np.random.Generator, size: int) -> tuple[list[int], str]:
    if policy.mechanism == "laplace":
        scale = laplace_scale(sensitivity, policy.epsilon)
        return [int(v) for v in _discrete_laplace(rng, scale, size)], f"discrete-laplace(scale={scale:.6g})"
    sigma = gaussian_sigma(sensitivity, policy.epsilon, policy.delta)
    return [round(float(v)) for v in rng.normal(0.0, sigma, size)], f"gaussian-rounded(sigma={sigma:.6g})"


def _metadata(policy: DpPolicy, sensitivity: float, noise: str) -> dict[str, Any]:
    return {
        "method": "differential-privacy",
        "parameters": {
            "mechanism": policy.mechanism,
            "epsilon": policy.epsilon,
            "delta": policy.delta,
            "unit": UNIT_RECORD,
            "sensitivity": sensitivity,
            "noise": noise,
        },
    }


def dp_count(count: int, *, policy: DpPolicy, rng: np.random.Generator) -> DpRelease:
    """A noisy count (an integer; it can be negative, and clamping it is the caller's post-processing)."""
    if count < 0:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="a count is not negative")
    noise, description = _integer_noise(policy, 1.0, rng, 1)
    return DpRelease(count + noise[0], DpCost(policy.epsilon, policy.delta), _metadata(policy, 1.0, description))


def dp_histogram(counts: Sequence[int], *, policy: DpPolicy, rng: np.random.Generator) -> DpRelease:
    """Noisy bin counts, each record in one bin (sensitivity 1 in both L1 and L2)."""
    if any(c < 0 for c in counts):
        raise InputError(ErrorCode.INVALID_REQUEST, detail="a count is not negative")
    noise, description = _integer_noise(policy, 1.0, rng, len(counts))
    values = tuple(c + n for c, n in zip(counts, noise, strict=True))
    return DpRelease(values, DpCost(policy.epsilon, policy.delta), _metadata(policy, 1.0, description))


def _clipped_sum(values: Sequence[float], lower: float, upper: float) -> tuple[float, float]:
    if not (math.isfinite(lower) and math.isfinite(upper)) or lower > upper:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the declared bounds must be finite with lower <= upper")
    array = np.clip(np.asarray(values, dtype=float), lower, upper)
    sensitivity = max(abs(lower), abs(upper))
    if sensitivity == 0:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the declared bounds must not both be zero")
    return float(array.sum()), sensitivity


def _continuous_noise(policy: DpPolicy, sensitivity: float, rng: np.random.Generator) -> tuple[float, str]:
    if policy.mechanism == "laplace":
        scale = laplace_scale(sensitivity, policy.epsilon)
        return float(rng.laplace(0.0, scale)), f"laplace(scale={scale:.6g})"
    sigma = gaussian_sigma(sensitivity, policy.epsilon, policy.delta)
    return float(rng.normal(0.0, sigma)), f"gaussian(sigma={sigma:.6g})"


def dp_sum(
    values: Sequence[float], *, lower: float, upper: float, policy: DpPolicy, rng: np.random.Generator
) -> DpRelease:
    """A noisy sum of ``values`` clipped to the declared ``[lower, upper]``."""
    total, sensitivity = _clipped_sum(values, lower, upper)
    noise, description = _continuous_noise(policy, sensitivity, rng)
    return DpRelease(total + noise, DpCost(policy.epsilon, policy.delta), _metadata(policy, sensitivity, description))


def dp_mean(
    values: Sequence[float], *, lower: float, upper: float, policy: DpPolicy, rng: np.random.Generator
) -> DpRelease:
    """A noisy mean: a noisy clipped sum over a noisy count, each with half the epsilon and delta."""
    half = DpPolicy(mechanism=policy.mechanism, epsilon=policy.epsilon / 2, delta=policy.delta / 2)
    noisy_sum = dp_sum(values, lower=lower, upper=upper, policy=half, rng=rng)
    noisy_count = dp_count(len(values), policy=half, rng=rng)
    mean = min(max(float(noisy_sum.value) / max(int(noisy_count.value), 1), lower), upper)
    metadata = _metadata(policy, float(max(abs(lower), abs(upper))), "sum and count, each with half the budget")
    metadata["parameters"]["parts"] = [noisy_sum.metadata["parameters"], noisy_count.metadata["parameters"]]
    return DpRelease(mean, DpCost(policy.epsilon, policy.delta), metadata)
