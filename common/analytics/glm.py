"""Generalised linear models by exact federated IRLS (gaussian, binomial, poisson; canonical links).

The fit is statsmodels' ``GLM(...).fit()`` (method IRLS) done with sums: each node returns, for the
current coefficients, ``X'WX``, ``X'Wz``, its deviance and Pearson chi2 over its complete rows; the
coordinator adds them up and solves the weighted least-squares step. Rows never leave a node. The
conventions mirror statsmodels so results agree to rounding (tests: relative 1e-6, typically 1e-10):

* links: identity (gaussian), logit (binomial), log (poisson);
* start: ``mu = (y + mean(y)) / 2`` (``(y + 0.5) / 2`` for binomial), with the **pooled** mean from the
  design round, then ``eta = g(mu)``; no start coefficients;
* iteration: ``beta = (X'WX)^-1 X'Wz``, ``W = 1 / (g'(mu)^2 V(mu))``, ``z = eta + g'(mu)(y - mu)``;
* convergence: statsmodels' criterion, the deviance divided by the scale of the step before
  (``D(mu_k) / scale(mu_{k-1})``; the scale is 1 except for gaussian, so this is the plain deviance for
  binomial and poisson), converged when two successive values differ by at most ``tol = 1e-8``
  (absolute: ``atol=1e-8, rtol=0``); at most ``max_iter = 100`` updates; a fit that runs out is
  returned with ``converged = False`` (statsmodels warns and does the same). Gaussian therefore takes
  3 updates like statsmodels, though the first is already the least-squares solution;
* scale: 1 for binomial and poisson; Pearson chi2 / ``df_resid`` for gaussian;
* covariance: ``scale * (X'WX)^-1`` with the weights of the last update (statsmodels'
  ``normalized_cov_params``), Wald z statistics, normal confidence intervals at ``1 - alpha``.

Rounds: one design round (``n``, ``sum y``, ``X'X`` for the refusal rules of
:mod:`common.analytics.design`), then one IRLS round per update plus the one that confirms convergence.
The coordinator learns the pooled and per-node sums named above, never rows; nodes learn the
coefficients, the pooled mean of ``y`` and nothing about one another.

A binomial response must lie in [0, 1] and a poisson response be non-negative; the node refuses
other values (``DATA_OUTSIDE_DECLARED``). ``response_above`` turns a numeric column into a 0/1 response
(``num > 0``).

The node builds its design matrix once per job, not once per round: :func:`answer_glm` keeps ``(X, y)``
for the frame object it was given and the parameters, for as long as that frame lives (the node's
``analysis`` app hands every step of a job the same pinned cohort frame; frames are never changed in
place). At 100k rows this saves the 0.2-0.3 s a rebuild costs in every IRLS round.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, NonNegativeInt
from scipy import special

from common.analytics.design import (
    Covariates,
    check_node_rows,
    check_pooled_design,
    complete_rows,
    design_matrix,
    design_names,
)
from common.analytics.params import (
    AnalysisModel,
    FloatArray,
    numeric_column,
    parse_params,
    parse_partials,
    parse_request,
    sum_matrices,
    sum_vectors,
)
from common.analytics.wald import wald_columns
from common.errors import ErrorCode, InputError, InternalError

__all__ = [
    "GlmParams",
    "GlmRequest",
    "GlmResult",
    "GlmState",
    "answer_glm",
    "start_glm",
    "step_glm",
]

Family = Literal["gaussian", "binomial", "poisson"]


class GlmParams(AnalysisModel):
    """A GLM of ``response`` on ``covariates`` (plus an intercept unless ``intercept`` is false)."""

    family: Family
    response: str = Field(min_length=1)
    response_above: float | None = None
    covariates: Covariates = Field(max_length=500)
    intercept: bool = True
    max_iter: int = Field(default=100, ge=1, le=1000)
    tol: float = Field(default=1e-8, gt=0, lt=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_rows_per_node: int | None = Field(default=None, ge=1)

    def names(self) -> list[str]:
        """The coefficient names, in order."""
        return design_names(self.covariates, intercept=self.intercept)


class GlmRequest(AnalysisModel):
    """A round: the design sums, or an IRLS update at ``beta`` (``None``: at the starting ``mu``)."""

    stage: Literal["design", "irls"]
    beta: list[float] | None = None
    y_mean: float | None = None


class GlmDesignPartial(AnalysisModel):
    """One node's design sums."""

    n: NonNegativeInt
    sum_y: float
    gram: list[list[float]]


class GlmIrlsPartial(AnalysisModel):
    """One node's IRLS sums at the requested coefficients."""

    n: NonNegativeInt
    deviance: float
    pearson_chi2: float
    xtwx: list[list[float]]
    xtwz: list[float]


class GlmState(AnalysisModel):
    """The coordinator's IRLS state (JSON-serialisable, so a job can resume)."""

    stage: Literal["design", "irls"] = "design"
    n: int = 0
    y_mean: float = 0.0
    beta: list[float] | None = None
    xtwx_used: list[list[float]] | None = None
    criterion: float | None = None
    scale: float = 1.0
    iterations: int = 0


