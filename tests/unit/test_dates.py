"""FHIR date values as half-open ranges of epoch microseconds: node.fhir.dates."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.fhir.dates import MAX_INSTANT, MIN_INSTANT, fhir_range, period_range

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SECOND = 1_000_000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR


def _us(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> int:
    """Epoch microseconds of a UTC date-time, computed with the standard library as the reference."""
    return (datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC) - _EPOCH) // _MICROSECOND


def _fhir(moment: datetime) -> str:
    """A FHIR instant with microseconds and the moment's own offset (strftime pads years unevenly)."""
    offset = moment.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(offset) // timedelta(minutes=1)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
        f"{moment.second:02d}.{moment.microsecond:06d}{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    )


def test_min_and_max_instant_bound_the_years_fhir_can_write() -> None:
    """MIN_INSTANT is 0001-01-01T00:00:00Z; MAX_INSTANT is 1 µs after 9999-12-31T23:59:59.999999Z."""
    assert _us(1, 1, 1) == MIN_INSTANT
    assert _us(9999, 12, 31, 23, 59, 59, 999_999) + 1 == MAX_INSTANT


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("2020", _us(2020, 1, 1), _us(2021, 1, 1)),
        ("2019", _us(2019, 1, 1), _us(2020, 1, 1)),
        ("2020-03", _us(2020, 3, 1), _us(2020, 4, 1)),
        ("2020-02", _us(2020, 2, 1), _us(2020, 3, 1)),
        ("2020-12", _us(2020, 12, 1), _us(2021, 1, 1)),
        ("2020-03-05", _us(2020, 3, 5), _us(2020, 3, 6)),
        ("2020-12-31", _us(2020, 12, 31), _us(2021, 1, 1)),
        ("2020-03-05T10:00", _us(2020, 3, 5, 10, 0), _us(2020, 3, 5, 10, 1)),
        ("2020-03-05T10:00Z", _us(2020, 3, 5, 10, 0), _us(2020, 3, 5, 10, 1)),
        ("2020-03-05T10:00:05", _us(2020, 3, 5, 10, 0, 5), _us(2020, 3, 5, 10, 0, 6)),
        ("2020-03-05T10:00:05Z", _us(2020, 3, 5, 10, 0, 5), _us(2020, 3, 5, 10, 0, 6)),
        ("2020-03-05T10:00:05.5Z", _us(2020, 3, 5, 10, 0, 5, 500_000), _us(2020, 3, 5, 10, 0, 5, 600_000)),
        ("2020-03-05T10:00:05.12Z", _us(2020, 3, 5, 10, 0, 5, 120_000), _us(2020, 3, 5, 10, 0, 5, 130_000)),
        ("2020-03-05T10:00:05.123Z", _us(2020, 3, 5, 10, 0, 5, 123_000), _us(2020, 3, 5, 10, 0, 5, 124_000)),
        ("2020-03-05T10:00:05.000Z", _us(2020, 3, 5, 10, 0, 5), _us(2020, 3, 5, 10, 0, 5, 1_000)),
        (
            "2020-03-05T10:00:05.123456Z",
            _us(2020, 3, 5, 10, 0, 5, 123_456),
            _us(2020, 3, 5, 10, 0, 5, 123_457),
        ),
        (
            "2020-03-05T10:00:05.1234567Z",
            _us(2020, 3, 5, 10, 0, 5, 123_456),
            _us(2020, 3, 5, 10, 0, 5, 123_457),
        ),
        ("1969-12-31T23:59:59Z", -_SECOND, 0),
        ("1970", 0, 365 * _DAY),
        ("0001", MIN_INSTANT, _us(2, 1, 1)),
        ("9999", _us(9999, 1, 1), MAX_INSTANT),
    ],
)
def test_each_precision_is_the_range_it_stands_for(value: str, low: int, high: int) -> None:
    """A year, month, day, minute, second or n-digit fraction is the half-open range of that width."""
    assert fhir_range(value) == (low, high)


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("2020-03-05T10:00:05+05:30", (2020, 3, 5, 4, 30, 5)),
        ("2020-03-05T10:00:05-05:00", (2020, 3, 5, 15, 0, 5)),
        ("2020-03-05T10:00:05+00:00", (2020, 3, 5, 10, 0, 5)),
        ("2020-03-05T10:00:05-00:00", (2020, 3, 5, 10, 0, 5)),
        ("2020-03-05T10:00:05+14:00", (2020, 3, 4, 20, 0, 5)),
        ("2020-03-05T10:00:05-12:00", (2020, 3, 5, 22, 0, 5)),
        ("2020-01-01T01:00:00+02:00", (2019, 12, 31, 23, 0, 0)),
        ("2019-12-31T23:30:00-01:00", (2020, 1, 1, 0, 30, 0)),
        ("2020-02-28T23:00:00-02:00", (2020, 2, 29, 1, 0, 0)),
    ],
)
def test_a_timezone_offset_is_converted_to_utc(value: str, utc: tuple[int, int, int, int, int, int]) -> None:
    """A dateTime with an offset stands for the same second in UTC, across day and year ends."""
    assert fhir_range(value) == (_us(*utc), _us(*utc) + _SECOND)


