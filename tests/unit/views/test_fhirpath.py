"""The FHIRPath engine of the views: navigation, functions, operators, literals, boundaries, errors."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pytest

from node.views.errors import InvalidViewError
from node.views.fhirpath import FhirPathEvaluationError, FhirPathSyntaxError, compile_path, wrap

PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "active": True,
    "gender": "female",
    "birthDate": "1980-02",
    "deceasedDateTime": "2020-05-06T10:00:00+02:00",
    "name": [
        {"use": "official", "family": "Okafor", "given": ["Ada", "Ngozi"]},
        {"use": "nickname", "given": ["Nne"]},
    ],
    "extension": [
        {"url": "http://example.org/sex", "valueCode": "F"},
        {"url": "http://example.org/race", "extension": [{"url": "omb", "valueCoding": {"code": "2054-5"}}]},
    ],
    "managingOrganization": {"reference": "Organization/org-9"},
    "generalPractitioner": [
        {"reference": "https://fhir.example.org/r4/Practitioner/pr-1/_history/3"},
        {"reference": "urn:uuid:0b3e1d7c-0000-4000-8000-000000000000"},
    ],
}


def values(expression: str, resource: Mapping[str, object] = PATIENT, **constants: object) -> list[object]:
    """The plain values ``expression`` yields on ``resource`` (constants as %name)."""
    variables = {name: [wrap(value)] for name, value in constants.items()}
    return [item.value for item in compile_path(expression).evaluate([wrap(resource, "Patient")], variables)]


def test_navigation_flattens_arrays_and_skips_missing_elements() -> None:
    """A path visits every element of every array on the way; a missing element yields nothing."""
    assert values("name.given") == ["Ada", "Ngozi", "Nne"]
    assert values("name.family") == ["Okafor"]
    assert values("telecom.value") == []


def test_a_leading_resource_type_names_the_resource_itself() -> None:
    """``Patient.name`` starts at the resource, like ``name``; another type name yields nothing."""
    assert values("Patient.name.family") == ["Okafor"]
    assert values("Observation.name.family") == []


def test_choice_elements_are_reached_by_base_name_and_typed_by_suffix() -> None:
    """``deceased`` finds ``deceasedDateTime``; ``ofType`` keeps it only for dateTime."""
    assert values("deceased") == ["2020-05-06T10:00:00+02:00"]
    assert values("deceased.ofType(dateTime)") == ["2020-05-06T10:00:00+02:00"]
    assert values("deceased.ofType(boolean)") == []
    assert values("deceased is dateTime") == [True]
    assert values("deceased as boolean") == []


def test_of_type_matches_untyped_values_by_their_json_shape() -> None:
    """Without a schema, a string is a string, a date-shaped string a date, an object a complex type."""
    assert values("gender.ofType(string)") == ["female"]
    assert values("birthDate.ofType(date)") == ["1980-02"]
    assert values("gender.ofType(date)") == []
    assert values("active.ofType(boolean)") == [True]
    assert values("name.ofType(HumanName).count()") == [2]
    assert values("ofType(Patient).id") == ["p1"]


def test_where_exists_empty_first_last_count_and_indexer() -> None:
    """The collection functions a view needs, with ``$this`` inside a criterion."""
    assert values("name.where(use = 'official').family") == ["Okafor"]
    assert values("name.given.where($this = 'Nne')") == ["Nne"]
    assert values("name.exists(use = 'maiden')") == [False]
    assert values("name.exists()") == [True]
    assert values("telecom.empty()") == [True]
    assert values("name.given.first()") == ["Ada"]
    assert values("name.given.last()") == ["Nne"]
    assert values("name.given.count()") == [3]
    assert values("name[1].given") == ["Nne"]
    assert values("name[5].given") == []
    assert values("name.given.skip(1).take(1)") == ["Ngozi"]
    assert values("name.select(given.first())") == ["Ada", "Nne"]
    assert values("name.all(given.exists())") == [True]


def test_join_uses_the_separator_or_nothing() -> None:
    """``join`` concatenates strings; without a separator they run together; empty input gives ''."""
    assert values("name.given.join(', ')") == ["Ada, Ngozi, Nne"]
    assert values("name.given.join()") == ["AdaNgoziNne"]
    assert values("telecom.value.join(',')") == [""]


def test_extension_selects_by_url_and_nests() -> None:
    """``extension(url)`` filters a resource's extensions; nested ones are reached the same way."""
    assert values("extension('http://example.org/sex').value.ofType(code)") == ["F"]
    assert values("extension('http://example.org/race').extension('omb').value.ofType(Coding).code") == ["2054-5"]
    assert values("extension('http://example.org/none').exists()") == [False]