class GlmResult(AnalysisModel):
    """The fitted model, in statsmodels' terms."""

    family: Family
    names: list[str]
    params: list[float]
    bse: list[float]
    zvalues: list[float]
    pvalues: list[float]
    conf_int_lower: list[float]
    conf_int_upper: list[float]
    cov_params: list[list[float]]
    scale: float
    deviance: float
    pearson_chi2: float
    nobs: int
    df_model: int
    df_resid: int
    iterations: int
    converged: bool


@dataclass(frozen=True, slots=True)
class _Link:
    """What IRLS needs of a family with its canonical link."""

    link: Callable[[FloatArray], FloatArray]
    inverse: Callable[[FloatArray], FloatArray]
    weight: Callable[[FloatArray], FloatArray]
    deviance: Callable[[FloatArray, FloatArray], float]
    variance: Callable[[FloatArray], FloatArray]


def _binomial_deviance(y: FloatArray, mu: FloatArray) -> float:
    return float(2 * np.sum(special.xlogy(y, y / mu) + special.xlogy(1 - y, (1 - y) / (1 - mu))))


def _poisson_deviance(y: FloatArray, mu: FloatArray) -> float:
    return float(2 * np.sum(special.xlogy(y, y / mu) - (y - mu)))


_FAMILIES: dict[str, _Link] = {
    "gaussian": _Link(
        link=lambda mu: mu,
        inverse=lambda eta: eta,
        weight=lambda mu: np.ones_like(mu),
        deviance=lambda y, mu: float(np.sum((y - mu) ** 2)),
        variance=lambda mu: np.ones_like(mu),
    ),
    "binomial": _Link(
        link=special.logit,
        inverse=special.expit,
        weight=lambda mu: mu * (1 - mu),
        deviance=_binomial_deviance,
        variance=lambda mu: mu * (1 - mu),
    ),
    "poisson": _Link(
        link=np.log,
        inverse=np.exp,
        weight=lambda mu: mu,
        deviance=_poisson_deviance,
        variance=lambda mu: mu,
    ),
}


def start_glm(params: GlmParams | Mapping[str, Any]) -> tuple[GlmState, GlmRequest]:
    """Coordinator: the first round asks for the design sums."""
    parse_params(GlmParams, params)
    return GlmState(), GlmRequest(stage="design")


def _node_data(frame: pd.DataFrame, params: GlmParams) -> tuple[FloatArray, FloatArray]:
    columns = [params.response, *(c.column for c in params.covariates)]
    rows = complete_rows(frame, columns)
    y = numeric_column(rows, params.response)
    if params.response_above is not None:
        y = (y > params.response_above).astype(np.float64)
    if params.family == "binomial" and not ((y >= 0) & (y <= 1)).all():
        raise InputError(
            ErrorCode.DATA_OUTSIDE_DECLARED,
            detail="binomial response outside [0, 1]",
            hints=[f"{params.response}: value(s) outside [0, 1]"],
        )
    if params.family == "poisson" and not (y >= 0).all():
        raise InputError(
            ErrorCode.DATA_OUTSIDE_DECLARED,
            detail="poisson response negative",
            hints=[f"{params.response}: negative value(s)"],
        )
    x = design_matrix(rows, params.covariates, intercept=params.intercept)
    check_node_rows(len(rows), x.shape[1], params.min_rows_per_node)
    return x, y


