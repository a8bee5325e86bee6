"""``lowBoundary()`` and ``highBoundary()``: the range of values a value of limited precision stands for.

Semantics, as the SQL-on-FHIR v2 test suite pins them:

* a decimal stands for every value that *truncates* to it: ``1.0`` covers ``[1.00000000, 1.09999999]``
  at the default precision of 8 decimal places (a negative value mirrors it). A boundary that needs
  more than 15 significant digits, which a double (the type a decimal column is stored as) cannot
  hold exactly, is empty rather than silently rounded;
* a date fills the missing month and day with the first or last (``2024-02`` -> ``2024-02-29``);
* a dateTime fills the missing parts, pads the fraction to nanoseconds (with 0s or 9s) and, without a
  zone, takes the earliest (``+14:00``) or latest (``-12:00``) zone on Earth;
* a time fills like a dateTime's time part;
* a Period gives its start's low boundary or its end's high boundary.
"""

from __future__ import annotations

import calendar
from decimal import Decimal, InvalidOperation

from node.views.fhirpath.types import is_number
from node.views.fhirpath.values import Item, parse_temporal

__all__ = ["boundary"]

DEFAULT_DECIMAL_PRECISION = 8
_MAX_DECIMAL_PRECISION = 28
_MAX_SIGNIFICANT_DIGITS = 15
_LOWEST_ZONE, _HIGHEST_ZONE = "+14:00", "-12:00"


def _decimal_boundary(value: Decimal, precision: int, high: bool) -> Decimal | None:
    if precision < 0 or precision > _MAX_DECIMAL_PRECISION:
        return None
    exponent = value.as_tuple().exponent
    given = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    quantum = Decimal(1).scaleb(-precision)
    magnitude = abs(value)
    try:
        result = magnitude.quantize(quantum, rounding="ROUND_DOWN")
        if high and given < precision:
            result = (result + Decimal(1).scaleb(-given) - quantum).quantize(quantum)
    except InvalidOperation:
        return None
    digits = result.as_tuple().digits
    significant = len(digits) - next((i for i, d in enumerate(digits) if d), len(digits))
    if significant > _MAX_SIGNIFICANT_DIGITS:
        return None
    return -result if value < 0 else result


def _date_boundary(parts: tuple[int, ...], high: bool) -> str:
    year = parts[0]
    month = parts[1] if len(parts) > 1 else (12 if high else 1)
    day = parts[2] if len(parts) > 2 else (calendar.monthrange(year, month)[1] if high else 1)
    return f"{year:04d}-{month:02d}-{day:02d}"


def _time_boundary(parts: tuple[int, ...], fraction: str, high: bool) -> str:
    hour = parts[0]
    minute = parts[1] if len(parts) > 1 else (59 if high else 0)
    second = parts[2] if len(parts) > 2 else (59 if high else 0)
    nanos = (fraction + ("9" if high else "0") * 9)[:9]
    return f"{hour:02d}:{minute:02d}:{second:02d}.{nanos}"


def _temporal_boundary(text: str, type_: str | None, high: bool) -> Item | None:
    parsed = parse_temporal(text, type_)
    if parsed is None:
        return None
    if parsed.kind == "time":
        return Item(_time_boundary(parsed.parts, parsed.fraction, high), "time")
    is_date = type_ == "date" or (type_ is None and "T" not in text)
    if is_date and parsed.zone is None and len(parsed.parts) <= 3:
        return Item(_date_boundary(parsed.parts[:3], high), "date")
    date = _date_boundary(parsed.parts[:3], high)
    time = _time_boundary(parsed.parts[3:] or ((23,) if high else (0,)), parsed.fraction, high)
    zone = parsed.zone or (_HIGHEST_ZONE if high else _LOWEST_ZONE)
    return Item(f"{date}T{time}{zone}", "dateTime")


def boundary(item: Item, precision: int | None, *, high: bool) -> Item | None:
    """The low or high boundary of one item; None when the item has no boundary."""
    value = item.value
    if is_number(value):
        decimal = _decimal_boundary(Decimal(value), DEFAULT_DECIMAL_PRECISION if precision is None else precision, high)
        return None if decimal is None else Item(decimal, "decimal")
    if isinstance(value, str):
        if item.type is not None and item.type not in ("date", "dateTime", "instant", "time"):
            return None
        return _temporal_boundary(value, item.type, high)
    if isinstance(value, dict) and (
        item.type == "Period" or (item.type is None and ("start" in value or "end" in value))
    ):
        edge = value.get("end" if high else "start")
        return _temporal_boundary(edge, "dateTime", high) if isinstance(edge, str) else None
    return None
