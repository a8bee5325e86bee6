"""Cox proportional hazards (Breslow ties) by federated Newton, **stratified by node**.

Model: each node is a stratum with its own baseline hazard; the log hazard ratios are shared. This is
``statsmodels PHReg(time, X, status=event, ties='breslow', strata=node)`` and the tests compare with
exactly that. The partial likelihood of a stratified model is a sum over strata, so every node computes
its own Breslow log partial likelihood, score (``p`` numbers) and information (``p x p``) at the
broadcast coefficients, and the coordinator adds them and takes a Newton step.

Why stratified: an unstratified Breslow likelihood needs, at every pooled event time, the risk-set sums
of every node, so nodes would have to be told one another's event times (or the coordinator given
per-time sums that expose single patients). Stratified by node, **no time leaves a node**: the
coordinator learns per-node counts (rows, events), the log likelihood, score and information (and the
design sums below); nodes learn only the coefficients. The FLamby regions differ in follow-up and
event rate, so a per-node baseline is also the better model for them.

Conventions (mirroring statsmodels): start at zero; Newton ``beta += I^-1 U`` with no step halving;
converged when every coefficient moves by at most ``tol = 1e-8``; at most ``max_iter = 100`` steps. One
more round evaluates the information at the final coefficients; the covariance is its inverse, with
Wald z statistics and normal confidence intervals (log hazard-ratio scale). A node's stratum without
events contributes nothing (statsmodels drops such strata too).

Design round and refusal: nodes send ``n``, events, ``sum x`` and ``X'X``; the coordinator refuses a
design with no events, ``n <= p``, or a Gram matrix **centred within each node** of rank below ``p``
(a covariate constant within every stratum has no effect to estimate). Per-node rule as in
:mod:`common.analytics.design`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, NonNegativeInt

from common.analytics.design import (
    Covariates,
    check_node_rows,
    check_pooled_design,
    complete_rows,
    design_matrix,
    design_names,
)
from common.analytics.kaplan_meier import event_indicator
from common.analytics.params import (
    AnalysisModel,
    FloatArray,
    numeric_column,
    parse_params,
    parse_partials,
    parse_request,
    sum_matrices,
    sum_vectors,
    wrong_shape,
)
from common.analytics.wald import wald_columns
from common.errors import ErrorCode, InputError, InternalError

__all__ = [
    "CoxParams",
    "CoxRequest",
    "CoxResult",
    "CoxState",
    "answer_cox",
    "breslow_terms",
    "start_cox",
    "step_cox",
]


class CoxParams(AnalysisModel):
    """A Cox model of (``time``, ``event``) on ``covariates``, stratified by node."""

    time: str = Field(min_length=1)
    event: str = Field(min_length=1)
    covariates: Covariates = Field(min_length=1, max_length=500)
    max_iter: int = Field(default=100, ge=1, le=1000)
    tol: float = Field(default=1e-8, gt=0, lt=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_rows_per_node: int | None = Field(default=None, ge=1)

    def names(self) -> list[str]:
        """The coefficient names, in order."""
        return design_names(self.covariates, intercept=False)


class CoxRequest(AnalysisModel):
    """A round: the design sums, or the likelihood terms at ``beta``."""

    stage: Literal["design", "newton"]
    beta: list[float] | None = None


class CoxDesignPartial(AnalysisModel):
    """One node's design sums."""

    n: NonNegativeInt
    events: NonNegativeInt
    x_sum: list[float]
    gram: list[list[float]]


class CoxNewtonPartial(AnalysisModel):
    """One node's (one stratum's) Breslow log likelihood, score and information at ``beta``."""

    n: NonNegativeInt
    loglik: float
    score: list[float]
    information: list[list[float]]


class CoxState(AnalysisModel):
    """The coordinator's Newton state (JSON-serialisable)."""

    stage: Literal["design", "newton", "final"] = "design"
    n: int = 0
    events: int = 0
    strata: int = 0
    beta: list[float] | None = None
    iterations: int = 0
    converged: bool = False


class CoxResult(AnalysisModel):
    """The fitted model: log hazard ratios with their standard errors."""

    names: list[str]
    params: list[float]
    bse: list[float]
    zvalues: list[float]
    pvalues: list[float]
    conf_int_lower: list[float]
    conf_int_upper: list[float]
    cov_params: list[list[float]]
    loglik: float
    nobs: int
    events: int
    strata: int
    iterations: int
    converged: bool


def start_cox(params: CoxParams | Mapping[str, Any]) -> tuple[CoxState, CoxRequest]:
    """Coordinator: the first round asks for the design sums."""
    parse_params(CoxParams, params)
    return CoxState(), CoxRequest(stage="design")


def _node_data(frame: pd.DataFrame, params: CoxParams) -> tuple[FloatArray, FloatArray, np.ndarray]:
    rows = complete_rows(frame, [params.time, params.event, *(c.column for c in params.covariates)])
    time = numeric_column(rows, params.time)
    event = event_indicator(rows, params.event)
    x = design_matrix(rows, params.covariates, intercept=False)
    check_node_rows(len(rows), x.shape[1], params.min_rows_per_node)
    return x, time, event


