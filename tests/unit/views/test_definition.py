"""Validating a ViewDefinition: the structure, every rule, and hints that name location and rule only."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from common.errors import ErrorCode, InputError
from node.views.definition import parse_view
from node.views.errors import InvalidViewError

SECRET = "Okafor-1980"  # stands for a value that must never reach an error message


def view(**overrides: Any) -> dict[str, Any]:
    """A small valid view with ``overrides`` applied at the top level."""
    base: dict[str, Any] = {
        "resourceType": "ViewDefinition",
        "name": "patients",
        "resource": "Patient",
        "constant": [{"name": "family", "valueString": SECRET}],
        "select": [
            {"column": [{"name": "id", "path": "getResourceKey()", "type": "id"}]},
            {
                "forEach": "name",
                "column": [{"name": "family", "path": "family", "type": "string"}],
                "select": [{"forEachOrNull": "given", "column": [{"name": "given", "path": "$this"}]}],
            },
        ],
        "where": [{"path": "name.family.exists() and name.where(family = %family).empty()"}],
    }
    base.update(overrides)
    return base


def rejected(raw: object) -> InvalidViewError:
    """The error ``parse_view`` raises for ``raw`` (the test fails if it accepts it)."""
    with pytest.raises(InvalidViewError) as caught:
        parse_view(raw)
    error = caught.value
    assert isinstance(error, InputError)
    assert error.code is ErrorCode.INVALID_VIEW
    assert error.status == 400
    assert SECRET not in " ".join(error.hints) + error.detail + str(error)
    return error


def test_a_valid_view_parses_into_columns_in_output_order() -> None:
    """Columns come out in view order: a select's own columns, then its nested selects."""
    parsed = parse_view(view())
    assert parsed.resource == "Patient"
    assert parsed.name == "patients"
    assert parsed.column_names == ("id", "family", "given")
    assert [c.type for c in parsed.columns] == ["id", "string", None]
    assert dict(parsed.constants)["family"].value == SECRET
    assert parsed.select[1].for_each is not None
    assert parsed.select[1].selects[0].or_null is True
    assert parsed.select[1].output == ("family", "given")


@pytest.mark.parametrize(
    ("change", "hint"),
    [
        (lambda v: v.pop("resource"), "resource: missing"),
        (lambda v: v.update(resource="Spaceship"), "resource: not a FHIR R4 resource type"),
        (lambda v: v.update(resource=7), "resource: must be a non-empty string"),
        (lambda v: v.update(resourceType="Patient"), "resourceType: must be ViewDefinition"),
        (lambda v: v.update(name="2fast"), "name: must match"),
        (lambda v: v.update(colour="red"), "ViewDefinition.colour: not an element"),
        (lambda v: v.pop("select"), "select: missing"),
        (lambda v: v.update(select=[]), "select: must not be empty"),
        (lambda v: v.update(select={"column": []}), "select: must be a list"),
        (lambda v: v.update(select=["column"]), "select[0]: must be an object"),
        (lambda v: v["select"][0].update(colum=[]), "select[0].colum: not an element"),
        (lambda v: v["select"][0].pop("column"), "select[0]: a select needs column, select or unionAll"),
        (lambda v: v["select"][1].update(forEachOrNull="name"), "select[1]: forEach, forEachOrNull and repeat"),
        (lambda v: v["select"][1].update(forEach=1), "select[1].forEach: must be a non-empty string"),
        (lambda v: v["select"][1].update(forEach="@@"), "select[1].forEach: malformed date or time literal"),
        (lambda v: v["select"][1].pop("forEach") and v["select"][1].update(repeat=[]), "select[1].repeat: must not"),
        (lambda v: v["select"][0]["column"][0].pop("name"), "select[0].column[0].name: missing"),
        (lambda v: v["select"][0]["column"][0].update(name="my id"), "select[0].column[0].name: must match"),
        (lambda v: v["select"][0]["column"][0].pop("path"), "select[0].column[0].path: missing"),
        (lambda v: v["select"][0]["column"][0].update(collection="yes"), "select[0].column[0].collection: must be"),
        (lambda v: v["select"][0]["column"][0].update(type="Colour"), "select[0].column[0].type: not a FHIR type"),
        (lambda v: v["select"][0]["column"][0].update(tag=[{"name": "x"}]), "select[0].column[0].tag[0].value"),
        (lambda v: v["select"][0]["column"][0].update(path="name.nope()"), "unsupported function 'nope'"),
        (lambda v: v["select"][0]["column"][0].update(name="family"), "column name used twice"),
        (lambda v: v.update(where=[{}]), "where[0].path: missing"),
        (lambda v: v.update(where=[{"path": "name and"}]), "where[0].path: expected an expression"),
        (lambda v: v.update(constant=[{"name": "family"}]), "constant[0]: needs exactly one value[x]"),
        (lambda v: v["constant"][0].update(valueCode="F"), "constant[0]: needs exactly one value[x]"),
        (lambda v: v["constant"][0].update(name="rowIndex"), "constant[0].name: already defined (or reserved)"),
        (lambda v: v["constant"].append(dict(v["constant"][0])), "constant[1].name: already defined"),
        (lambda v: v.update(constant=[{"name": "n", "valueInteger": "7"}]), "constant[0].valueInteger: not a valid"),
        (lambda v: v.update(constant=[{"name": "n", "valueBoolean": 1}]), "constant[0].valueBoolean: not a valid"),
        (lambda v: v.update(constant=[{"name": "n", "valueFoo": 1}]), "constant[0].valueFoo: not a primitive"),
        (lambda v: v["constant"][0].update(valueString=5), "constant[0].valueString: not a valid string"),
        (lambda v: v["constant"][0].update(name="family2"), "where[0].path: reads an undefined constant"),
    ],
)
def test_each_rule_is_enforced_with_a_hint_naming_location_and_rule(change: Any, hint: str) -> None:
    """Every broken rule is an INVALID_VIEW error whose hint starts with where it is, then the rule."""
    raw = copy.deepcopy(view())
    change(raw)
    error = rejected(raw)
    assert any(hint in h for h in error.hints), error.hints


