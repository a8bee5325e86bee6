"""Rényi-DP accounting of the sampled Gaussian mechanism: the epsilon of DP-SGD and of central DP.

DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy") releases, at every step, the sum
of per-example gradients clipped to norm ``C`` plus Gaussian noise of standard deviation ``sigma * C``,
over a minibatch in which each row takes part independently with probability ``q`` (Poisson sampling).
One step is the *sampled Gaussian mechanism* (SGM) with sensitivity 1 and noise multiplier ``sigma``.

**One step, in Rényi DP** (Mironov 2017, "Rényi Differential Privacy"; the SGM bound of Mironov, Talwar
& Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism", Section 3.3). With
``mu0 = N(0, sigma^2)``, ``mu1 = N(1, sigma^2)`` and ``mu = (1 - q) mu0 + q mu1``, the SGM is
``(alpha, eps(alpha))``-RDP for every order ``alpha > 1`` with::

    eps(alpha) = log(A_alpha) / (alpha - 1),    A_alpha = E_{z ~ mu0} [ (mu(z) / mu0(z))^alpha ]

For an integer order the expectation has the closed form
``A_alpha = sum_{k=0..alpha} C(alpha, k) (1 - q)^(alpha - k) q^k exp((k^2 - k) / (2 sigma^2))``, summed
here in log space. For a fractional order it is computed by adaptive quadrature of
``log mu0(z) + alpha log((1 - q) + q exp((2z - 1) / (2 sigma^2)))`` in log space: every maximum of that
integrand lies in ``[0, alpha]`` and its tails fall off at least as fast as ``mu0``'s, so the integral over
``[-40 sigma - 1, alpha + 40 sigma + 1]`` misses nothing representable. With ``q = 1`` (no sampling,
central DP without amplification) ``eps(alpha) = alpha / (2 sigma^2)``.

**Composition and conversion.** RDP adds up over steps at each order. ``T`` steps are
``(epsilon, delta)``-DP with (Mironov 2017, Proposition 3)::

    epsilon = min over alpha of  T * eps(alpha) + log(1 / delta) / (alpha - 1)

taken over :data:`DEFAULT_ORDERS` (1.25 to 256). This is the conversion behind Abadi et al.'s figure
(q = 0.01, sigma = 4, 10,000 steps, delta = 1e-5: epsilon 1.26) and TensorFlow Privacy's accountant; the
tighter conversions published since would report a little less, so the figure here errs on the safe side.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from scipy import integrate, special

__all__ = ["DEFAULT_ORDERS", "dp_sgd_epsilon", "epsilon_from_rdp", "sgm_rdp"]

DEFAULT_ORDERS: tuple[float, ...] = (
    1.25,
    1.5,
    1.75,
    2.0,
    2.25,
    2.5,
    3.0,
    3.5,
    4.0,
    4.5,
    *(float(order) for order in range(5, 64)),
    64.0,
    80.0,
    96.0,
    128.0,
    192.0,
    256.0,
)
"""The Rényi orders the conversion minimises over."""


def _log_a_integer(q: float, sigma: float, alpha: int) -> float:
    k = np.arange(alpha + 1, dtype=np.float64)
    log_binomial = special.gammaln(alpha + 1) - special.gammaln(k + 1) - special.gammaln(alpha - k + 1)
    with np.errstate(divide="ignore"):
        terms = log_binomial + (alpha - k) * np.log1p(-q) + k * math.log(q) + (k * k - k) / (2 * sigma * sigma)
    return float(special.logsumexp(terms))


def _log_a_fractional(q: float, sigma: float, alpha: float) -> float:
    low, high = -40 * sigma - 1, alpha + 40 * sigma + 1
    log_keep, log_q = math.log1p(-q), math.log(q)

    def log_integrand(z: np.ndarray) -> np.ndarray:
        log_ratio = np.logaddexp(log_keep, log_q + (2 * z - 1) / (2 * sigma * sigma))
        out: np.ndarray = -z * z / (2 * sigma * sigma) - math.log(sigma * math.sqrt(2 * math.pi)) + alpha * log_ratio
        return out

    points = int(min(200_000, max(2001, (high - low) / (sigma / 4))))
    grid = np.linspace(low, high, points)
    values = log_integrand(grid)
    peak = float(values.max())
    is_max = np.r_[False, (values[1:-1] >= values[:-2]) & (values[1:-1] >= values[2:]), False]
    breaks = sorted({float(z) for z in grid[is_max][:20]})

    def scaled(z: float) -> float:
        return float(np.exp(log_integrand(np.array([z]))[0] - peak))

    value, _ = integrate.quad(scaled, low, high, points=breaks or None, limit=500, epsabs=0.0, epsrel=1e-11)
    return peak + math.log(value)


@functools.lru_cache(maxsize=256)
def _sgm_rdp_cached(q: float, sigma: float, orders: tuple[float, ...]) -> tuple[float, ...]:
    out = []
    for alpha in orders:
        if q == 0:
            out.append(0.0)
        elif q == 1:
            out.append(alpha / (2 * sigma * sigma))
        elif float(alpha).is_integer():
            out.append(_log_a_integer(q, sigma, int(alpha)) / (alpha - 1))
        else:
            out.append(_log_a_fractional(q, sigma, alpha) / (alpha - 1))
    return tuple(out)


def sgm_rdp(q: float, sigma: float, orders: Sequence[float] = DEFAULT_ORDERS) -> np.ndarray:
    """The RDP of one step of the sampled Gaussian mechanism at each order (see the module docstring)."""
    if not 0 <= q <= 1 or not math.isfinite(q):
        raise ValueError("the sampling rate q must lie in [0, 1]")
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError("the noise multiplier must be positive and finite")
    if any(not alpha > 1 for alpha in orders):
        raise ValueError("Rényi orders must be above 1")
    return np.array(_sgm_rdp_cached(float(q), float(sigma), tuple(float(a) for a in orders)))


def epsilon_from_rdp(rdp: np.ndarray, delta: float, orders: Sequence[float] = DEFAULT_ORDERS) -> tuple[float, float]:
    """``(epsilon, best order)`` of a composed RDP curve at ``delta`` (Mironov 2017, Proposition 3)."""
    if not 0 < delta < 1:
        raise ValueError("delta must lie in (0, 1)")
    order_array = np.asarray(orders, dtype=np.float64)
    epsilons = np.asarray(rdp, dtype=np.float64) + math.log(1 / delta) / (order_array - 1)
    best = int(np.nanargmin(epsilons))
    return float(epsilons[best]), float(order_array[best])


def dp_sgd_epsilon(
    *, q: float, sigma: float, steps: int, delta: float, orders: Sequence[float] = DEFAULT_ORDERS
) -> float:
    """The epsilon (at ``delta``) of ``steps`` DP-SGD steps with Poisson rate ``q`` and noise multiplier ``sigma``."""
    if steps < 0:
        raise ValueError("steps must be non-negative")
    if steps == 0:
        return 0.0
    return epsilon_from_rdp(steps * sgm_rdp(q, sigma, orders), delta, orders)[0]
