"""Design matrices for the models, and the rules that refuse a design before any fitting.

A covariate is a numeric column, or a categorical column with *declared* levels: one 0/1 indicator per
level after the first, which is the reference (``cp`` with levels 1..4 gives ``cp[2]``, ``cp[3]``,
``cp[4]``, like ``pandas.get_dummies(drop_first=True)``). Levels are declared, never read from data, so
every node builds the same columns in the same order and no node reveals which levels it holds. A
value outside the declared levels is refused (``DATA_OUTSIDE_DECLARED``).

Rows with a missing value in any column the model uses are left out (complete-case analysis, as
statsmodels' ``missing='drop'``); the same rule on every node gives the pooled complete-case design.

Refusal rules. They apply to the **pooled** design, from merged sums only:

* too small: pooled rows ``n < p`` (fewer rows than parameters);
* saturated: ``n == p`` (no residual degrees of freedom: the fit is exact and nothing is estimated);
* rank-deficient: the pooled Gram matrix (``X'X``; for Cox, centred within each stratum) has rank
  below ``p``. The rank is found column by column on the Gram matrix scaled to unit diagonal: a column
  whose squared distance to the span of the columns kept before it is at most ``RANK_TOLERANCE``
  (1e-10, i.e. a sine of 1e-5) is dependent. Dependent columns are named in the hints (column names
  are schema, not data).

Per-node rule, enforced by the node on its own rows: a node with no complete rows contributes nothing
(its sums are zero); a node with ``1 <= n_k < minimum`` rows refuses. The minimum is ``p + 1`` unless
the parameters set ``min_rows_per_node``: a node whose own rows would saturate the model could have
them read back from its Gram matrix and score. There is no per-node rank rule: a hospital with only
men is locally rank-deficient for ``sex`` and still contributes. With the default minimum, pooled
``n <= p`` can only happen when no node has rows; the pooled rules are still checked first-hand, since
a job may set a lower per-node minimum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import AfterValidator, Field, model_validator

from common.analytics.params import AnalysisModel, FloatArray, Scalar, numeric_column, require_columns
from common.errors import ErrorCode, InputError

__all__ = [
    "RANK_TOLERANCE",
    "Covariate",
    "Covariates",
    "check_node_rows",
    "check_pooled_design",
    "complete_rows",
    "dependent_columns",
    "design_matrix",
    "design_names",
    "level_codes",
]

RANK_TOLERANCE = 1e-10


class Covariate(AnalysisModel):
    """One model term: a numeric column, or a categorical column with declared levels."""

    column: str = Field(min_length=1, max_length=200)
    levels: tuple[Scalar, ...] | None = Field(default=None, min_length=2, max_length=1000)

    @model_validator(mode="after")
    def _distinct_levels(self) -> Covariate:
        if self.levels is not None and len({repr(level) for level in self.levels}) != len(self.levels):
            raise ValueError("levels must be distinct")
        return self

    def names(self) -> list[str]:
        """The design columns this term makes."""
        if self.levels is None:
            return [self.column]
        return [f"{self.column}[{level}]" for level in self.levels[1:]]


def _distinct_covariates(covariates: tuple[Covariate, ...]) -> tuple[Covariate, ...]:
    columns = [c.column for c in covariates]
    if len(set(columns)) != len(columns):
        raise ValueError("covariate columns must be distinct")
    return covariates


Covariates = Annotated[tuple[Covariate, ...], AfterValidator(_distinct_covariates)]
"""A model's terms, no column named twice (the length limits stay with each model's field)."""


def design_names(covariates: Sequence[Covariate], *, intercept: bool) -> list[str]:
    """The names of the design columns, in order."""
    names = ["Intercept"] if intercept else []
    for covariate in covariates:
        names.extend(covariate.names())
    return names


def complete_rows(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The rows with a value in every one of ``columns`` (complete-case)."""
    require_columns(frame, columns)
    used = list(dict.fromkeys(columns))
    return frame.loc[frame[used].notna().all(axis=1).to_numpy()]