def test_resource_and_reference_keys_agree() -> None:
    """getResourceKey is the id; getReferenceKey reads relative, absolute and versioned references."""
    assert values("getResourceKey()") == ["p1"]
    assert values("managingOrganization.getReferenceKey()") == ["org-9"]
    assert values("managingOrganization.getReferenceKey(Organization)") == ["org-9"]
    assert values("managingOrganization.getReferenceKey(Patient)") == []
    assert values("generalPractitioner.getReferenceKey(Practitioner)") == ["pr-1"]
    assert values("generalPractitioner.getReferenceKey()") == ["pr-1"]  # a urn cannot be resolved: empty
    assert values("managingOrganization.getReferenceKey('Organization')") == ["org-9"]


def test_boolean_logic_is_three_valued() -> None:
    """and/or/xor/implies treat empty as unknown; ``not()`` of empty is empty."""
    assert values("active and {}") == []
    assert values("(active = false) and {}") == [False]
    assert values("active or {}") == [True]
    assert values("{} or {}") == []
    assert values("active xor true") == [False]
    assert values("false implies {}") == [True]
    assert values("{} implies true") == [True]
    assert values("active.not()") == [False]
    assert values("telecom.exists().not()") == [True]
    assert values("{}.not()") == []


def test_comparison_and_equality() -> None:
    """Strings, numbers and dates compare by value; a comparison with empty is empty."""
    assert values("gender = 'female'") == [True]
    assert values("gender != 'male'") == [True]
    assert values("name.given = name.given") == [True]
    assert values("name.family = {}") == []
    assert values("2 > 1.5") == [True]
    assert values("3 <= 3.0") == [True]
    assert values("1 = 1.0") == [True]
    assert values("'abc' < 'abd'") == [True]
    assert values("gender ~ 'FEMALE'") == [True]
    assert values("'x' in name.given") == [False]
    assert values("name.given contains 'Nne'") == [True]


def test_dates_compare_within_their_common_precision() -> None:
    """Different precision is undecidable unless the common part differs; zones are normalised."""
    assert values("birthDate = @1980-02") == [True]
    assert values("birthDate < @1981") == [True]
    assert values("birthDate = @1980-02-01") == []
    assert values("@2020-05-06T10:00:00+02:00 = @2020-05-06T08:00:00Z") == [True]
    assert values("deceased.ofType(dateTime) > %since", since="2020-01-01") == [True]
    assert values("@T10:30 < @T11:00") == [True]


def test_arithmetic_and_string_concatenation() -> None:
    """Integers stay integers, division is decimal, division by zero is empty; + and & join strings."""
    assert values("2 + 3 * 4") == [14]
    assert values("7 / 2") == [Decimal("3.5")]
    assert values("7 div 2") == [3]
    assert values("7 mod 2") == [1]
    assert values("1 / 0") == []
    assert values("-(2 - 5)") == [3]
    assert values("'a' + 'b'") == ["ab"]
    assert values("'a' & {}") == ["a"]
    assert values("%n * 2", n=Decimal("1.5")) == [Decimal("3.0")]


def test_union_removes_duplicates_and_combine_keeps_them() -> None:
    """``|`` and ``union`` merge without repeats; ``combine`` keeps every item."""
    assert values("name.given | name.given.first()") == ["Ada", "Ngozi", "Nne"]
    assert values("name.given.union('Zed')") == ["Ada", "Ngozi", "Nne", "Zed"]
    assert values("name.given.first().combine(name.given.first())") == ["Ada", "Ada"]


def test_iif_and_string_helpers() -> None:
    """iif picks a branch; the string helpers work on one string."""
    assert values("iif(active, 'yes', 'no')") == ["yes"]
    assert values("iif({}, 'yes')") == []
    assert values("gender.startsWith('fe')") == [True]
    assert values("gender.upper()") == ["FEMALE"]
    assert values("gender.length()") == [6]
    assert values("gender.substring(2, 3)") == ["mal"]
    assert values("birthDate.toString()") == ["1980-02"]
    assert values("'12'.toInteger() + 1") == [13]


