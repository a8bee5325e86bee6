"""Wald inference shared by the regression models (GLM and Cox).

Both fit coefficients ``beta`` with a covariance ``cov`` on the coordinator and report them the way
statsmodels does: standard errors from the diagonal, z statistics, two-sided normal p-values and normal
confidence intervals at ``1 - alpha``. One function computes them so the two models cannot drift apart.
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["WaldColumns", "wald_columns"]


class WaldColumns(TypedDict):
    """The result fields every regression model shares, as lists for its JSON result."""

    params: list[float]
    bse: list[float]
    zvalues: list[float]
    pvalues: list[float]
    conf_int_lower: list[float]
    conf_int_upper: list[float]
    cov_params: list[list[float]]


def wald_columns(beta: npt.NDArray[np.floating[Any]], cov: npt.NDArray[np.floating[Any]], alpha: float) -> WaldColumns:
    """Coefficients, standard errors, z, p-values, ``1 - alpha`` intervals and the covariance."""
    bse = np.sqrt(np.diag(cov))
    z = beta / bse
    q = float(stats.norm.ppf(1 - alpha / 2))
    return WaldColumns(
        params=beta.tolist(),
        bse=bse.tolist(),
        zvalues=z.tolist(),
        pvalues=(2 * stats.norm.sf(np.abs(z))).tolist(),
        conf_int_lower=(beta - q * bse).tolist(),
        conf_int_upper=(beta + q * bse).tolist(),
        cov_params=cov.tolist(),
    )
