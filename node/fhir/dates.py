"""FHIR R4 dates as half-open ranges of integer epoch microseconds (UTC).

FHIR search compares dates as ranges: a value stands for every instant its precision allows, so
``2020`` is the whole year 2020, ``2020-03-05`` the whole day and ``2020-03-05T10:00:05.5Z`` the
100 ms from 10:00:05.5 on. :func:`fhir_range` turns a FHIR ``date``, ``dateTime`` or ``instant``
(or a date search value, which may omit the seconds) into ``[low, high)`` in microseconds since
1970-01-01T00:00:00Z. The search index stores these integers, so a date search is two integer
comparisons whatever the precision on either side.

It runs for every indexed date at ingest, so it is one compiled regular expression, table lookups
and integer arithmetic (no ``datetime``), behind a bounded memo of recent values. Errors never
contain the value, which may be patient data.
"""

from __future__ import annotations

import re

__all__ = ["MAX_INSTANT", "MIN_INSTANT", "fhir_range", "period_range"]

_SECOND = 1_000_000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR

# Widths of a fraction of a second with 1..6 digits, in microseconds.
_FRACTION_WIDTH = (0, 100_000, 10_000, 1_000, 100, 10, 1)
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# One pattern for date, dateTime, instant and search values: each part is optional only after the
# one before it is present, and a timezone only follows a time (as the R4 regexes require).
_PATTERN = re.compile(
    r"([0-9]{4})"
    r"(?:-([0-9]{2})"
    r"(?:-([0-9]{2})"
    r"(?:T([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:\.([0-9]+))?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
    r")?)?)?"
)
_fullmatch = _PATTERN.fullmatch


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm)."""
    if month <= 2:
        year -= 1
        month += 9
    else:
        month -= 3
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * month + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


#: Epoch microseconds of 0001-01-01T00:00:00Z, the earliest instant FHIR can express.
MIN_INSTANT: int = _days_from_civil(1, 1, 1) * _DAY
#: Epoch microseconds just after 9999-12-31T23:59:59.999999Z: the exclusive end of all time.
MAX_INSTANT: int = _days_from_civil(10_000, 1, 1) * _DAY


def _malformed(what: str) -> ValueError:
    # The message names the rule that failed, never the value: the value may be patient data.
    return ValueError(f"not a valid FHIR date: {what}")


# Bounded caches, cleared when full (cheaper than LRU bookkeeping, and misses are still correct).
# Only valid values get in, so invalid input cannot grow them beyond the bound either.
_MEMO_SIZE = 16_384
# Longer valid values exist (any number of fraction digits) but are not worth memory.
_MEMO_MAX_KEY = 40
_memo: dict[str, tuple[int, int]] = {}
_day_starts: dict[str, int] = {}

# Two-digit fields to microseconds; a missing key is an out-of-range field. R4 allows second 60.
_HOURS = {f"{h:02d}": h * _HOUR for h in range(24)}
_MINUTES = {f"{m:02d}": m * _MINUTE for m in range(60)}
_SECONDS = {f"{s:02d}": s * _SECOND for s in range(61)}
# Every offset R4 allows (-14:00 .. +14:00), as microseconds to subtract from local time.
_ZONES = {"Z": 0} | {
    f"{sign}{h:02d}:{m:02d}": (1 if sign == "+" else -1) * (h * _HOUR + m * _MINUTE)
    for sign in "+-"
    for h in range(15)
    for m in range(60)
    if h < 14 or m == 0
}


def _day_start(key: str, year_s: str, month_s: str, day_s: str) -> int:
    """Epoch microseconds of the start of a ``YYYY-MM-DD`` day, validating year, month and day."""
    year = int(year_s)
    month = int(month_s)
    day = int(day_s)
    if year == 0:
        raise _malformed("year zero")
    if not 1 <= month <= 12:
        raise _malformed("month out of range")
    if not 1 <= day <= _DAYS_IN_MONTH[month] and not (
        month == 2 and day == 29 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    ):
        raise _malformed("day out of range")
    start = _days_from_civil(year, month, day) * _DAY
    if len(_day_starts) >= _MEMO_SIZE:
        _day_starts.clear()
    _day_starts[key] = start
    return start


def _parse(value: str) -> tuple[int, int]:
    match = _fullmatch(value)
    if match is None:
        raise _malformed("not of the form YYYY[-MM[-DD[Thh:mm[:ss[.f]][Z|+hh:mm]]]]")
    year_s, month_s, day_s, hour_s, minute_s, second_s, fraction_s, zone_s = match.groups()
    if day_s is None:
        return _year_or_month(year_s, month_s)
    low = _day_starts.get(value[:10])
    if low is None:
        low = _day_start(value[:10], year_s, month_s, day_s)
    if hour_s is None:
        return low, low + _DAY
    # Table lookups convert and range-check two-digit fields at once (int() is the slow part).
    hour = _HOURS.get(hour_s)
    minute = _MINUTES.get(minute_s)
    if hour is None or minute is None:
        raise _malformed("time out of range")
    low += hour + minute
    if second_s is None:
        width = _MINUTE
    else:
        second = _SECONDS.get(second_s)
        if second is None:
            raise _malformed("time out of range")
        low += second
        if fraction_s is None:
            width = _SECOND
        elif len(fraction_s) >= 6:
            low += int(fraction_s[:6])
            width = 1
        else:
            width = _FRACTION_WIDTH[len(fraction_s)]
            low += int(fraction_s) * width
    if zone_s is None:
        return low, low + width
    offset = _ZONES.get(zone_s)
    if offset is None:
        raise _malformed("timezone offset out of range")
    if not offset:
        return low, low + width
    low -= offset
    high = low + width
    if low < MIN_INSTANT or high > MAX_INSTANT:
        # Clip to the representable instants, keeping the range non-empty.
        low = min(max(low, MIN_INSTANT), MAX_INSTANT - 1)
        high = max(min(high, MAX_INSTANT), MIN_INSTANT + 1)
    return low, high


def _year_or_month(year_s: str, month_s: str | None) -> tuple[int, int]:
    year = int(year_s)
    if year == 0:
        raise _malformed("year zero")
    if month_s is None:
        return _days_from_civil(year, 1, 1) * _DAY, _days_from_civil(year + 1, 1, 1) * _DAY
    month = int(month_s)
    if not 1 <= month <= 12:
        raise _malformed("month out of range")
    low = _days_from_civil(year, month, 1) * _DAY
    if month == 12:
        return low, _days_from_civil(year + 1, 1, 1) * _DAY
    return low, _days_from_civil(year, month + 1, 1) * _DAY


def fhir_range(value: str) -> tuple[int, int]:
    """The half-open range ``[low, high)`` of epoch microseconds (UTC) that ``value`` stands for.

    ``value`` is a FHIR R4 ``date``, ``dateTime`` or ``instant``, or a date search value: ``YYYY``,
    ``YYYY-MM``, ``YYYY-MM-DD``, then optionally ``Thh:mm``, ``Thh:mm:ss`` or ``Thh:mm:ss.f…`` and
    a timezone ``Z`` or ``±hh:mm``. The range is as wide as the precision: a year, month, day, minute,
    second, or ``10**-n`` s for ``n`` fractional digits (fractions finer than a microsecond are cut
    to the microsecond they fall in). A time with a timezone is converted to UTC; **a time without a
    timezone is taken as UTC**, on the index side and the search side alike (FHIR says "the
    server's local time", which for a node serving several hospitals' clients would be arbitrary).
    Dates without a time are calendar days in UTC, for the same reason. A leap second ``:60`` is
    accepted, as R4 allows, and counts as the first second of the next minute. Ranges that a
    timezone pushes past year 1 or 9999 are clipped to :data:`MIN_INSTANT`/:data:`MAX_INSTANT`.

    Raises ValueError for anything else (bad month or day, 30 February, hour 24, an offset beyond
    ±14:00, trailing text, the empty string); the message never contains the value.

    Recent results are memoised (a bounded dict): at ingest the same timestamps recur across the
    resources of one encounter, and a hit costs a dict lookup instead of a parse.
    """
    cached = _memo.get(value)
    if cached is not None:
        return cached
    result = _parse(value)
    if len(value) <= _MEMO_MAX_KEY:
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        _memo[value] = result
    return result


def period_range(start: str | None, end: str | None) -> tuple[int, int]:
    """The half-open range a FHIR ``Period`` covers: from the start's low to the end's high.

    A missing start means since :data:`MIN_INSTANT`, a missing end means until :data:`MAX_INSTANT`
    (an ongoing period). Raises ValueError if either bound is malformed (see :func:`fhir_range`) or
    the period ends before it starts (R4 invariant per-1); the message never contains the value.
    """
    low = MIN_INSTANT if start is None else fhir_range(start)[0]
    high = MAX_INSTANT if end is None else fhir_range(end)[1]
    if high <= low:
        raise _malformed("period ends before it starts")
    return low, high
