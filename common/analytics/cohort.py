"""Cohort filters: which rows of a view or dataset an analysis reads, as a typed, declarative tree.

The same model serves both sides. The coordinator parses a job's cohort strictly (unknown fields,
operators or shapes are refused with the field location) and checks that it names only the job's
declared columns; the node applies it to its DataFrame with :func:`apply_cohort`. Nothing here runs
code from the spec: a cohort is data.

Leaves (told apart by ``op``)::

    {"op": "=" | "!=" | "<" | "<=" | ">" | ">=", "column": c, "value": v}
    {"op": "between", "column": c, "lower": a, "upper": b}            inclusive at both ends
    {"op": "in", "column": c, "values": [v, ...]}                     code-in-set
    {"op": "not_null", "column": c}
    {"op": "in_cohort", "column": c, "source": {"view": "patient_demographics"},
     "key": "patient_id", "where": <cohort>}                          join on patient

A comparison or ``between`` may transform its column first: ``"age_at": "2021-06-01"`` reads the column
as a birth date and compares the age in completed years on that date; ``"as_date": true`` compares the
column's calendar date (the first ten characters of an ISO date or dateTime; a datetime column is
compared as a date without being asked) with ISO date values. A date that is not a full ``YYYY-MM-DD``
(``"1980"``, ``"1980-05"``) counts as missing. ``in_cohort`` keeps the rows whose ``column`` value is
among the ``key`` values of the rows of another source that pass ``where`` (all its rows without one):
lab observations of the patients in a demographics cohort.

Composition: ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}``.

Missing values follow SQL's three-valued logic: a comparison with a missing value is *unknown*,
``not`` of unknown is unknown, ``all`` is false as soon as one part is false, ``any`` is true as soon as
one part is true, and only rows whose filter is *true* are kept. So ``not (age > 50)`` does not keep
rows without an age; ``not_null`` is never unknown.

Errors are :class:`~common.errors.InputError` (``INVALID_ANALYSIS``) whose hints name the location in
the cohort (``cohort.all[1].value: type does not match the column``), never a value: on a node, a
value can be patient data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError, model_validator

from common.analytics.params import Scalar
from common.errors import ErrorCode, InputError

__all__ = [
    "MAX_DEPTH",
    "MAX_LEAVES",
    "AllOf",
    "AnyOf",
    "Between",
    "Cohort",
    "Comparison",
    "InCohort",
    "InSet",
    "NotNull",
    "NotOf",
    "Source",
    "apply_cohort",
    "check_cohort_columns",
    "cohort_columns",
    "cohort_sources",
    "dump_cohort",
    "parse_cohort",
]

MAX_DEPTH = 16
"""The deepest nesting of ``all``/``any``/``not``/``in_cohort`` a cohort may have."""
MAX_LEAVES = 1000
"""The most conditions one cohort may hold."""

_NAME = r"^[a-z][a-z0-9_-]{0,62}$"
_MAX_HINTS = 8
ColumnName = Annotated[str, Field(min_length=1, max_length=200)]
SourceName = Annotated[str, Field(pattern=_NAME)]
ComparisonOp = Literal["=", "!=", "<", "<=", ">", ">="]
BoolArray = npt.NDArray[np.bool_]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Source(_Model):
    """Where rows come from: a tabular dataset or a materialised view of the node, by name."""

    dataset: SourceName | None = None
    view: SourceName | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        if (self.dataset is None) == (self.view is None):
            raise ValueError("name exactly one of dataset and view")
        return self

    @property
    def key(self) -> str:
        """``dataset:NAME`` or ``view:NAME``: one string per source."""
        return f"dataset:{self.dataset}" if self.dataset is not None else f"view:{self.view}"


class _Transformed(_Model):
    """A leaf that may read its column as an age at a date or as a calendar date."""

    column: ColumnName
    age_at: date | None = None
    as_date: bool = False

    def _check_operands(self, *values: Scalar) -> None:
        if self.age_at is not None and self.as_date:
            raise ValueError("age_at and as_date exclude each other")
        if self.age_at is not None and not all(_is_number(v) for v in values):
            raise ValueError("an age is compared with numbers")
        if self.as_date and not all(isinstance(v, str) and _iso_date(v) is not None for v in values):
            raise ValueError("as_date compares with ISO dates (YYYY-MM-DD)")


class Comparison(_Transformed):
    """``column op value``."""

    op: ComparisonOp
    value: Scalar

    @model_validator(mode="after")
    def _operands(self) -> Comparison:
        self._check_operands(self.value)
        return self


class Between(_Transformed):
    """``lower <= column <= upper``."""

    op: Literal["between"]
    lower: Scalar
    upper: Scalar

    @model_validator(mode="after")
    def _operands(self) -> Between:
        self._check_operands(self.lower, self.upper)
        if _is_number(self.lower) != _is_number(self.upper):
            raise ValueError("lower and upper must be of one type")
        if _is_number(self.lower) and float(self.lower) > float(self.upper):
            raise ValueError("lower must not exceed upper")
        if isinstance(self.lower, str) and isinstance(self.upper, str) and self.lower > self.upper:
            raise ValueError("lower must not exceed upper")
        return self


class InSet(_Model):
    """The column's value is one of ``values`` (codes)."""

    op: Literal["in"]
    column: ColumnName
    values: tuple[Scalar, ...] = Field(min_length=1, max_length=10_000)