def test_an_offset_minute_search_value_keeps_minute_precision() -> None:
    """A search value without seconds but with an offset is one minute wide, shifted to UTC."""
    assert fhir_range("2020-03-05T10:00+01:00") == (_us(2020, 3, 5, 9, 0), _us(2020, 3, 5, 9, 1))


def test_a_time_without_timezone_is_taken_as_utc() -> None:
    """A dateTime without a timezone has the same range as the same dateTime with Z."""
    assert fhir_range("2020-03-05T10:00:05") == fhir_range("2020-03-05T10:00:05Z")
    assert fhir_range("2020-03-05T10:00") == fhir_range("2020-03-05T10:00Z")


@pytest.mark.parametrize("value", ["2020-02-29", "2000-02-29", "2400-02-29", "1600-02-29", "0004-02-29"])
def test_29_february_exists_in_leap_years(value: str) -> None:
    """29 February is a valid day in years divisible by 4, except centuries not divisible by 400."""
    low, high = fhir_range(value)
    assert high - low == _DAY
    assert fhir_range(value[:4] + "-03-01")[0] == high


@pytest.mark.parametrize("value", ["2019-02-29", "1900-02-29", "2100-02-29", "2021-02-29"])
def test_29_february_is_rejected_in_other_years(value: str) -> None:
    """29 February of a common year (incl. 1900, 2100) is not a date."""
    with pytest.raises(ValueError, match="day out of range"):
        fhir_range(value)


def test_february_of_a_leap_year_has_29_days() -> None:
    """The month range of February is 29 days in a leap year and 28 otherwise."""
    low, high = fhir_range("2020-02")
    assert high - low == 29 * _DAY
    low, high = fhir_range("2021-02")
    assert high - low == 28 * _DAY


def test_a_leap_second_is_the_first_second_of_the_next_minute() -> None:
    """R4 allows second 60; it is counted as the next minute's first second."""
    assert fhir_range("2016-12-31T23:59:60Z") == fhir_range("2017-01-01T00:00:00Z")


def test_ranges_pushed_past_year_1_or_9999_by_an_offset_are_clipped() -> None:
    """An offset cannot move a range below MIN_INSTANT or above MAX_INSTANT, and the range stays non-empty."""
    low, high = fhir_range("0001-01-01T00:00:00+01:00")
    assert low == MIN_INSTANT
    assert high > low
    low, high = fhir_range("9999-12-31T23:59:59-01:00")
    assert high == MAX_INSTANT
    assert high > low


