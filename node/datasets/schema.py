"""The declared schema of a tabular dataset (YAML), validated strictly.

A node admin registers a CSV or Parquet file with a schema that says, per column, its type, optional
bounds, optional levels and which codes mean "missing". Analyses then rely on the declaration: the
histogram's bins and the quantile search come from the declared bounds, crosstabs and categorical
covariates from the declared levels, never from the data. Example::

    description: UCI heart disease, one hospital's processed file
    format: csv                  # csv or parquet; default from the file name
    csv: {header: false, delimiter: ","}
    missing_values: ["?"]        # text that means missing in every column (an empty cell always does)
    columns:
      - {name: age, type: integer, bounds: [0, 120]}
      - {name: chol, type: decimal, bounds: [0, 700], missing_values: [0]}   # 0 = not measured
      - {name: site, type: string, levels: [a, b]}

Types: ``integer`` (whole numbers; ``63.0`` is read as 63), ``decimal`` (finite floats), ``string``,
``boolean`` (true/false, 1/0, yes/no), ``date`` (ISO ``YYYY-MM-DD``). Bounds are inclusive
``[lower, upper]`` and allowed for integer, decimal and date; levels for integer and string. A column's
``missing_values`` match the cell's text, and for integer and decimal columns also its numeric value
(``0`` matches ``0.0``).

Errors are :class:`InputError` ``INVALID_SCHEMA`` with location-only hints
(``columns.3.bounds: value_error``), never the offending value.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from common.errors import ErrorCode, InputError

__all__ = [
    "ColumnSpec",
    "ColumnType",
    "CsvOptions",
    "DatasetSchema",
    "dump_schema",
    "load_schema",
    "parse_schema",
]

MissingCode = bool | int | float | str
_MAX_HINTS = 8


class ColumnType(StrEnum):
    """The declared type of a column."""

    INTEGER = "integer"
    DECIMAL = "decimal"
    STRING = "string"
    BOOLEAN = "boolean"
    DATE = "date"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    """One column: name, type, and what values it may hold."""

    name: str = Field(min_length=1, max_length=200)
    type: ColumnType
    bounds: tuple[float | date, float | date] | None = None
    levels: tuple[int | str, ...] | None = Field(default=None, min_length=1, max_length=10_000)
    missing_values: tuple[MissingCode, ...] = Field(default=(), max_length=100)
    description: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _coherent(self) -> ColumnSpec:
        if self.bounds is not None:
            self._check_bounds(self.bounds)
        if self.levels is not None:
            if self.type not in (ColumnType.INTEGER, ColumnType.STRING):
                raise ValueError("levels are for integer and string columns")
            wanted = int if self.type is ColumnType.INTEGER else str
            if not all(type(level) is wanted for level in self.levels):
                raise ValueError("levels must match the column type")
            if len(set(self.levels)) != len(self.levels):
                raise ValueError("levels must be distinct")
        return self

    def _check_bounds(self, bounds: tuple[float | date, float | date]) -> None:
        lower, upper = bounds
        if self.type in (ColumnType.INTEGER, ColumnType.DECIMAL):
            if not all(isinstance(b, float) for b in bounds):
                raise ValueError("numeric bounds expected")
        elif self.type is ColumnType.DATE:
            if not all(isinstance(b, date) for b in bounds):
                raise ValueError("date bounds expected")
        else:
            raise ValueError("bounds are for integer, decimal and date columns")
        if lower > upper:  # type: ignore[operator]  # same type, checked above
            raise ValueError("lower bound above upper bound")


class CsvOptions(_Strict):
    """How the CSV file is laid out."""

    header: bool = True
    delimiter: str = Field(default=",", min_length=1, max_length=1)


class DatasetSchema(_Strict):
    """A dataset's declared layout."""

    description: str = Field(default="", max_length=5000)
    format: Literal["csv", "parquet"] | None = None
    csv: CsvOptions = CsvOptions()
    missing_values: tuple[str, ...] = Field(default=(), max_length=100)
    columns: tuple[ColumnSpec, ...] = Field(max_length=10_000)

    @field_validator("columns")
    @classmethod
    def _distinct_names(cls, columns: tuple[ColumnSpec, ...]) -> tuple[ColumnSpec, ...]:
        if not columns:
            raise ValueError("at least one column is needed")
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be distinct")
        return columns

    def column(self, name: str) -> ColumnSpec:
        """The spec of the column called ``name``."""
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)


def _hint(err: ErrorDetails) -> str:
    """Where and what kind of error; the message only for our own rules (fixed text, no input)."""
    location = ".".join(str(part) for part in err["loc"]) or "(root)"
    if err["type"] == "value_error":
        return f"{location}: {err['msg'].removeprefix('Value error, ')}"
    return f"{location}: {err['type']}"


def parse_schema(raw: Any) -> DatasetSchema:
    """Validate a parsed YAML document as a schema."""
    if not isinstance(raw, dict):
        raise InputError(ErrorCode.INVALID_SCHEMA, detail="schema is not a mapping", hints=["(root): not a mapping"])
    try:
        return DatasetSchema.model_validate(raw)
    except ValidationError as exc:
        hints = [_hint(err) for err in exc.errors()[:_MAX_HINTS]]
        raise InputError(ErrorCode.INVALID_SCHEMA, detail="invalid dataset schema", hints=hints) from None


def load_schema(path: Path) -> DatasetSchema:
    """Read and validate a YAML schema file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise InputError(
            ErrorCode.INVALID_SCHEMA, detail="schema file cannot be read", hints=["schema: unreadable"]
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(document)"
        raise InputError(
            ErrorCode.INVALID_SCHEMA, detail="schema is not valid YAML", hints=[f"{where}: yaml"]
        ) from None
    return parse_schema(raw)


def dump_schema(schema: DatasetSchema) -> str:
    """The schema as YAML (dates as ISO text), for storing next to a registered dataset."""
    return yaml.safe_dump(schema.model_dump(mode="json", exclude_defaults=True), sort_keys=False, allow_unicode=True)