def test_a_view_must_be_an_object() -> None:
    """A JSON array or string is not a ViewDefinition."""
    assert rejected([]).hints == ("ViewDefinition: must be an object",)
    assert rejected({}).hints == ("resource: missing",)


def test_union_all_branches_must_yield_the_same_columns_in_the_same_order() -> None:
    """Branches with other names, or the same names in another order, are rejected; equal ones pass."""

    def union(*branches: list[str]) -> dict[str, Any]:
        return view(
            select=[{"unionAll": [{"column": [{"name": n, "path": "id"} for n in names]} for names in branches]}]
        )

    assert parse_view(union(["a", "b"], ["a", "b"])).column_names == ("a", "b")
    assert "select[0].unionAll[1]: columns differ" in rejected(union(["a", "b"], ["a", "c"])).hints[0]
    assert "select[0].unionAll[1]: columns differ" in rejected(union(["a", "b"], ["b", "a"])).hints[0]
    assert "select[0].unionAll: must not be empty" in rejected(view(select=[{"unionAll": []}])).hints[0]


def test_column_names_are_unique_across_the_whole_view() -> None:
    """The same name in two sibling selects is rejected; a name shared by unionAll branches is one column."""
    twice = view(select=[{"column": [{"name": "x", "path": "id"}]}, {"column": [{"name": "x", "path": "gender"}]}])
    assert "select[1].column[0].name: column name used twice" in rejected(twice).hints[0]


def test_constants_of_every_primitive_type_are_typed() -> None:
    """A constant becomes an item of its declared FHIR type (dates stay strings, decimals exact)."""
    raw = view(
        constant=[
            {"name": "family", "valueString": "x"},
            {"name": "born", "valueDate": "1980-02-01"},
            {"name": "limit", "valueDecimal": 1.25},
            {"name": "n", "valueUnsignedInt": 3},
            {"name": "flag", "valueBoolean": False},
        ]
    )
    constants = dict(parse_view(raw).constants)
    assert (constants["born"].value, constants["born"].type) == ("1980-02-01", "date")
    assert str(constants["limit"].value) == "1.25"
    assert (constants["n"].value, constants["flag"].value) == (3, False)


def test_repeat_takes_a_list_of_paths() -> None:
    """``repeat`` is a non-empty list of expressions, each compiled."""
    raw = view(select=[{"repeat": ["item", "answer.item"], "column": [{"name": "link", "path": "linkId"}]}])
    raw["resource"] = "QuestionnaireResponse"
    raw.pop("where")
    parsed = parse_view(raw)
    assert [p.text for p in parsed.select[0].repeat] == ["item", "answer.item"]
    raw["select"][0]["repeat"] = "item"
    assert "select[0].repeat: must be a list" in rejected(raw).hints[0]