@pytest.mark.parametrize(
    "value",
    [
        "",
        "20",
        "12020",
        "0000",
        "0000-01-01",
        "1987-13",
        "1987-00",
        "1987-1",
        "1987-02-30",
        "1987-04-31",
        "1987-06-00",
        "1987-06-1",
        "1987-06-15T24:00:00Z",
        "1987-06-15T10:60Z",
        "1987-06-15T10:00:61Z",
        "1987-06-15T10",
        "1987-06-15T10:00:00+15:00",
        "1987-06-15T10:00:00+14:30",
        "1987-06-15T10:00:00+05:60",
        "1987-06-15T10:00:00+0500",
        "1987-06-15T10:00:00 +05:00",
        "1987-06-15Z",
        "1987-06-15 10:00:00Z",
        "1987-06-15T10:00:00Zjunk",
        "1987-06-15T10:00:00.Z",
        "1987-06-15\n",
        " 1987-06-15",
        "１９８７",
        "1987-06-15T10:00:00z",
    ],
)
def test_malformed_values_raise_without_echoing_the_value(value: str) -> None:
    """Anything that is not a valid FHIR date raises ValueError, and the message never contains the value."""
    with pytest.raises(ValueError, match="not a valid FHIR date") as caught:
        fhir_range(value)
    message = str(caught.value)
    assert "1987" not in message
    if value.strip():
        assert value.strip() not in message


def test_repeated_values_give_equal_ranges() -> None:
    """A value parsed again (served from the memo) has the same range as the first time."""
    first = fhir_range("2011-09-27T03:33:15+00:00")
    assert fhir_range("2011-09-27T03:33:15+00:00") == first
    assert fhir_range("2011-09-27T03:33:15-01:00") == (first[0] + _HOUR, first[1] + _HOUR)


_OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=_OFFSETS))
def test_an_instant_matches_the_standard_library(moment: datetime) -> None:
    """Any instant with microseconds and any R4 offset maps to the stdlib's epoch microseconds, 1 µs wide."""
    expected = (moment - _EPOCH) // _MICROSECOND
    assert fhir_range(_fhir(moment)) == (expected, expected + 1)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
def test_coarser_precisions_contain_finer_ones(moment: datetime) -> None:
    """Each truncation of a dateTime (second, minute, day, month, year) contains the finer ranges."""
    full = _fhir(moment.replace(tzinfo=UTC))[:19]  # YYYY-MM-DDThh:mm:ss, taken as UTC
    nested = [fhir_range(full[:length]) for length in (19, 16, 10, 7, 4)]
    for finer, coarser in itertools.pairwise(nested):
        assert coarser[0] <= finer[0] < finer[1] <= coarser[1]


def test_a_period_runs_from_the_start_low_to_the_end_high() -> None:
    """A Period covers from the start's first instant to the end's last, at each end's precision."""
    assert period_range("2020-01-01", "2020-01-31") == (_us(2020, 1, 1), _us(2020, 2, 1))
    assert period_range("2020-01-01T10:00:00+01:00", "2020-01-01T10:30:00+01:00") == (
        _us(2020, 1, 1, 9, 0, 0),
        _us(2020, 1, 1, 9, 30, 1),
    )


def test_a_period_with_equal_ends_is_that_instant_or_day() -> None:
    """A Period whose start and end are the same value covers that value's range."""
    assert period_range("2020-01-01", "2020-01-01") == fhir_range("2020-01-01")


def test_open_period_ends_extend_to_the_bounds_of_time() -> None:
    """A missing start means since MIN_INSTANT, a missing end until MAX_INSTANT."""
    assert period_range(None, "2020") == (MIN_INSTANT, _us(2021, 1, 1))
    assert period_range("2020", None) == (_us(2020, 1, 1), MAX_INSTANT)
    assert period_range(None, None) == (MIN_INSTANT, MAX_INSTANT)


def test_a_period_that_ends_before_it_starts_raises_without_echoing_it() -> None:
    """A Period ending before it starts (invariant per-1) raises ValueError without the values."""
    with pytest.raises(ValueError, match="ends before it starts") as caught:
        period_range("1987-06-15", "1987-06-14")
    assert "1987" not in str(caught.value)


@pytest.mark.parametrize(("start", "end"), [("1987-13", None), (None, "1987-02-30"), ("", "1987")])
def test_a_period_with_a_malformed_end_raises(start: str | None, end: str | None) -> None:
    """A malformed start or end (also the empty string) makes the Period raise ValueError."""
    with pytest.raises(ValueError, match="not a valid FHIR date") as caught:
        period_range(start, end)
    assert "1987" not in str(caught.value)
