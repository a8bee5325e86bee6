"""Running views: selects, iteration, unionAll, repeat, where, constants, %rowIndex and runtime errors."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from node.views.definition import parse_view
from node.views.errors import InvalidViewError
from node.views.evaluate import evaluate_resource, evaluate_view

PATIENTS: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "a",
        "active": True,
        "name": [{"family": "Ito", "given": ["Aki", "Mei"]}, {"family": "Sato"}],
        "contact": [{"telecom": [{"value": "c1"}, {"value": "c2"}]}, {"telecom": [{"value": "c3"}]}],
    },
    {"resourceType": "Patient", "id": "b", "active": False, "name": [{"family": "Diaz"}]},
    {"resourceType": "Patient", "id": "c"},
    {"resourceType": "Observation", "id": "o", "status": "final"},
]


def rows(
    select: list[dict[str, Any]], resources: list[dict[str, Any]] = PATIENTS, **extra: Any
) -> list[dict[str, Any]]:
    """The rows of a Patient view with these selects over ``resources``."""
    return list(evaluate_view({"resource": "Patient", "select": select, **extra}, resources))


def col(name: str, path: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "path": path, **more}


def test_one_row_per_resource_of_the_view_type() -> None:
    """Without iteration each resource of the view's type gives one row; other types give none."""
    assert rows([{"column": [col("id", "id")]}]) == [{"id": "a"}, {"id": "b"}, {"id": "c"}]


def test_missing_values_are_null_and_collections_are_lists() -> None:
    """A column with no value is null; ``collection: true`` gives a (possibly empty) list."""
    out = rows([{"column": [col("id", "id"), col("family", "name.family", collection=True), col("act", "active")]}])
    assert out[0] == {"id": "a", "family": ["Ito", "Sato"], "act": True}
    assert out[2] == {"id": "c", "family": [], "act": None}


def test_several_values_without_collection_is_an_error_naming_the_column() -> None:
    """A column that yields two values for a resource, without collection: true, fails the run."""
    with pytest.raises(InvalidViewError) as caught:
        rows([{"column": [col("family", "name.family")]}])
    assert caught.value.hints == ("select[0].column[0]: several values; set collection: true",)


def test_for_each_gives_a_row_per_item_and_drops_resources_without_items() -> None:
    """forEach unnests; a resource with nothing to iterate has no row."""
    out = rows([{"column": [col("id", "id")]}, {"forEach": "name", "column": [col("family", "family")]}])
    assert out == [{"id": "a", "family": "Ito"}, {"id": "a", "family": "Sato"}, {"id": "b", "family": "Diaz"}]


def test_for_each_or_null_keeps_resources_without_items_as_a_null_row() -> None:
    """forEachOrNull gives one row of nulls (also for nested columns) when there is nothing to iterate."""
    nested = {"forEach": "given", "column": [col("given", "$this")]}
    out = rows(
        [{"column": [col("id", "id")]}, {"forEachOrNull": "name", "column": [col("f", "family")], "select": [nested]}]
    )
    assert out == [
        {"id": "a", "f": "Ito", "given": "Aki"},
        {"id": "a", "f": "Ito", "given": "Mei"},
        {"id": "c", "f": None, "given": None},
    ]


def test_nested_for_each_repeats_parent_columns() -> None:
    """A nested forEach iterates within each item of its parent; parent columns repeat on every row."""
    out = rows(
        [
            {"column": [col("id", "id")]},
            {
                "forEach": "contact",
                "column": [col("n", "telecom.count()")],
                "select": [{"forEach": "telecom", "column": [col("v", "value")]}],
            },
        ]
    )
    assert out == [{"id": "a", "n": 2, "v": "c1"}, {"id": "a", "n": 2, "v": "c2"}, {"id": "a", "n": 1, "v": "c3"}]


def test_sibling_selects_cross_join_and_columns_follow_view_order() -> None:
    """Sibling selects multiply their rows; columns come out in the order the view declares them."""
    out = rows(
        [
            {"column": [col("first", "'x'")], "select": [{"forEach": "name", "column": [col("second", "family")]}]},
            {"forEach": "name.given", "column": [col("third", "$this")]},
        ]
    )
    assert [list(r) for r in out] == [["first", "second", "third"]] * 4
    assert [(r["second"], r["third"]) for r in out] == [
        ("Ito", "Aki"),
        ("Ito", "Mei"),
        ("Sato", "Aki"),
        ("Sato", "Mei"),
    ]