class NotNull(_Model):
    """The column has a value."""

    op: Literal["not_null"]
    column: ColumnName


class InCohort(_Model):
    """The column's value is a ``key`` of a row of ``source`` that passes ``where`` (a join on patient)."""

    op: Literal["in_cohort"]
    column: ColumnName = "patient_id"
    source: Source
    key: ColumnName = "patient_id"
    where: Cohort | None = None


class AllOf(_Model):
    """Every part holds."""

    all_: tuple[Cohort, ...] = Field(alias="all", min_length=1, max_length=100)


class AnyOf(_Model):
    """At least one part holds."""

    any_: tuple[Cohort, ...] = Field(alias="any", min_length=1, max_length=100)


class NotOf(_Model):
    """The part does not hold (unknown stays unknown)."""

    not_: Cohort = Field(alias="not")


_COMPARISONS = frozenset(("=", "!=", "<", "<=", ">", ">="))
_BY_CLASS: dict[type[BaseModel], str] = {
    Comparison: "compare",
    Between: "between",
    InSet: "in",
    NotNull: "not_null",
    InCohort: "in_cohort",
    AllOf: "all",
    AnyOf: "any",
    NotOf: "not",
}


def _kind(value: Any) -> str | None:
    """The tag of a cohort node: its composition key, else its operator (comparisons share one tag)."""
    if isinstance(value, BaseModel):
        return _BY_CLASS.get(type(value))
    if not isinstance(value, Mapping):
        return None
    for key in ("all", "any", "not"):
        if key in value:
            return key
    op = value.get("op")
    if op in _COMPARISONS:
        return "compare"
    return op if isinstance(op, str) and op in {"between", "in", "not_null", "in_cohort"} else None