def breslow_terms(
    x: FloatArray, time: FloatArray, event: np.ndarray, beta: FloatArray
) -> tuple[float, FloatArray, FloatArray]:
    """Breslow log partial likelihood, score and information of one stratum (risk set: time >= t)."""
    p = x.shape[1]
    if not event.any():
        return 0.0, np.zeros(p), np.zeros((p, p))
    eta = x @ beta
    eta = eta - eta.max()  # the likelihood is invariant to a shift; this keeps exp() finite
    risk = np.exp(eta)
    distinct, group = np.unique(time, return_inverse=True)
    m = len(distinct)
    deaths = np.bincount(group, weights=event, minlength=m)
    s0_group = np.bincount(group, weights=risk, minlength=m)
    s1_group = np.zeros((m, p))
    np.add.at(s1_group, group, x * risk[:, None])
    s0 = np.cumsum(s0_group[::-1])[::-1]  # sum over everyone whose time is at or after each distinct time
    s1 = np.cumsum(s1_group[::-1], axis=0)[::-1]
    at_event = deaths > 0
    d, s0e, s1e = deaths[at_event], s0[at_event], s1[at_event]
    loglik = float(eta[event == 1].sum() - np.sum(d * np.log(s0e)))
    mean_x = s1e / s0e[:, None]
    score = x[event == 1].sum(axis=0) - (d[:, None] * mean_x).sum(axis=0)
    # sum_t d_t S2(t)/S0(t) = X' diag(risk * c) X with c_j = sum over event times t <= T_j of d_t / S0(t).
    hazard = np.where(at_event, deaths / np.where(at_event, s0, 1.0), 0.0)
    cumulative = np.cumsum(hazard)[group]
    second = (x * (risk * cumulative)[:, None]).T @ x
    information = second - (mean_x * d[:, None]).T @ mean_x
    return loglik, score, information


def answer_cox(
    frame: pd.DataFrame, params: CoxParams | Mapping[str, Any], request: CoxRequest | Mapping[str, Any]
) -> dict[str, Any]:
    """Node: the design sums, or its stratum's likelihood terms at the requested coefficients."""
    params = parse_params(CoxParams, params)
    request = parse_request(CoxRequest, request)
    x, time, event = _node_data(frame, params)
    if request.stage == "design":
        return CoxDesignPartial(
            n=len(time), events=int(event.sum()), x_sum=x.sum(axis=0).tolist(), gram=(x.T @ x).tolist()
        ).model_dump()
    if request.beta is None or len(request.beta) != x.shape[1]:
        raise InputError(ErrorCode.INVALID_ANALYSIS, detail="beta missing or of the wrong size", hints=["beta"])
    loglik, score, information = breslow_terms(x, time, event, np.asarray(request.beta, dtype=np.float64))
    return CoxNewtonPartial(
        n=len(time), loglik=loglik, score=score.tolist(), information=information.tolist()
    ).model_dump()


def _within_node_gram(design: Sequence[CoxDesignPartial], p: int) -> FloatArray:
    total = np.zeros((p, p))
    for index, partial in enumerate(design):
        gram = np.asarray(partial.gram, dtype=np.float64)
        x_sum = np.asarray(partial.x_sum, dtype=np.float64)
        if gram.shape != (p, p) or x_sum.shape != (p,):
            raise wrong_shape(index, "gram")
        if partial.n:
            total += gram - np.outer(x_sum, x_sum) / partial.n
    return total


def step_cox(
    params: CoxParams | Mapping[str, Any], state: CoxState, partials: Sequence[Mapping[str, Any]]
) -> tuple[CoxState, CoxRequest | CoxResult]:
    """Coordinator: refuse or accept the design, then Newton steps, then the final information."""
    params = parse_params(CoxParams, params)
    names = params.names()
    p = len(names)
    if state.stage == "design":
        design = parse_partials(CoxDesignPartial, partials)
        n = sum(d.n for d in design)
        events = sum(d.events for d in design)
        if events == 0:
            raise InputError(ErrorCode.DESIGN_REFUSED, detail="no events", hints=["design: no events"])
        check_pooled_design(n, _within_node_gram(design, p), names)
        zeros = [0.0] * p
        strata = sum(1 for d in design if d.events > 0)
        first = CoxState(stage="newton", n=n, events=events, strata=strata, beta=zeros)
        return first, CoxRequest(stage="newton", beta=zeros)
    newton = parse_partials(CoxNewtonPartial, partials)
    if sum(d.n for d in newton) != state.n or state.beta is None:
        raise InternalError(ErrorCode.INVALID_PARTIAL, detail="node row counts changed between rounds")
    information = sum_matrices([d.information for d in newton], p, "information")
    score = sum_vectors([d.score for d in newton], p, "score")
    loglik = sum(d.loglik for d in newton)
    if not (np.isfinite(information).all() and np.isfinite(score).all() and np.isfinite(loglik)):
        raise InternalError(ErrorCode.INTERNAL, detail="Cox Newton diverged (non-finite terms)")
    if state.stage == "final":
        return state, _result(params, state, loglik, information)
    beta = np.asarray(state.beta)
    new_beta = beta + np.linalg.solve(information, score)
    iterations = state.iterations + 1
    converged = bool(np.all(np.abs(new_beta - beta) <= params.tol))
    stage: Literal["newton", "final"] = "final" if converged or iterations >= params.max_iter else "newton"
    next_state = state.model_copy(
        update={"stage": stage, "beta": new_beta.tolist(), "iterations": iterations, "converged": converged}
    )
    return next_state, CoxRequest(stage="newton", beta=new_beta.tolist())


def _result(params: CoxParams, state: CoxState, loglik: float, information: FloatArray) -> CoxResult:
    beta = np.asarray(state.beta)
    cov = np.linalg.inv(information)
    return CoxResult(
        names=params.names(),
        **wald_columns(beta, cov, params.alpha),
        loglik=loglik,
        nobs=state.n,
        events=state.events,
        strata=state.strata,
        iterations=state.iterations,
        converged=state.converged,
    )