def test_union_all_concatenates_branch_rows() -> None:
    """unionAll stacks the rows of its branches under the same columns; duplicates are kept."""
    union = {
        "unionAll": [
            {"forEach": "name", "column": [col("value", "family"), col("kind", "'name'")]},
            {"forEach": "contact.telecom", "column": [col("value", "value"), col("kind", "'telecom'")]},
            {"forEach": "name.first()", "column": [col("value", "family"), col("kind", "'name'")]},
        ]
    }
    out = rows([{"column": [col("id", "id")]}, union])
    assert [(r["id"], r["value"], r["kind"]) for r in out] == [
        ("a", "Ito", "name"),
        ("a", "Sato", "name"),
        ("a", "c1", "telecom"),
        ("a", "c2", "telecom"),
        ("a", "c3", "telecom"),
        ("a", "Ito", "name"),
        ("b", "Diaz", "name"),
        ("b", "Diaz", "name"),
    ]


def test_repeat_follows_paths_depth_first_and_counts_row_index() -> None:
    """repeat yields every nested node (not the start), depth first; %rowIndex numbers them."""
    response = {
        "resourceType": "QuestionnaireResponse",
        "id": "q",
        "item": [
            {"linkId": "1", "item": [{"linkId": "1.1", "answer": [{"item": [{"linkId": "1.1.a"}]}]}]},
            {"linkId": "2"},
        ],
    }
    view = {
        "resource": "QuestionnaireResponse",
        "select": [{"repeat": ["item", "answer.item"], "column": [col("i", "%rowIndex"), col("link", "linkId")]}],
    }
    out = list(evaluate_view(view, [response]))
    assert out == [{"i": 0, "link": "1"}, {"i": 1, "link": "1.1"}, {"i": 2, "link": "1.1.a"}, {"i": 3, "link": "2"}]


def test_row_index_is_per_iteration_level_and_zero_outside() -> None:
    """%rowIndex is 0 at the resource level and the item's position inside each forEach."""
    out = rows(
        [
            {"column": [col("top", "%rowIndex")]},
            {
                "forEach": "contact",
                "column": [col("ci", "%rowIndex")],
                "select": [{"forEach": "telecom", "column": [col("ti", "%rowIndex")]}],
            },
        ]
    )
    assert [(r["top"], r["ci"], r["ti"]) for r in out] == [(0, 0, 0), (0, 0, 1), (0, 1, 0)]


def test_where_keeps_only_resources_for_which_every_path_is_true() -> None:
    """Every where path must be true; empty counts as false."""
    assert rows([{"column": [col("id", "id")]}], where=[{"path": "active"}]) == [{"id": "a"}]
    assert rows([{"column": [col("id", "id")]}], where=[{"path": "active.exists()"}, {"path": "active.not()"}]) == [
        {"id": "b"}
    ]


def test_a_where_path_that_is_not_boolean_is_an_error() -> None:
    """A where path yielding a string (or several values) fails, naming the where clause."""
    with pytest.raises(InvalidViewError) as caught:
        rows([{"column": [col("id", "id")]}], where=[{"path": "name.family.first()"}])
    assert caught.value.hints == ("where[0].path: must evaluate to a boolean",)


def test_constants_are_read_in_columns_where_and_for_each() -> None:
    """A %constant can appear in any path of the view."""
    out = rows(
        [{"forEach": "name.where(family = %surname)", "column": [col("id", "%resource.id"), col("n", "%limit + 1")]}],
        constant=[{"name": "surname", "valueString": "Sato"}, {"name": "limit", "valueDecimal": Decimal("1.5")}],
        where=[{"path": "name.family contains %surname"}],
    )
    assert out == [{"id": "a", "n": 2.5}]


def test_decimals_come_out_as_json_numbers() -> None:
    """Exact decimals leave the engine as floats; integers stay integers."""
    obs = {"resourceType": "Observation", "id": "o", "valueQuantity": {"value": Decimal("5.0")}, "valueInteger": 3}
    view = parse_view({"resource": "Observation", "select": [{"column": [col("v", "value.ofType(Quantity).value")]}]})
    assert evaluate_resource(view, obs) == [{"v": 5.0}]
    assert isinstance(evaluate_resource(view, obs)[0]["v"], float)


def test_evaluation_errors_carry_the_location_of_the_failing_path() -> None:
    """A FHIRPath error at run time names the path's location in the view, not the data."""
    with pytest.raises(InvalidViewError) as caught:
        rows([{"forEach": "name", "column": [col("x", "given > 'A'")]}])
    assert caught.value.hints[0].startswith("select[0].column[0].path: ")
    assert "Aki" not in caught.value.hints[0]