Cohort = Annotated[
    Annotated[Comparison, Tag("compare")]
    | Annotated[Between, Tag("between")]
    | Annotated[InSet, Tag("in")]
    | Annotated[NotNull, Tag("not_null")]
    | Annotated[InCohort, Tag("in_cohort")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")],
    Discriminator(_kind),
]
"""A cohort filter: one leaf or a composition of them."""

for _model in (InCohort, AllOf, AnyOf, NotOf):
    _model.model_rebuild()

_ADAPTER: TypeAdapter[Cohort] = TypeAdapter(Cohort)


# --- parsing and inspection ---------------------------------------------------------------------------


_LEAF_TAGS = frozenset(("compare", "between", "in", "not_null", "in_cohort"))


def _location(parts: tuple[int | str, ...] | list[int | str], prefix: str) -> str:
    """A pydantic error location as the cohort's own path, without the union tags pydantic inserts."""
    text = prefix
    for index, part in enumerate(parts):
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in _LEAF_TAGS or (index + 1 < len(parts) and parts[index + 1] == part):
            continue  # a union tag (composition tags are followed by their own field of that name)
        else:
            text += f".{part}"
    return text


def parse_cohort(raw: Any, *, location: str = "cohort") -> Cohort:
    """The cohort model of ``raw`` (JSON-shaped), or InputError naming each bad field's location."""
    try:
        cohort = _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        hints = [f"{_location(err['loc'], location)}: {err['type']}" for err in exc.errors(include_input=False)]
        raise InputError(ErrorCode.INVALID_ANALYSIS, detail="invalid cohort", hints=hints[:_MAX_HINTS]) from None
    depth, leaves = _size(cohort)
    if depth > MAX_DEPTH or leaves > MAX_LEAVES:
        raise InputError(
            ErrorCode.INVALID_ANALYSIS,
            detail="cohort too large",
            hints=[f"{location}: at most {MAX_DEPTH} levels and {MAX_LEAVES} conditions"],
        )
    return cohort


def dump_cohort(cohort: Cohort) -> dict[str, Any]:
    """The cohort as JSON-shaped data (``all``/``any``/``not`` spelt as in the spec)."""
    dumped: dict[str, Any] = cohort.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return dumped


def _children(cohort: Cohort) -> tuple[Cohort, ...]:
    if isinstance(cohort, AllOf):
        return cohort.all_
    if isinstance(cohort, AnyOf):
        return cohort.any_
    if isinstance(cohort, NotOf):
        return (cohort.not_,)
    if isinstance(cohort, InCohort) and cohort.where is not None:
        return (cohort.where,)
    return ()


def _size(cohort: Cohort) -> tuple[int, int]:
    children = _children(cohort)
    if not children:
        return 1, 1
    sizes = [_size(child) for child in children]
    return 1 + max(d for d, _ in sizes), sum(n for _, n in sizes) + (1 if isinstance(cohort, InCohort) else 0)


def cohort_columns(cohort: Cohort, *, location: str = "cohort") -> Iterator[tuple[str, str]]:
    """``(location, column)`` of every column of the *filtered* source the cohort reads.

    The ``key`` and ``where`` of an ``in_cohort`` belong to the other source and are not listed.
    """
    if isinstance(cohort, AllOf | AnyOf):
        name = "all" if isinstance(cohort, AllOf) else "any"
        for index, part in enumerate(_children(cohort)):
            yield from cohort_columns(part, location=f"{location}.{name}[{index}]")
    elif isinstance(cohort, NotOf):
        yield from cohort_columns(cohort.not_, location=f"{location}.not")
    else:
        yield f"{location}.column", cohort.column


def cohort_sources(cohort: Cohort) -> list[Source]:
    """Every other source the cohort joins with (distinct, in order of appearance)."""
    found: dict[str, Source] = {}
    stack = [cohort]
    while stack:
        node = stack.pop(0)
        if isinstance(node, InCohort):
            found.setdefault(node.source.key, node.source)
        stack.extend(_children(node))
    return list(found.values())


def check_cohort_columns(cohort: Cohort, allowed: tuple[str, ...] | list[str], *, location: str = "cohort") -> None:
    """InputError when the cohort reads a column outside ``allowed`` (the job's declared columns)."""
    permitted = set(allowed)
    outside = [where for where, column in cohort_columns(cohort, location=location) if column not in permitted]
    if outside:
        raise InputError(
            ErrorCode.INVALID_ANALYSIS,
            detail="cohort reads undeclared columns",
            hints=[f"{where}: not among the job's columns" for where in outside[:_MAX_HINTS]],
        )


# --- application on the node --------------------------------------------------------------------------

Frames = Mapping[str, pd.DataFrame]
"""The frames of the sources a cohort joins with, by :attr:`Source.key`."""


def apply_cohort(cohort: Cohort | None, frame: pd.DataFrame, sources: Frames | None = None) -> pd.DataFrame:
    """The rows of ``frame`` for which ``cohort`` is true (index kept); all rows when there is no cohort."""
    if cohort is None:
        return frame
    value, _known = _evaluate(cohort, frame, sources or {}, "cohort")
    return frame.loc[value]


def _refuse(location: str, rule: str) -> InputError:
    return InputError(ErrorCode.INVALID_ANALYSIS, detail="cohort cannot be applied", hints=[f"{location}: {rule}"])


def _evaluate(cohort: Cohort, frame: pd.DataFrame, sources: Frames, location: str) -> tuple[BoolArray, BoolArray]:
    """``(true, known)`` masks of the cohort over the rows of ``frame`` (Kleene logic)."""
    if isinstance(cohort, AllOf | AnyOf):
        name = "all" if isinstance(cohort, AllOf) else "any"
        parts = [_evaluate(part, frame, sources, f"{location}.{name}[{i}]") for i, part in enumerate(_children(cohort))]
        values = np.vstack([v for v, _ in parts])
        knowns = np.vstack([k for _, k in parts])
        if isinstance(cohort, AllOf):
            value = np.asarray(values.all(axis=0), dtype=bool)
            known = np.asarray(knowns.all(axis=0) | (knowns & ~values).any(axis=0), dtype=bool)
        else:
            value = np.asarray(values.any(axis=0), dtype=bool)
            known = np.asarray(knowns.all(axis=0) | value, dtype=bool)
        return value, known
    if isinstance(cohort, NotOf):
        value, known = _evaluate(cohort.not_, frame, sources, f"{location}.not")
        return known & ~value, known
    if cohort.column not in frame.columns:
        raise _refuse(f"{location}.column", "no such column")
    series = frame[cohort.column]
    if isinstance(cohort, NotNull):
        present = series.notna().to_numpy(dtype=bool)
        return present, np.ones(len(frame), dtype=bool)
    if isinstance(cohort, InCohort):
        return _in_cohort(cohort, series, sources, location)
    if isinstance(cohort, InSet):
        return _in_set(cohort, series, location)
    return _compare(cohort, series, location)


def _in_cohort(cohort: InCohort, series: pd.Series, sources: Frames, location: str) -> tuple[BoolArray, BoolArray]:
    other = sources.get(cohort.source.key)
    if other is None:
        raise _refuse(f"{location}.source", "not loaded")
    if cohort.key not in other.columns:
        raise _refuse(f"{location}.key", "no such column")
    chosen = other
    if cohort.where is not None:
        value, _known = _evaluate(cohort.where, other, sources, f"{location}.where")
        chosen = other.loc[value]
    keys = chosen[cohort.key].dropna()
    known = series.notna().to_numpy(dtype=bool)
    if _numeric(series) != _numeric(keys) and len(keys) and known.any():
        raise _refuse(f"{location}.key", "type does not match the column")
    value = series.isin(pd.unique(keys.to_numpy())).to_numpy(dtype=bool) & known
    return value, known


def _in_set(cohort: InSet, series: pd.Series, location: str) -> tuple[BoolArray, BoolArray]:
    known = series.notna().to_numpy(dtype=bool)
    if _numeric(series):
        if not all(_is_number(v) for v in cohort.values):
            raise _refuse(f"{location}.values", "type does not match the column")
        numbers = _floats(series)
        value = np.isin(numbers, np.asarray([float(v) for v in cohort.values])) & known
        return value, known
    if _is_datetime(series) or not all(isinstance(v, str) for v in cohort.values):
        raise _refuse(f"{location}.values", "type does not match the column")
    value = series.astype("string").isin(list(cohort.values)).fillna(False).to_numpy(dtype=bool) & known
    return value, known


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _compare(cohort: Comparison | Between, series: pd.Series, location: str) -> tuple[BoolArray, BoolArray]:
    operands = [cohort.value] if isinstance(cohort, Comparison) else [cohort.lower, cohort.upper]
    if cohort.age_at is not None:
        values: Any = _ages(_dates(series), cohort.age_at)
        known = ~np.isnan(values)
        bounds: list[Any] = [float(v) for v in operands]
    elif cohort.as_date or _is_datetime(series):
        days = _dates(series)
        known = ~np.isnat(days)
        parsed = [_iso_date(v) if isinstance(v, str) else None for v in operands]
        if any(p is None for p in parsed):
            raise _refuse(f"{location}.value", "a date column is compared with ISO dates")
        values, bounds = days, [np.datetime64(p, "D") for p in parsed]
    elif _numeric(series):
        if not all(_is_number(v) for v in operands):
            raise _refuse(f"{location}.value", "type does not match the column")
        values = _floats(series)
        known = ~np.isnan(values)
        bounds = [float(v) for v in operands]
    else:
        if not all(isinstance(v, str) for v in operands):
            raise _refuse(f"{location}.value", "type does not match the column")
        text = series.astype("string")
        known = text.notna().to_numpy(dtype=bool)
        values = text.fillna("").to_numpy(dtype=object)
        bounds = list(operands)
    with np.errstate(invalid="ignore"):
        if isinstance(cohort, Comparison):
            result = np.asarray(_OPERATORS[cohort.op](values, bounds[0]), dtype=bool)
        else:
            result = np.asarray((values >= bounds[0]) & (values <= bounds[1]), dtype=bool)
    return result & known, known


# --- column helpers -----------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _is_number(value: Scalar) -> bool:
    return isinstance(value, int | float) and (not isinstance(value, float) or math.isfinite(value))


def _iso_date(text: str) -> date | None:
    if not _ISO_DATE.match(text):
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _is_datetime(series: pd.Series) -> bool:
    return bool(pd.api.types.is_datetime64_any_dtype(series.dtype))


def _numeric(series: pd.Series) -> bool:
    dtype = series.dtype
    return bool(pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype))


