"""The RDP accountant of the sampled Gaussian mechanism against published figures and its own closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from common.privacy.rdp import _log_a_fractional, _log_a_integer, dp_sgd_epsilon, epsilon_from_rdp, sgm_rdp

TF_PRIVACY_ORDERS: tuple[float, ...] = (1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0)
TF_PRIVACY_ORDERS += (14.0, 16.0, 20.0, 24.0, 28.0, 32.0, 64.0, 256.0)


def test_abadis_figure_q001_sigma4_10k_steps_is_epsilon_1_26_at_delta_1e5() -> None:
    """Abadi et al. 2016 (section 3.1) report epsilon 1.26 for q = 0.01, sigma = 4, 10,000 steps, delta 1e-5;
    TensorFlow Privacy's accountant test pins it at 1.258575 over orders 2..32, reached at order 20."""
    orders = tuple(float(order) for order in range(2, 33))
    epsilon, order = epsilon_from_rdp(10_000 * sgm_rdp(0.01, 4.0, orders), 1e-5, orders)
    assert epsilon == pytest.approx(1.258575, abs=1e-5)
    assert order == 20
    assert dp_sgd_epsilon(q=0.01, sigma=4.0, steps=10_000, delta=1e-5) == pytest.approx(1.26, abs=0.005)


def test_the_mnist_tutorial_setting_gives_tf_privacys_published_epsilon_3_01() -> None:
    """TensorFlow Privacy's MNIST tutorial (N 60,000, batch 256, sigma 1.1, 60 epochs, delta 1e-5) states
    epsilon = 3.01; this accountant gives the same to two decimals."""
    steps = math.ceil(60 * 60_000 / 256)
    assert dp_sgd_epsilon(q=256 / 60_000, sigma=1.1, steps=steps, delta=1e-5) == pytest.approx(3.01, abs=0.005)


def test_composed_mechanisms_over_fractional_orders_match_tf_privacys_figure() -> None:
    """(q 0.01, sigma 4, 10,000 steps) then (q 0.1, sigma 2, 100 steps) over orders 1.25..256: epsilon 3.276237
    at order 8 (TensorFlow Privacy's accountant test), which exercises the fractional orders."""
    rdp = 10_000 * sgm_rdp(0.01, 4.0, TF_PRIVACY_ORDERS) + 100 * sgm_rdp(0.1, 2.0, TF_PRIVACY_ORDERS)
    epsilon, order = epsilon_from_rdp(rdp, 1e-5, TF_PRIVACY_ORDERS)
    assert epsilon == pytest.approx(3.276237, abs=1e-5)
    assert order == 8


def test_rdp_values_at_single_orders_match_published_values() -> None:
    """RDP of 10 steps at q 0.1, sigma 2, order 5 is 0.07737; 50 steps at q 0.01, sigma 2.5 at orders
    1.5, 2.5, 5, 50, 100 are 0.00065, 0.001085, 0.00218075, 0.023846, 167.416307."""
    assert 10 * sgm_rdp(0.1, 2.0, [5.0])[0] == pytest.approx(0.07737, abs=1e-5)
    got = 50 * sgm_rdp(0.01, 2.5, [1.5, 2.5, 5.0, 50.0, 100.0])
    np.testing.assert_allclose(got, [0.00065, 0.001085, 0.00218075, 0.023846, 167.416307], rtol=1e-3)


@pytest.mark.parametrize(("q", "sigma", "order"), [(0.01, 1.1, 7), (0.3, 0.5, 20), (0.1, 1.0, 5), (0.999, 0.1, 256)])
def test_the_quadrature_for_fractional_orders_agrees_with_the_closed_form_at_integer_orders(
    q: float, sigma: float, order: int
) -> None:
    """Integrating ``E[(mu/mu0)^alpha]`` numerically gives the binomial closed form to 1e-9 relative."""
    assert _log_a_fractional(q, sigma, float(order)) == pytest.approx(_log_a_integer(q, sigma, order), rel=1e-9)


def test_without_sampling_each_step_is_the_gaussian_mechanism_alpha_over_two_sigma_squared() -> None:
    """q = 1 (central DP without amplification): the RDP of one release is alpha / (2 sigma^2)."""
    orders = (1.5, 2.0, 32.0)
    np.testing.assert_allclose(sgm_rdp(1.0, 2.0, orders), [order / 8 for order in orders])


def test_epsilon_grows_with_steps_and_falls_with_noise() -> None:
    """More steps cost more epsilon, more noise less; no step costs nothing."""
    assert dp_sgd_epsilon(q=0.05, sigma=1.0, steps=0, delta=1e-5) == 0.0
    few = dp_sgd_epsilon(q=0.05, sigma=1.0, steps=100, delta=1e-5)
    many = dp_sgd_epsilon(q=0.05, sigma=1.0, steps=200, delta=1e-5)
    quieter = dp_sgd_epsilon(q=0.05, sigma=2.0, steps=200, delta=1e-5)
    assert 0 < few < many
    assert quieter < many


def test_bad_parameters_are_refused() -> None:
    """A sampling rate outside [0, 1], a non-positive noise multiplier or an order of 1 is a ValueError."""
    with pytest.raises(ValueError, match="sampling rate"):
        sgm_rdp(1.5, 1.0)
    with pytest.raises(ValueError, match="noise multiplier"):
        sgm_rdp(0.1, 0.0)
    with pytest.raises(ValueError, match="orders"):
        sgm_rdp(0.1, 1.0, [1.0])
