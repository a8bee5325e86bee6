"""Parsing FHIR search parameters into a SearchQuery (no database)."""

from __future__ import annotations

import pytest

from common.errors import ErrorCode, InputError
from node.fhir.dates import fhir_range
from node.fhir.query import (
    DateValue,
    MissingValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    decode_page_token,
    encode_page_token,
    parse_search,
)


def test_token_forms() -> None:
    """code, system|code, |code and system| parse to the four token shapes; commas OR."""
    query = parse_search(
        "Observation",
        [("code", "a,http://loinc.org|b,|c,http://loinc.org|")],
        default_count=50,
        max_count=1000,
    )
    (criterion,) = query.criteria
    assert criterion.values == (
        TokenValue(None, "a"),
        TokenValue("http://loinc.org", "b"),
        TokenValue("", "c"),
        TokenValue("http://loinc.org", None),
    )


def test_escaped_comma_is_part_of_the_value() -> None:
    """A backslash-escaped comma does not split values."""
    query = parse_search("Patient", [("family", r"a\,b")], default_count=50, max_count=1000)
    assert query.criteria[0].values == (StringValue("a,b"),)


def test_date_prefixes_and_ranges() -> None:
    """Each date prefix is kept with the value's precision range; no prefix means eq."""
    query = parse_search("Observation", [("date", "ge2024-02"), ("date", "2024")], default_count=50, max_count=1000)
    first, second = query.criteria
    assert first.values == (DateValue("ge", *fhir_range("2024-02")),)
    assert second.values == (DateValue("eq", *fhir_range("2024")),)


@pytest.mark.parametrize("value", ["xx2024", "ge20x4", "2024-13", "", "ge"])
def test_bad_dates_are_invalid_search(value: str) -> None:
    """An unknown prefix or a malformed date is INVALID_SEARCH, and the hint names only the parameter."""
    with pytest.raises(InputError) as caught:
        parse_search("Observation", [("date", value)], default_count=50, max_count=1000)
    assert caught.value.code is ErrorCode.INVALID_SEARCH
    assert caught.value.hints[0].startswith("date:")
    if value:
        assert value not in " ".join(caught.value.hints)


def test_reference_forms() -> None:
    """patient=id implies Patient; subject:Patient=id and subject=Patient/id name the type."""
    query = parse_search(
        "Observation",
        [("patient", "p1"), ("subject:Patient", "p2"), ("subject", "Patient/p3")],
        default_count=50,
        max_count=1000,
    )
    values = [c.values[0] for c in query.criteria]
    assert values == [
        ReferenceValue("Patient", "p1"),
        ReferenceValue("Patient", "p2"),
        ReferenceValue("Patient", "p3"),
    ]


def test_missing_modifier() -> None:
    """:missing takes true or false."""
    query = parse_search("Observation", [("code:missing", "true")], default_count=50, max_count=1000)
    assert query.criteria[0].values == (MissingValue(True),)
    with pytest.raises(InputError):
        parse_search("Observation", [("code:missing", "maybe")], default_count=50, max_count=1000)


def test_unknown_parameters_are_ignored_and_not_in_self_link() -> None:
    """Unknown parameters (fhirpy's _totalMethod, vendor ones) are ignored and not reported as used."""
    query = parse_search(
        "Patient",
        [("_totalMethod", "count"), ("foo", "bar"), ("gender", "male")],
        default_count=50,
        max_count=1000,
    )
    assert [c.name for c in query.criteria] == ["gender"]
    assert query.used_params == (("gender", "male"),)


def test_count_is_capped_and_zero_means_total_only() -> None:
    """_count is capped at the maximum page size; _count=0 asks for the total."""
    assert parse_search("Patient", [("_count", "5000")], default_count=50, max_count=1000).count == 1000
    zero = parse_search("Patient", [("_count", "0"), ("_total", "none")], default_count=50, max_count=1000)
    assert zero.count == 0
    assert zero.with_total


def test_unsupported_modifiers_and_iterate_are_refused() -> None:
    """Modifiers the parameter type lacks, and _include:iterate, are INVALID_SEARCH."""
    cases = [
        ("Patient", ("gender:contains", "x")),
        ("Observation", ("_include:iterate", "Observation:patient")),
    ]
    for resource_type, param in cases:
        with pytest.raises(InputError):
            parse_search(resource_type, [param], default_count=50, max_count=1000)


def test_page_tokens_are_bound_to_their_search() -> None:
    """A page token decodes only for the search it was made for; altered tokens are refused."""
    params = [("gender", "male"), ("_count", "10")]
    token = encode_page_token(30, params)
    assert decode_page_token(token, [*params, ("_page", token)]) == 30
    with pytest.raises(InputError):
        decode_page_token(token, [("gender", "female"), ("_count", "10")])
    with pytest.raises(InputError):
        decode_page_token(token[:-2] + "xx", params)
    with pytest.raises(InputError):
        decode_page_token("!!!", params)


def test_aliases_search_the_canonical_parameter() -> None:
    """Condition?status= and ?date= search clinical-status and onset-date (medfed aliases)."""
    query = parse_search("Condition", [("status", "active"), ("date", "2020")], default_count=50, max_count=1000)
    assert [c.name for c in query.criteria] == ["clinical-status", "onset-date"]