def _floats(series: pd.Series) -> npt.NDArray[np.float64]:
    return np.asarray(series.astype("Float64").to_numpy(na_value=np.nan), dtype=np.float64)


def _dates(series: pd.Series) -> npt.NDArray[np.datetime64]:
    """Calendar dates (``datetime64[D]``, NaT for missing or partial dates) of a date or text column."""
    if _is_datetime(series):
        values = series
        if getattr(series.dt, "tz", None) is not None:
            values = series.dt.tz_localize(None)
        return np.asarray(values.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]"))
    text = series.astype("string").str.slice(0, 10)
    parsed = pd.to_datetime(text.where(text.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False)), errors="coerce")
    return np.asarray(parsed.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]"))


def _ages(births: npt.NDArray[np.datetime64], at: date) -> npt.NDArray[np.float64]:
    """Age in completed years on ``at`` (NaN where the birth date is missing)."""
    missing = np.isnat(births)
    safe = np.where(missing, np.datetime64("2000-01-01", "D"), births)
    years = safe.astype("datetime64[Y]").astype(np.int64) + 1970
    months = safe.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (safe - safe.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    before_birthday = (months > at.month) | ((months == at.month) & (days > at.day))
    ages: npt.NDArray[np.float64] = np.asarray(at.year - years - before_birthday.astype(np.int64), dtype=np.float64)
    ages[missing] = np.nan
    return ages
