"""What every analysis shares: strict parameter models, partial decoding, and column access.

Parameters arrive in a signed job spec and partials arrive from nodes, so both are parsed strictly
(unknown fields refused, frozen after parsing). A bad parameter is the researcher's to fix
(:class:`InputError` ``INVALID_ANALYSIS``); a partial that does not parse is a node bug or an attack
(:class:`InternalError` ``INVALID_PARTIAL``). Hints name field locations and error types only, never
the submitted value, because on a node a value can be patient data.

Column access turns any column the node hands us (numpy dtypes, pandas nullable ``Int64``/``Float64``/
``boolean``) into a float64 array with NaN for missing, the one representation the statistics use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from common.errors import ErrorCode, InputError, InternalError

__all__ = [
    "AnalysisModel",
    "DistinctColumns",
    "FloatArray",
    "Scalar",
    "numeric_column",
    "parse_params",
    "parse_partials",
    "parse_request",
    "require_columns",
    "sum_matrices",
    "sum_vectors",
    "wrong_shape",
]

FloatArray = npt.NDArray[np.float64]
Scalar = bool | int | float | str
"""A declared level or code: a JSON scalar."""

ModelT = TypeVar("ModelT", bound=BaseModel)


def _distinct_columns(columns: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(columns)) != len(columns):
        raise ValueError("columns must be distinct")
    return columns


DistinctColumns = Annotated[tuple[str, ...], AfterValidator(_distinct_columns)]
"""Column names, none of them twice (the length limits stay with each field)."""

_MAX_HINTS = 8


class AnalysisModel(BaseModel):
    """Base of parameters, requests, partials, states and results: strict, frozen, JSON-shaped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _location_hints(exc: ValidationError, prefix: str = "") -> list[str]:
    hints = []
    for err in exc.errors()[:_MAX_HINTS]:
        location = ".".join(str(part) for part in err["loc"]) or "(root)"
        hints.append(f"{prefix}{location}: {err['type']}")
    return hints


def parse_params(model: type[ModelT], raw: ModelT | Mapping[str, Any]) -> ModelT:
    """Validate analysis parameters; a bad field is an ``INVALID_ANALYSIS`` input error."""
    if isinstance(raw, model):
        return raw
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InputError(
            ErrorCode.INVALID_ANALYSIS, detail=f"invalid {model.__name__}", hints=_location_hints(exc)
        ) from None


def parse_request(model: type[ModelT], raw: ModelT | Mapping[str, Any]) -> ModelT:
    """Validate a round request on the node; a malformed one is refused like a bad parameter."""
    return parse_params(model, raw)


def parse_partials(model: type[ModelT], raws: Sequence[ModelT | Mapping[str, Any]]) -> list[ModelT]:
    """Validate the partials of every node (in node order); a malformed one is an ``INVALID_PARTIAL``."""
    parsed = []
    for index, raw in enumerate(raws):
        if isinstance(raw, model):
            parsed.append(raw)
            continue
        try:
            parsed.append(model.model_validate(raw))
        except ValidationError as exc:
            raise InternalError(
                ErrorCode.INVALID_PARTIAL,
                detail=f"node {index} sent an invalid {model.__name__}",
                hints=_location_hints(exc, prefix=f"node[{index}]."),
            ) from None
    return parsed


def require_columns(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    """Refuse an analysis that names a column the node's table lacks (the column name is the hint)."""
    missing = [column for column in dict.fromkeys(columns) if column not in frame.columns]
    if missing:
        raise InputError(
            ErrorCode.INVALID_ANALYSIS,
            detail="analysis names unknown columns",
            hints=[f"{column}: no such column" for column in missing[:_MAX_HINTS]],
        )


def numeric_column(frame: pd.DataFrame, column: str) -> FloatArray:
    """The column as float64 with NaN for missing; a non-numeric column is refused by name."""
    require_columns(frame, [column])
    series = frame[column]
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        values: FloatArray = np.asarray(series.astype("Float64").to_numpy(na_value=np.nan), dtype=np.float64)
    else:
        raise InputError(
            ErrorCode.INVALID_ANALYSIS, detail="analysis needs a numeric column", hints=[f"{column}: not numeric"]
        )
    if np.isinf(values).any():
        raise InputError(
            ErrorCode.DATA_OUTSIDE_DECLARED, detail="infinite value in a column", hints=[f"{column}: not finite"]
        )
    return values


def wrong_shape(node_index: int, field: str) -> InternalError:
    """The error for a partial whose arrays do not have the size the parameters imply."""
    return InternalError(
        ErrorCode.INVALID_PARTIAL,
        detail=f"node {node_index} sent a partial of the wrong shape",
        hints=[f"node[{node_index}].{field}: wrong length"],
    )


def sum_matrices(matrices: Sequence[Sequence[Sequence[float]]], p: int, field: str) -> FloatArray:
    """The sum of every node's ``p x p`` matrix ``field``; one of another shape is :func:`wrong_shape`."""
    total = np.zeros((p, p))
    for index, matrix in enumerate(matrices):
        array = np.asarray(matrix, dtype=np.float64)
        if array.shape != (p, p):
            raise wrong_shape(index, field)
        total += array
    return total


def sum_vectors(vectors: Sequence[Sequence[float]], p: int, field: str) -> FloatArray:
    """The sum of every node's length-``p`` vector ``field``; one of another length is :func:`wrong_shape`."""
    total = np.zeros(p)
    for index, vector in enumerate(vectors):
        if len(vector) != p:
            raise wrong_shape(index, field)
        total += np.asarray(vector, dtype=np.float64)
    return total