def test_decimal_boundaries_cover_what_truncates_to_the_value() -> None:
    """``1.50`` stands for [1.50000000, 1.50999999]; negative values mirror; precision is an argument."""
    assert values("%v.lowBoundary()", v=Decimal("1.50")) == [Decimal("1.50000000")]
    assert values("%v.highBoundary()", v=Decimal("1.50")) == [Decimal("1.50999999")]
    assert values("%v.highBoundary()", v=Decimal("-2.5")) == [Decimal("-2.59999999")]
    assert values("%v.highBoundary(3)", v=Decimal("0.5")) == [Decimal("0.599")]
    assert values("%v.lowBoundary()", v=Decimal("98765432109.5")) == []  # more than a double holds


def test_date_datetime_and_time_boundaries() -> None:
    """Missing parts are filled with the first/last value; a zone-less dateTime takes the extreme zones."""
    assert values("birthDate.lowBoundary()") == ["1980-02-01"]
    assert values("birthDate.highBoundary()") == ["1980-02-29"]
    assert values("@2021-03.highBoundary()") == ["2021-03-31"]
    assert values("%t.lowBoundary()", t="2021-03-04T05:06") == ["2021-03-04T05:06:00.000000000+14:00"]
    assert values("%t.highBoundary()", t="2021-03-04T05:06:07.5Z") == ["2021-03-04T05:06:07.599999999Z"]
    assert values("@T08:15.highBoundary()") == ["08:15:59.999999999"]
    period = {"resourceType": "Patient", "period": {"start": "2020-01", "end": "2020-02-10"}}
    assert values("period.lowBoundary()", period) == ["2020-01-01T00:00:00.000000000+14:00"]
    assert values("period.highBoundary()", period) == ["2020-02-10T23:59:59.999999999-12:00"]


def test_literals() -> None:
    """Strings with escapes, numbers, booleans, {} and quantities are literals; comments are ignored."""
    assert values(r"'it\'s \u00e9'") == ["it's é"]
    assert values("true // a comment") == [True]
    assert values("/* block */ 42") == [42]
    assert values("{}") == []
    assert values("(4.5 'mg').value") == [Decimal("4.5")]
    assert values("`name`.given.first()") == ["Ada"]


@pytest.mark.parametrize(
    ("expression", "rule"),
    [
        ("", "empty expression"),
        ("name.", "expected a name"),
        ("name.given(", "expected an expression"),
        ("'open", "unterminated quoted text"),
        ("name # x", "unexpected character"),
        ("name.frobnicate()", "unsupported function 'frobnicate'"),
        ("name.where()", "wrong number of arguments to 'where'"),
        ("value.ofType(NoSuchType)", "unknown type"),
        ("value.ofType(3)", "expected a type name"),
        ("name name", "unexpected text after the expression"),
        ("@20x", "malformed date or time literal"),
        ("$that", "unknown $ variable"),
    ],
)
def test_syntax_errors_name_the_rule_and_offset(expression: str, rule: str) -> None:
    """A path that is not FHIRPath (or uses what the engine does not support) fails at compile time."""
    with pytest.raises(FhirPathSyntaxError) as caught:
        compile_path(expression)
    assert isinstance(caught.value, InvalidViewError)
    assert caught.value.hints[0].startswith(rule)
    assert "offset" in caught.value.hints[0]


def test_singleton_operators_reject_several_items() -> None:
    """An operator that needs one item fails on several, as FHIRPath requires."""
    with pytest.raises(FhirPathEvaluationError, match="single item"):
        values("name.given > 'A'")
    with pytest.raises(FhirPathEvaluationError):
        values("gender + 1")


def test_undefined_variables_fail_when_read() -> None:
    """A ``%`` name that the environment lacks is an error, not an empty collection."""
    with pytest.raises(FhirPathEvaluationError, match="undefined variable"):
        values("%nowhere")


def test_compiled_paths_are_shared_and_report_their_variables() -> None:
    """The same text compiles once; the compiled path lists the % names it reads."""
    first = compile_path("name.where(use = %use).family | %other")
    assert first is compile_path("name.where(use = %use).family | %other")
    assert first.variables == frozenset({"use", "other"})
