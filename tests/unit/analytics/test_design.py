"""Models refuse saturated, too-small and rank-deficient designs with a clear reason, before fitting.

The rules apply to the pooled design (merged sums only); the per-node rule refuses a node with
1..p rows (or fewer than ``min_rows_per_node``) and lets a node without rows contribute nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from common.analytics.glm import GlmResult, start_glm, step_glm
from common.analytics.local import run_local
from common.errors import ErrorCode, InputError, InternalError

COVARIATES: list[dict[str, Any]] = [{"column": "x1"}, {"column": "x2"}, {"column": "x3"}]  # p = 4 with intercept


def _node(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.standard_normal((rows, 4)), columns=["y", "x1", "x2", "x3"])


def _refusal(nodes: list[pd.DataFrame], **extra: Any) -> InputError:
    params = {"family": "gaussian", "response": "y", "covariates": COVARIATES, **extra}
    with pytest.raises(InputError) as caught:
        run_local("glm", params, nodes)
    return caught.value


def test_saturated_pooled_design_is_refused() -> None:
    """Pooled rows equal to the parameters (two nodes of two rows, p = 4) leave no residual df: refused."""
    error = _refusal([_node(2, 1), _node(2, 2)], min_rows_per_node=1)
    assert error.code is ErrorCode.DESIGN_REFUSED
    assert error.hints == ("design: saturated (complete rows equal its 4 parameters; no residual degrees of freedom)",)


def test_too_small_pooled_design_is_refused() -> None:
    """Fewer pooled rows than parameters is refused as too small."""
    error = _refusal([_node(1, 1), _node(2, 2)], min_rows_per_node=1)
    assert error.code is ErrorCode.DESIGN_REFUSED
    assert error.hints == ("design: too small (fewer complete rows than its 4 parameters)",)


def test_no_rows_anywhere_is_too_small() -> None:
    """When no node has a complete row the pooled design is too small."""
    empty = _node(3, 1).assign(y=np.nan)
    assert _refusal([empty, empty]).hints == ("design: too small (fewer complete rows than its 4 parameters)",)


def test_a_node_with_too_few_rows_refuses() -> None:
    """A node with 1..p complete rows refuses by default, even when the pooled design is large."""
    error = _refusal([_node(100, 1), _node(4, 2)])
    assert error.code is ErrorCode.DESIGN_REFUSED
    assert error.hints == ("node rows: fewer than the per-node minimum of 5 for 4 parameters",)
    raised = _refusal([_node(100, 1), _node(30, 2)], min_rows_per_node=50)
    assert raised.hints == ("node rows: fewer than the per-node minimum of 50 for 4 parameters",)


def test_a_node_without_rows_contributes_nothing() -> None:
    """An empty node (all rows incomplete) leaves the fit equal to the fit without it."""
    nodes = [_node(40, 1), _node(30, 2)]
    empty = _node(5, 3).assign(x2=np.nan)
    params = {"family": "gaussian", "response": "y", "covariates": COVARIATES}
    with_empty = run_local("glm", params, [*nodes, empty])
    without = run_local("glm", params, nodes)
    assert isinstance(with_empty, GlmResult)
    assert isinstance(without, GlmResult)
    assert with_empty.params == without.params
    assert with_empty.nobs == 70


def test_rank_deficient_design_names_the_dependent_column() -> None:
    """A covariate that is a combination of others (x3 = x1 + 2 x2) is refused and named."""
    nodes = [_node(40, 1), _node(30, 2)]
    nodes = [n.assign(x3=n["x1"] + 2 * n["x2"]) for n in nodes]
    error = _refusal(nodes)
    assert error.code is ErrorCode.DESIGN_REFUSED
    assert error.hints == ("design: rank 3 < 4 parameters", "x3: linear combination of earlier columns")


def test_rank_is_judged_on_the_pooled_design_not_per_node() -> None:
    """Each node constant in x1 (locally rank-deficient with the intercept) is fine when x1 varies pooled."""
    nodes = [_node(40, 1).assign(x1=0.0), _node(30, 2).assign(x1=1.0)]
    result = run_local("glm", {"family": "gaussian", "response": "y", "covariates": COVARIATES}, nodes)
    assert isinstance(result, GlmResult)
    assert result.converged


def test_categorical_levels_are_declared_and_reference_is_the_first() -> None:
    """A declared level absent from every node makes an all-zero column: refused as rank-deficient."""
    frame = _node(50, 4).assign(group=np.arange(50) % 2)
    params = {
        "family": "gaussian",
        "response": "y",
        "covariates": [{"column": "group", "levels": [0, 1, 2]}],
    }
    with pytest.raises(InputError) as caught:
        run_local("glm", params, [frame])
    assert caught.value.hints[1:] == ("group[2]: linear combination of earlier columns",)


def test_a_malformed_partial_is_an_invalid_partial() -> None:
    """A node reply of the wrong shape stops the coordinator with INVALID_PARTIAL, naming the node."""
    params = {"family": "gaussian", "response": "y", "covariates": COVARIATES}
    state, _ = start_glm(params)
    good = {"n": 10, "sum_y": 1.0, "gram": np.eye(4).tolist()}
    with pytest.raises(InternalError) as caught:
        step_glm(params, state, [good, {"n": 10, "sum_y": 1.0, "gram": np.eye(3).tolist()}])
    assert caught.value.code is ErrorCode.INVALID_PARTIAL
    assert caught.value.hints == ("node[1].gram: wrong length",)
    with pytest.raises(InternalError) as caught:
        step_glm(params, state, [good, {"n": -1, "sum_y": 1.0, "gram": []}])
    assert caught.value.hints[0].startswith("node[1].n:")
