"""The standard views that ship with the node, and the typed column metadata analyses read.

The views live as ViewDefinition JSON files in ``library/`` (``patient_demographics``,
``conditions``, ``lab_observations``, ``encounters``, ``medications``). Every column declares its
FHIR type; every numeric column declares plausible bounds as a ``medfed.bounds`` tag (``"0..150"``),
which histograms take their bins from (never from the data's min and max). :class:`ColumnInfo`
exposes both, typed, so no analysis parses tags itself.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any

from common.errors import ErrorCode, NotFoundError
from node.views.definition import Column, ViewDefinition, parse_view
from node.views.errors import InvalidViewError

__all__ = [
    "BOUNDS_TAG",
    "NUMERIC_TYPES",
    "ColumnInfo",
    "StandardView",
    "column_info",
    "parse_bounds",
    "standard_view",
    "standard_views",
]

BOUNDS_TAG = "medfed.bounds"
NUMERIC_TYPES = frozenset(("integer", "decimal", "positiveInt", "unsignedInt", "integer64"))


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """A column's name, declared type and, for numeric columns, its declared bounds."""

    name: str
    type: str | None
    collection: bool
    lower: float | None
    upper: float | None
    description: str | None

    @property
    def numeric(self) -> bool:
        """True for integer and decimal columns."""
        return self.type in NUMERIC_TYPES


@dataclass(frozen=True, slots=True)
class StandardView:
    """A view of the node's library: its validated definition, source JSON and column metadata."""

    name: str
    definition: ViewDefinition
    source: dict[str, Any]
    columns: tuple[ColumnInfo, ...]

    @property
    def resource(self) -> str:
        """The resource type the view reads."""
        return self.definition.resource


def parse_bounds(text: str, location: str) -> tuple[float, float]:
    """``"lower..upper"`` as two finite numbers with lower < upper; InvalidViewError otherwise."""
    low_text, sep, high_text = text.partition("..")
    try:
        if not sep:
            raise ValueError
        lower, upper = float(Decimal(low_text.strip())), float(Decimal(high_text.strip()))
    except (ArithmeticError, ValueError):
        raise InvalidViewError(hints=[f"{location}: bounds must read lower..upper"]) from None
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise InvalidViewError(hints=[f"{location}: bounds must be finite with lower < upper"])
    return lower, upper


def _info(column: Column) -> ColumnInfo:
    bounds = [tag.value for tag in column.tags if tag.name == BOUNDS_TAG]
    lower = upper = None
    if len(bounds) > 1:
        raise InvalidViewError(hints=[f"{column.location}.tag: {BOUNDS_TAG} given twice"])
    if bounds:
        if column.type not in NUMERIC_TYPES:
            raise InvalidViewError(hints=[f"{column.location}.tag: bounds on a column that is not numeric"])
        lower, upper = parse_bounds(bounds[0], f"{column.location}.tag")
    return ColumnInfo(column.name, column.type, column.collection, lower, upper, column.description)


def column_info(view: ViewDefinition) -> tuple[ColumnInfo, ...]:
    """Typed metadata of every output column of ``view``, in output order."""
    return tuple(_info(column) for column in view.columns)


def _load(file_name: str) -> StandardView:
    source = json.loads((resources.files("node.views") / "library" / file_name).read_text(encoding="utf-8"))
    definition = parse_view(source)
    columns = column_info(definition)
    for info, column in zip(columns, definition.columns, strict=True):
        if column.type is None:
            raise InvalidViewError(hints=[f"{file_name}: {column.location}.type: standard views declare every type"])
        if info.numeric and info.lower is None:
            raise InvalidViewError(hints=[f"{file_name}: {column.location}: numeric columns declare bounds"])
    if definition.name is None or file_name != f"{definition.name}.json":
        raise InvalidViewError(hints=[f"{file_name}: name: a standard view is named as its file"])
    return StandardView(definition.name, definition, source, columns)


@functools.cache
def standard_views() -> tuple[StandardView, ...]:
    """Every view of the library, validated (a broken file fails here, at the first use)."""
    folder = resources.files("node.views") / "library"
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".json"))
    return tuple(_load(name) for name in names)


def standard_view(name: str) -> StandardView:
    """One library view by name; NotFoundError when the library has none of that name."""
    for view in standard_views():
        if view.name == name:
            return view
    raise NotFoundError(ErrorCode.NOT_FOUND, detail="no standard view of that name", hints=["view: unknown"])
