"""Federated Cox (Breslow, stratified by node) equals statsmodels PHReg(ties='breslow', strata=node).

TCGA over FLamby's 6 regions, with a declared full-rank subset of the 39 features; the full 39-column
design is refused as rank-deficient.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.duration.hazard_regression import PHReg  # type: ignore[import-untyped]  # no stubs

from common.analytics.cox import CoxResult, answer_cox
from common.analytics.local import run_local
from common.errors import ErrorCode, InputError
from tests.unit.analytics.reference import COX_FEATURES, max_relative_error, pooled_with_strata

TOLERANCE = 1e-6


def test_cox_stratified_by_node_equals_statsmodels(tcga_nodes: list[pd.DataFrame]) -> None:
    """Log hazard ratios, standard errors, intervals and log likelihood equal PHReg with strata=node."""
    params = {"time": "T", "event": "E", "covariates": [{"column": c} for c in COX_FEATURES]}
    result = run_local("cox", params, tcga_nodes)
    assert isinstance(result, CoxResult)
    table = pooled_with_strata(tcga_nodes, ["T", "E", *COX_FEATURES])
    reference = PHReg(table["T"], table[COX_FEATURES], status=table["E"], ties="breslow", strata=table["node"]).fit()
    assert result.converged
    assert result.names == COX_FEATURES
    assert max_relative_error(result.params, reference.params) <= TOLERANCE
    assert max_relative_error(result.bse, reference.bse) <= TOLERANCE
    interval = reference.conf_int()
    assert max_relative_error(result.conf_int_lower, interval[:, 0]) <= TOLERANCE
    assert max_relative_error(result.conf_int_upper, interval[:, 1]) <= TOLERANCE
    assert max_relative_error(result.loglik, reference.llf) <= 1e-10
    assert (result.nobs, result.events, result.strata) == (1088, 151, 6)


def test_cox_node_reply_reveals_no_times(tcga_nodes: list[pd.DataFrame]) -> None:
    """A node's Newton reply is a log likelihood, a p-vector and a p x p matrix: no event times in it."""
    params = {"time": "T", "event": "E", "covariates": [{"column": c} for c in COX_FEATURES]}
    reply = answer_cox(tcga_nodes[0], params, {"stage": "newton", "beta": [0.1] * len(COX_FEATURES)})
    assert set(reply) == {"n", "loglik", "score", "information"}
    assert np.asarray(reply["information"]).shape == (10, 10)


def test_full_tcga_design_is_refused_as_rank_deficient(tcga_nodes: list[pd.DataFrame]) -> None:
    """All 39 features have rank 32: the duplicated one-hot groups are named, and nothing is fitted."""
    features = [c for c in tcga_nodes[0].columns if c not in {"pid", "E", "T"}]
    assert len(features) == 39
    params = {"time": "T", "event": "E", "covariates": [{"column": c} for c in features]}
    with pytest.raises(InputError) as caught:
        run_local("cox", params, tcga_nodes)
    assert caught.value.code is ErrorCode.DESIGN_REFUSED
    assert caught.value.hints[0] == "design: rank 32 < 39 parameters"
    dependent = {hint.split(":")[0] for hint in caught.value.hints[1:]}
    assert dependent == {
        "primary_diagnosis_Infiltrating duct carcinoma, NOS",
        "primary_diagnosis_Lobular carcinoma, NOS",
        "tumor_stage_stage ia",
        "tumor_stage_stage iia",
        "tumor_stage_stage iib",
        "tumor_stage_stage iiia",
        "tumor_stage_stage iiic",
    }


def test_a_covariate_constant_within_every_node_is_refused(tcga_nodes: list[pd.DataFrame]) -> None:
    """A per-node constant has no effect in a model stratified by node: the within-node rank rule refuses it."""
    nodes = [n.assign(site_code=float(i)) for i, n in enumerate(tcga_nodes)]
    params = {"time": "T", "event": "E", "covariates": [{"column": "age_at_index"}, {"column": "site_code"}]}
    with pytest.raises(InputError) as caught:
        run_local("cox", params, nodes)
    assert caught.value.hints[1] == "site_code: linear combination of earlier columns"


def test_cox_without_events_is_refused() -> None:
    """A design with no events anywhere is refused before any Newton step."""
    frame = pd.DataFrame({"t": np.arange(1.0, 21.0), "e": 0.0, "x": np.arange(20.0) % 3})
    with pytest.raises(InputError) as caught:
        run_local("cox", {"time": "t", "event": "e", "covariates": [{"column": "x"}]}, [frame])
    assert caught.value.hints == ("design: no events",)
