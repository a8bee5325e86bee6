"""FHIRPath values: items, equality, ordering, and dates and times of partial precision.

An :class:`Item` is one element of a FHIRPath collection: a JSON value from a resource (an object,
string, boolean, integer or :class:`~decimal.Decimal`) with its FHIR type when known. Decimals are
exact (``1.0`` keeps its scale when the JSON was parsed with ``parse_float=Decimal``; a float from
elsewhere is read through its shortest repr).

Dates, dateTimes and times stay the strings FHIR wrote; they are parsed only to compare them, with
FHIRPath's rule that values of different precision are not comparable (the result is empty, None
here) unless they differ within their common precision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from node.views.fhirpath.types import TEMPORAL_TYPES, is_number

__all__ = ["Item", "Temporal", "compare", "equals", "equivalent", "parse_temporal", "to_json", "wrap"]


class Item:
    """One element of a collection: a value and, when known, its FHIR type name."""

    __slots__ = ("type", "value")

    def __init__(self, value: object, type_: str | None = None) -> None:
        self.value = value
        self.type = type_

    def __repr__(self) -> str:  # tests and debugging only; never logged
        return f"Item({self.value!r}, {self.type!r})"


def wrap(value: object, type_: str | None = None) -> Item:
    """An item for a JSON value; a float becomes an exact Decimal of its shortest repr."""
    if type(value) is float:
        value = Decimal(repr(value))
    return Item(value, type_)


def to_json(value: object) -> object:
    """A value as plain JSON-able Python: Decimals become floats (recursively, inside objects)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent == 0 else float(value)
    if isinstance(value, dict):
        return {key: to_json(child) for key, child in value.items()}
    if isinstance(value, list):
        return [to_json(child) for child in value]
    return value


@dataclass(frozen=True, slots=True)
class Temporal:
    """A parsed date, dateTime or time: its components (as many as were given), fraction and zone."""

    kind: str  # "date" (dates and dateTimes compare with each other) or "time"
    parts: tuple[int, ...]
    fraction: str  # the digits after the seconds' decimal point, "" when absent
    zone: str | None  # "Z", "+hh:mm", "-hh:mm" or None


_DATETIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_TIME = re.compile(r"(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?")


def _zone_offset(zone: str) -> timedelta:
    if zone == "Z":
        return timedelta(0)
    sign = -1 if zone[0] == "-" else 1
    return sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))


def parse_temporal(text: str, type_: str | None) -> Temporal | None:
    """Parse a FHIR date, dateTime, instant or time; None when ``text`` is none of these."""
    if type_ == "time" or (type_ is None and ":" in text and "T" not in text and "-" not in text):
        match = _TIME.fullmatch(text)
        if match is None:
            return None
        parts = tuple(int(g) for g in match.groups()[:3] if g is not None)
        return Temporal("time", parts, match.group(4) or "", None)
    match = _DATETIME.fullmatch(text)
    if match is None:
        return None
    groups = match.groups()
    parts = tuple(int(g) for g in groups[:6] if g is not None)
    return Temporal("date", parts, groups[6] or "", groups[7])


def _normalised(value: Temporal) -> tuple[int, ...]:
    """Components in UTC when the value has a zone and at least hour precision."""
    if value.zone is None or len(value.parts) < 4:
        return value.parts
    padded = value.parts + (0,) * (6 - len(value.parts))
    try:
        year, month, day, hour, minute, second = padded[:6]
        zone = timezone(_zone_offset(value.zone))
        moment = datetime(year, month, day, hour, minute, second, tzinfo=zone).astimezone(UTC)
    except ValueError:
        return value.parts
    full = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    return full[: len(value.parts)]


def compare_temporal(a: Temporal, b: Temporal) -> int | None:
    """-1, 0 or 1; None when the two cannot be ordered (different kinds, or precision decides)."""
    if a.kind != b.kind:
        return None
    left, right = _normalised(a), _normalised(b)
    common = min(len(left), len(right))
    if left[:common] != right[:common]:
        return -1 if left[:common] < right[:common] else 1
    if len(left) != len(right):
        return None
    low, high = Decimal("0." + (a.fraction or "0")), Decimal("0." + (b.fraction or "0"))
    return (low > high) - (low < high)


def _temporal_pair(a: Item, b: Item) -> tuple[Temporal, Temporal] | None:
    """Both items parsed as dates/times when at least one is known to be one and both parse."""
    if not (a.type in TEMPORAL_TYPES or b.type in TEMPORAL_TYPES):
        return None
    if not isinstance(a.value, str) or not isinstance(b.value, str):
        return None
    kind = a.type if a.type in TEMPORAL_TYPES else b.type
    left = parse_temporal(a.value, a.type if a.type in TEMPORAL_TYPES else kind)
    right = parse_temporal(b.value, b.type if b.type in TEMPORAL_TYPES else kind)
    if left is None or right is None:
        return None
    return left, right


def equals(a: Item, b: Item) -> bool | None:
    """FHIRPath ``=`` on two single items; None (empty) when precision makes it undecidable."""
    x, y = a.value, b.value
    if is_number(x) and is_number(y):
        return bool(x == y)
    if isinstance(x, bool) or isinstance(y, bool):
        return isinstance(x, bool) and isinstance(y, bool) and x == y
    if isinstance(x, str) and isinstance(y, str):
        pair = _temporal_pair(a, b)
        if pair is not None:
            order = compare_temporal(*pair)
            return None if order is None else order == 0
        return x == y
    if isinstance(x, dict) and isinstance(y, dict):
        return x == y
    return False


def equivalent(a: Item, b: Item) -> bool:
    """FHIRPath ``~``: like ``=``, but strings ignore case and runs of whitespace, and never empty."""
    x, y = a.value, b.value
    if isinstance(x, str) and isinstance(y, str) and _temporal_pair(a, b) is None:
        return " ".join(x.lower().split()) == " ".join(y.lower().split())
    return bool(equals(a, b))


def compare(a: Item, b: Item) -> int | None:
    """Order two single items for ``<``, ``>``, ``<=``, ``>=``; None when not comparable."""
    x, y = a.value, b.value
    if is_number(x) and is_number(y):
        return (x > y) - (x < y)
    if isinstance(x, str) and isinstance(y, str):
        pair = _temporal_pair(a, b)
        if pair is not None:
            return compare_temporal(*pair)
        return (x > y) - (x < y)
    return None
