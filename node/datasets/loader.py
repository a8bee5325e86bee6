"""Read a CSV or Parquet file into a DataFrame with its declared schema enforced.

Every column comes out typed: ``integer`` as pandas ``Int64``, ``decimal`` as ``float64`` (NaN for
missing), ``boolean`` as ``boolean``, ``date`` as ``datetime64``, ``string`` as ``string``; missing codes
become missing values. The file is refused as a whole (``InputError`` ``INVALID_DATASET``) when a column
is absent or extra, a value does not parse as its type, or lies outside the declared bounds or levels:
a dataset that does not match its declaration is not half-loaded. Hints say which column, what rule
and how many rows, with the first data row number (1-based), never the value itself.

Decimal text is parsed with Python's ``float`` (correctly rounded); ``pandas.to_numeric`` is not, and
a dataset must read the same on every node. Non-finite numbers (``nan``, ``inf``) are refused: missing
values are declared, not smuggled in as NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import ErrorCode, InputError
from node.datasets.schema import ColumnSpec, ColumnType, DatasetSchema

__all__ = ["file_format", "load_table"]

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_MAX_HINTS = 8


def file_format(path: Path, schema: DatasetSchema) -> str:
    """``csv`` or ``parquet``: the schema's ``format``, else the file name's extension."""
    if schema.format is not None:
        return schema.format
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    return "csv"


class _Problems:
    """Collects what is wrong with the file, location and rule only."""

    def __init__(self) -> None:
        self.hints: list[str] = []

    def add(self, column: str, rule: str, rows: np.ndarray) -> None:
        where = np.flatnonzero(rows)
        if len(where):
            self.hints.append(f"{column}: {len(where)} value(s) {rule} (first at row {int(where[0]) + 1})")

    def raise_if_any(self) -> None:
        if self.hints:
            shown = self.hints[:_MAX_HINTS]
            if len(self.hints) > _MAX_HINTS:
                shown.append(f"... and {len(self.hints) - _MAX_HINTS} more")
            raise InputError(ErrorCode.INVALID_DATASET, detail="dataset does not match its schema", hints=shown)


def _refuse(hint: str) -> InputError:
    return InputError(ErrorCode.INVALID_DATASET, detail="dataset cannot be read", hints=[hint])


def _read_csv(path: Path, schema: DatasetSchema) -> pd.DataFrame:
    try:
        raw = pd.read_csv(
            path,
            sep=schema.csv.delimiter,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
        raise _refuse("file: not a readable CSV with rows of equal length") from None
    names = [spec.name for spec in schema.columns]
    if schema.csv.header:
        if len(raw) == 0 or [str(h).strip() for h in raw.iloc[0]] != names:
            raise _refuse("header: the columns differ from the schema's (names and order)")
        raw = raw.iloc[1:].reset_index(drop=True)
    if raw.shape[1] != len(names):
        raise _refuse(f"file: {raw.shape[1]} columns, the schema declares {len(names)}")
    raw.columns = pd.Index(names)
    return raw


def _read_parquet(path: Path, schema: DatasetSchema) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, ImportError):
        raise _refuse("file: not a readable Parquet file") from None
    names = [spec.name for spec in schema.columns]
    extra = [str(c) for c in frame.columns if c not in names]
    absent = [n for n in names if n not in frame.columns]
    if extra or absent:
        raise InputError(
            ErrorCode.INVALID_DATASET,
            detail="dataset columns differ from the schema",
            hints=[f"{c}: not in the schema" for c in extra[:_MAX_HINTS]]
            + [f"{c}: absent from the file" for c in absent[:_MAX_HINTS]],
        )
    return frame[names].reset_index(drop=True)


def _is_text(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series.dtype)


def _text_missing(text: pd.Series, codes: Sequence[str]) -> np.ndarray:
    return (text.eq("") | text.isin(list(codes))).to_numpy(dtype=bool)


def _parse_float(token: str) -> float:
    try:
        value = float(token)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def _numeric(series: pd.Series, spec: ColumnSpec, text_codes: Sequence[str], problems: _Problems) -> pd.Series:
    numeric_codes = [c for c in spec.missing_values if isinstance(c, int | float) and not isinstance(c, bool)]
    if _is_text(series):
        text = series.astype("string").fillna("").str.strip()
        missing = _text_missing(text, text_codes)
        parsed = {token: _parse_float(token) for token in pd.unique(text[~missing])}
        values = text.map(lambda token: parsed.get(token, math.nan)).to_numpy(dtype=np.float64)
        problems.add(spec.name, "not a finite number", ~missing & np.isnan(values))
    elif pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
        problems.add(spec.name, "not a finite number", ~missing & ~np.isfinite(values))
    else:
        problems.add(spec.name, f"not of type {spec.type}", np.ones(len(series), dtype=bool))
        return pd.Series(np.full(len(series), np.nan))
    missing = missing | np.isin(values, numeric_codes)
    values = np.where(missing | ~np.isfinite(values), np.nan, values)
    present = ~np.isnan(values)
    if spec.bounds is not None:
        lower, upper = (float(b) for b in spec.bounds)  # type: ignore[arg-type]  # numeric: checked by the schema
        problems.add(spec.name, "below the lower bound", present & (values < lower))
        problems.add(spec.name, "above the upper bound", present & (values > upper))
    if spec.type is ColumnType.DECIMAL:
        return pd.Series(values, dtype=np.float64)
    problems.add(spec.name, "not a whole number", present & (np.floor(np.where(present, values, 0)) != values))
    if spec.levels is not None:
        problems.add(spec.name, "outside the declared levels", present & ~np.isin(values, list(spec.levels)))
    whole = np.where(present & (np.floor(np.where(present, values, 0)) == values), values, np.nan)
    return pd.Series(whole).astype("Int64")


def _string(series: pd.Series, spec: ColumnSpec, text_codes: Sequence[str], problems: _Problems) -> pd.Series:
    text = series.astype("string").fillna("").str.strip()
    missing = _text_missing(text, text_codes)
    if spec.levels is not None:
        problems.add(spec.name, "outside the declared levels", ~missing & ~text.isin(list(spec.levels)).to_numpy())
    return text.mask(pd.Series(missing, index=text.index)).astype("string")


def _boolean(series: pd.Series, spec: ColumnSpec, text_codes: Sequence[str], problems: _Problems) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean")
    text = series.astype("string").fillna("").str.strip()
    missing = _text_missing(text, text_codes)
    lowered = text.str.lower()
    is_true = lowered.isin(list(_TRUE)).to_numpy(dtype=bool)
    is_false = lowered.isin(list(_FALSE)).to_numpy(dtype=bool)
    problems.add(spec.name, "not a boolean", ~missing & ~is_true & ~is_false)
    out = pd.Series(pd.array([pd.NA] * len(series), dtype="boolean"))
    out[is_true & ~missing] = True
    out[is_false & ~missing] = False
    return out


def _date(series: pd.Series, spec: ColumnSpec, text_codes: Sequence[str], problems: _Problems) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        stamps = pd.Series(pd.to_datetime(series))
        missing = stamps.isna().to_numpy(dtype=bool)
        problems.add(
            spec.name, "not a date (has a time of day)", ~missing & (stamps != stamps.dt.normalize()).to_numpy()
        )
    else:
        text = series.map(lambda v: v.isoformat() if isinstance(v, date) else v).astype("string").fillna("")
        text = text.str.strip()
        missing = _text_missing(text, text_codes)
        stamps = pd.Series(pd.to_datetime(text.where(~pd.Series(missing)), format="%Y-%m-%d", errors="coerce"))
        problems.add(spec.name, "not an ISO date (YYYY-MM-DD)", ~missing & stamps.isna().to_numpy(dtype=bool))
    if spec.bounds is not None:
        lower, upper = (pd.Timestamp(b) for b in spec.bounds)
        present = stamps.notna().to_numpy(dtype=bool)
        problems.add(spec.name, "before the lower bound", present & (stamps < lower).to_numpy(dtype=bool))
        problems.add(spec.name, "after the upper bound", present & (stamps > upper).to_numpy(dtype=bool))
    return stamps.where(~pd.Series(missing))


def load_table(path: Path, schema: DatasetSchema) -> pd.DataFrame:
    """The file's rows, typed as declared; refused as a whole if any value breaks the schema."""
    if not path.is_file():
        raise _refuse("file: not found")
    frame = _read_parquet(path, schema) if file_format(path, schema) == "parquet" else _read_csv(path, schema)
    problems = _Problems()
    columns: dict[str, pd.Series] = {}
    for spec in schema.columns:
        text_codes = [*schema.missing_values, *(_code_text(code) for code in spec.missing_values)]
        series = frame[spec.name].reset_index(drop=True)
        if spec.type in (ColumnType.INTEGER, ColumnType.DECIMAL):
            columns[spec.name] = _numeric(series, spec, text_codes, problems)
        elif spec.type is ColumnType.STRING:
            columns[spec.name] = _string(series, spec, text_codes, problems)
        elif spec.type is ColumnType.BOOLEAN:
            columns[spec.name] = _boolean(series, spec, text_codes, problems)
        else:
            columns[spec.name] = _date(series, spec, text_codes, problems)
    problems.raise_if_any()
    return pd.DataFrame(columns)


def _code_text(code: bool | int | float | str) -> str:
    if isinstance(code, bool):
        return "true" if code else "false"
    return str(code)
