"""Federated IRLS equals statsmodels GLM on the pooled rows: coefficients and standard errors to 1e-6.

The fixed models of the issue: binomial ``num > 0`` on FLamby's 13 heart features (cp and restecg
one-hot, first level dropped), gaussian ``thalach ~ age + sex + trestbps``, and poisson encounters per
patient ``~ age + sex`` on the Synthea bundles split over 3 nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm  # type: ignore[import-untyped]  # no stubs or py.typed

from common.analytics.glm import GlmResult
from common.analytics.local import run_local
from tests.unit.analytics.reference import HEART_FEATURES, as_float, max_relative_error, pooled

TOLERANCE = 1e-6


def _reference_design(table: pd.DataFrame, numeric: list[str], categorical: dict[str, list[int]]) -> pd.DataFrame:
    """The pooled design as the researcher would build it for statsmodels: intercept, columns, dummies."""
    design = pd.DataFrame({"Intercept": 1.0}, index=table.index)
    for column in numeric:
        design[column] = table[column]
    for column, levels in categorical.items():
        for level in levels[1:]:
            design[f"{column}[{level}]"] = (table[column] == level).astype(float)
    return design


def _assert_matches(result: GlmResult, reference: Any, names: list[str]) -> None:
    assert result.names == names
    assert result.converged
    assert reference.converged
    assert result.iterations == reference.fit_history["iteration"]
    assert max_relative_error(result.params, reference.params[names]) <= TOLERANCE
    assert max_relative_error(result.bse, reference.bse[names]) <= TOLERANCE
    interval = reference.conf_int().loc[names]
    assert max_relative_error(result.conf_int_lower, interval[0]) <= TOLERANCE
    assert max_relative_error(result.conf_int_upper, interval[1]) <= TOLERANCE
    assert max_relative_error(result.deviance, reference.deviance) <= 1e-9
    assert max_relative_error(result.scale, reference.scale) <= 1e-9
    assert (result.nobs, result.df_resid) == (reference.nobs, reference.df_resid)


def test_binomial_on_flamby_heart_features_equals_statsmodels(heart_nodes: list[pd.DataFrame]) -> None:
    """Logistic regression of num > 0 on the 13 features over 4 hospitals equals statsmodels on the pool."""
    params = {"family": "binomial", "response": "num", "response_above": 0, "covariates": HEART_FEATURES}
    result = run_local("glm", params, heart_nodes)
    assert isinstance(result, GlmResult)
    columns = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak", "num"]
    table = as_float(pooled(heart_nodes)[columns]).dropna()
    design = _reference_design(
        table,
        ["age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak"],
        {"cp": [1, 2, 3, 4], "restecg": [0, 1, 2]},
    )
    reference = sm.GLM((table["num"] > 0).astype(float), design, family=sm.families.Binomial()).fit()
    names = ["Intercept", "age", "sex", "cp[2]", "cp[3]", "cp[4]", "trestbps", "chol", "fbs"]
    names += ["restecg[1]", "restecg[2]", "thalach", "exang", "oldpeak"]
    assert len(names) == 1 + 13
    _assert_matches(result, reference, names)
    assert result.nobs == 303 + 261 + 0 + 97  # Switzerland has no cholesterol: it contributes no row


def test_gaussian_thalach_equals_statsmodels(heart_nodes: list[pd.DataFrame]) -> None:
    """thalach ~ age + sex + trestbps: coefficients, errors and the Pearson scale equal statsmodels'."""
    covariates = [{"column": "age"}, {"column": "sex"}, {"column": "trestbps"}]
    result = run_local("glm", {"family": "gaussian", "response": "thalach", "covariates": covariates}, heart_nodes)
    assert isinstance(result, GlmResult)
    table = as_float(pooled(heart_nodes)[["thalach", "age", "sex", "trestbps"]]).dropna()
    design = _reference_design(table, ["age", "sex", "trestbps"], {})
    reference = sm.GLM(table["thalach"], design, family=sm.families.Gaussian()).fit()
    _assert_matches(result, reference, ["Intercept", "age", "sex", "trestbps"])
    ols = sm.OLS(table["thalach"], design).fit()
    assert max_relative_error(result.params, ols.params) <= 1e-9


def test_poisson_encounters_on_synthea_equals_statsmodels(synthea_nodes: list[pd.DataFrame]) -> None:
    """Encounters per patient ~ age + sex over 3 Synthea sites equals statsmodels' Poisson GLM."""
    covariates = [{"column": "age"}, {"column": "sex"}]
    result = run_local("glm", {"family": "poisson", "response": "encounters", "covariates": covariates}, synthea_nodes)
    assert isinstance(result, GlmResult)
    table = pooled(synthea_nodes)
    design = _reference_design(table, ["age", "sex"], {})
    reference = sm.GLM(table["encounters"], design, family=sm.families.Poisson()).fit()
    _assert_matches(result, reference, ["Intercept", "age", "sex"])
    assert [len(n) for n in synthea_nodes] == [10, 5, 9]


def test_glm_partials_hold_only_sums_of_fixed_size(heart_nodes: list[pd.DataFrame]) -> None:
    """A node's IRLS reply is p x p and p numbers plus scalars, whatever its number of rows."""
    from common.analytics.glm import answer_glm

    params = {"family": "binomial", "response": "num", "response_above": 0, "covariates": HEART_FEATURES}
    partial = answer_glm(heart_nodes[0], params, {"stage": "irls", "beta": [0.0] * 14})
    assert set(partial) == {"n", "deviance", "pearson_chi2", "xtwx", "xtwz"}
    assert np.asarray(partial["xtwx"]).shape == (14, 14)
    assert len(partial["xtwz"]) == 14


@pytest.mark.parametrize(
    ("family", "values", "hint"),
    [("binomial", [0.0, 2.0], "y: value(s) outside [0, 1]"), ("poisson", [1.0, -1.0], "y: negative value(s)")],
)
def test_responses_outside_the_family_domain_are_refused(family: str, values: list[float], hint: str) -> None:
    """A binomial response outside [0, 1] or a negative poisson count is refused by the node."""
    from common.errors import ErrorCode, InputError

    frame = pd.DataFrame({"y": values * 5, "x": np.arange(10.0)})
    with pytest.raises(InputError) as caught:
        run_local("glm", {"family": family, "response": "y", "covariates": [{"column": "x"}]}, [frame])
    assert caught.value.code is ErrorCode.DATA_OUTSIDE_DECLARED
    assert caught.value.hints == (hint,)