class _DesignCache:
    """``(X, y)`` per live frame object and parameters (see the module docstring); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # the weakref callback may run on a thread that holds it
        self._entries: dict[int, tuple[weakref.ref[pd.DataFrame], dict[str, tuple[FloatArray, FloatArray]]]] = {}

    def get(self, frame: pd.DataFrame, params: GlmParams) -> tuple[FloatArray, FloatArray]:
        key = params.model_dump_json()
        with self._lock:
            entry = self._entries.get(id(frame))
            if entry is not None and entry[0]() is frame and key in entry[1]:
                return entry[1][key]
        data = _node_data(frame, params)
        with self._lock:
            entry = self._entries.get(id(frame))
            if entry is None or entry[0]() is not frame:
                identity = id(frame)
                entry = (weakref.ref(frame, lambda _: self._forget(identity)), {})
                self._entries[identity] = entry
            entry[1][key] = data
        return data

    def _forget(self, identity: int) -> None:
        with self._lock:
            entry = self._entries.get(identity)
            if entry is not None and entry[0]() is None:
                del self._entries[identity]


_DESIGNS = _DesignCache()


def _starting_mu(family: str, y: FloatArray, y_mean: float) -> FloatArray:
    if family == "binomial":
        return (y + 0.5) / 2
    return (y + y_mean) / 2


def answer_glm(
    frame: pd.DataFrame, params: GlmParams | Mapping[str, Any], request: GlmRequest | Mapping[str, Any]
) -> dict[str, Any]:
    """Node: the design sums, or the IRLS sums at the requested coefficients."""
    params = parse_params(GlmParams, params)
    request = parse_request(GlmRequest, request)
    x, y = _DESIGNS.get(frame, params)
    if request.stage == "design":
        return GlmDesignPartial(n=len(y), sum_y=float(np.sum(y)), gram=(x.T @ x).tolist()).model_dump()
    family = _FAMILIES[params.family]
    if request.beta is None:
        if request.y_mean is None:
            raise InputError(ErrorCode.INVALID_ANALYSIS, detail="start round without y_mean", hints=["y_mean: missing"])
        mu = _starting_mu(params.family, y, request.y_mean)
        eta = family.link(mu)
    else:
        if len(request.beta) != x.shape[1]:
            raise InputError(ErrorCode.INVALID_ANALYSIS, detail="beta of the wrong size", hints=["beta: wrong length"])
        eta = x @ np.asarray(request.beta, dtype=np.float64)
        mu = family.inverse(eta)
    weight = family.weight(mu)
    z = eta + (y - mu) / weight if params.family != "gaussian" else y
    weighted = x * weight[:, None]
    return GlmIrlsPartial(
        n=len(y),
        deviance=family.deviance(y, mu),
        pearson_chi2=float(np.sum((y - mu) ** 2 / family.variance(mu))),
        xtwx=(weighted.T @ x).tolist(),
        xtwz=(weighted.T @ z).tolist(),
    ).model_dump()


def step_glm(
    params: GlmParams | Mapping[str, Any],
    state: GlmState,
    partials: Sequence[Mapping[str, Any]],
) -> tuple[GlmState, GlmRequest | GlmResult]:
    """Coordinator: refuse or accept the design, then one IRLS update per round until converged."""
    params = parse_params(GlmParams, params)
    names = params.names()
    p = len(names)
    if state.stage == "design":
        design = parse_partials(GlmDesignPartial, partials)
        n = sum(d.n for d in design)
        gram = sum_matrices([d.gram for d in design], p, "gram")
        check_pooled_design(n, gram, names)
        y_mean = sum(d.sum_y for d in design) / n
        return GlmState(stage="irls", n=n, y_mean=y_mean), GlmRequest(stage="irls", y_mean=y_mean)
    irls = parse_partials(GlmIrlsPartial, partials)
    if sum(d.n for d in irls) != state.n:
        raise InternalError(ErrorCode.INVALID_PARTIAL, detail="node row counts changed between rounds")
    xtwx = sum_matrices([d.xtwx for d in irls], p, "xtwx")
    xtwz = sum_vectors([d.xtwz for d in irls], p, "xtwz")
    deviance = sum(d.deviance for d in irls)
    pearson = sum(d.pearson_chi2 for d in irls)
    scale = _scale(params.family, pearson, state.n - p)
    if state.beta is None:
        criterion = deviance / scale
    else:
        criterion = deviance / state.scale
        converged = state.criterion is not None and abs(criterion - state.criterion) <= params.tol
        if converged or state.iterations >= params.max_iter:
            return state, _result(params, state, deviance, pearson, converged=converged)
    if not np.isfinite(xtwx).all() or not np.isfinite(xtwz).all():
        raise InternalError(ErrorCode.INTERNAL, detail="IRLS diverged (non-finite sums)")
    beta = np.linalg.solve(xtwx, xtwz)
    next_state = GlmState(
        stage="irls",
        n=state.n,
        y_mean=state.y_mean,
        beta=beta.tolist(),
        xtwx_used=xtwx.tolist(),
        criterion=criterion,
        scale=scale,
        iterations=state.iterations + 1,
    )
    return next_state, GlmRequest(stage="irls", beta=beta.tolist())


def _scale(family: Family, pearson: float, df_resid: int) -> float:
    """statsmodels' scale: Pearson chi2 / df_resid for gaussian (1 if that is 0), else 1."""
    if family != "gaussian":
        return 1.0
    scale = pearson / df_resid
    return scale if scale > 0 else 1.0


def _result(params: GlmParams, state: GlmState, deviance: float, pearson: float, *, converged: bool) -> GlmResult:
    if state.beta is None or state.xtwx_used is None:
        raise InternalError(ErrorCode.INTERNAL, detail="GLM result before any IRLS update")
    names = params.names()
    p = len(names)
    df_resid = state.n - p
    scale = _scale(params.family, pearson, df_resid)
    beta = np.asarray(state.beta)
    cov = scale * np.linalg.inv(np.asarray(state.xtwx_used))
    return GlmResult(
        family=params.family,
        names=names,
        **wald_columns(beta, cov, params.alpha),
        scale=scale,
        deviance=deviance,
        pearson_chi2=pearson,
        nobs=state.n,
        df_model=p - (1 if params.intercept else 0),
        df_resid=df_resid,
        iterations=state.iterations,
        converged=converged,
    )