def level_codes(series: pd.Series, levels: Sequence[Scalar], column: str) -> np.ndarray:
    """Index of each value in the declared ``levels`` (-1 for missing); other values are refused."""
    codes = np.full(len(series), -1, dtype=np.int64)
    for index, level in enumerate(levels):
        try:
            matches = series.eq(level).fillna(False).to_numpy(dtype=bool)
        except TypeError:  # a level of another type than the column matches nothing
            continue
        codes[(codes == -1) & matches] = index
    present = series.notna().to_numpy(dtype=bool)
    if ((codes == -1) & present).any():
        raise InputError(
            ErrorCode.DATA_OUTSIDE_DECLARED,
            detail="value outside the declared levels",
            hints=[f"{column}: value(s) outside the declared levels"],
        )
    return codes


def design_matrix(frame: pd.DataFrame, covariates: Sequence[Covariate], *, intercept: bool) -> FloatArray:
    """The design matrix of complete rows: intercept, numeric columns, level indicators."""
    blocks: list[FloatArray] = []
    if intercept:
        blocks.append(np.ones((len(frame), 1)))
    for covariate in covariates:
        if covariate.levels is None:
            blocks.append(numeric_column(frame, covariate.column)[:, None])
        else:
            require_columns(frame, [covariate.column])
            codes = level_codes(frame[covariate.column], covariate.levels, covariate.column)
            indicators = codes[:, None] == np.arange(1, len(covariate.levels))[None, :]
            blocks.append(indicators.astype(np.float64))
    if not blocks:
        return np.zeros((len(frame), 0))
    return np.hstack(blocks)


def check_node_rows(n_rows: int, n_params: int, min_rows_per_node: int | None) -> None:
    """The per-node rule: no rows is fine (contributes nothing); 1..minimum-1 rows is refused."""
    minimum = n_params + 1 if min_rows_per_node is None else min_rows_per_node
    if 0 < n_rows < minimum:
        raise InputError(
            ErrorCode.DESIGN_REFUSED,
            detail="too few complete rows at this node for the model",
            hints=[f"node rows: fewer than the per-node minimum of {minimum} for {n_params} parameters"],
        )


def dependent_columns(gram: FloatArray, names: Sequence[str]) -> list[str]:
    """Columns that are (numerically) linear combinations of the columns before them."""
    diagonal = np.diag(gram).copy()
    scale = np.where(diagonal > 0, 1.0 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0)), 0.0)
    scaled = gram * scale[:, None] * scale[None, :]
    kept: list[int] = []
    dependent: list[str] = []
    for j, name in enumerate(names):
        if diagonal[j] <= 0:
            dependent.append(name)
            continue
        if kept:
            block = scaled[np.ix_(kept, kept)]
            cross = scaled[kept, j]
            residual = scaled[j, j] - cross @ np.linalg.solve(block, cross)
        else:
            residual = scaled[j, j]
        if residual <= RANK_TOLERANCE:
            dependent.append(name)
        else:
            kept.append(j)
    return dependent


def check_pooled_design(n_rows: int, gram: FloatArray, names: Sequence[str]) -> None:
    """The pooled rules: too small (n < p), saturated (n == p), rank-deficient (rank < p)."""
    p = len(names)
    if p == 0:
        raise InputError(ErrorCode.INVALID_ANALYSIS, detail="model without parameters", hints=["covariates: empty"])
    if n_rows < p:
        raise InputError(
            ErrorCode.DESIGN_REFUSED,
            detail="too few rows for the model",
            hints=[f"design: too small (fewer complete rows than its {p} parameters)"],
        )
    if n_rows == p:
        raise InputError(
            ErrorCode.DESIGN_REFUSED,
            detail="saturated model",
            hints=[f"design: saturated (complete rows equal its {p} parameters; no residual degrees of freedom)"],
        )
    dependent = dependent_columns(gram, names)
    if dependent:
        raise InputError(
            ErrorCode.DESIGN_REFUSED,
            detail="rank-deficient design",
            hints=[f"design: rank {p - len(dependent)} < {p} parameters"]
            + [f"{name}: linear combination of earlier columns" for name in dependent[:20]],
        )
