"""Cohort filters and the analysis task's wire format: strict parsing, three-valued logic, dates, joins."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from common.analytics.cohort import (
    MAX_DEPTH,
    Source,
    apply_cohort,
    check_cohort_columns,
    cohort_sources,
    dump_cohort,
    parse_cohort,
)
from common.analytics.task import decode_refusal, encode_refusal, from_wire, parse_task, to_wire
from common.errors import ErrorCode, InputError

PATIENTS = pd.DataFrame(
    {
        "pid": ["p1", "p2", "p3", "p4", "p5"],
        "age": pd.array([55, 40, None, 70, 18], dtype="Int64"),
        "sex": pd.array([1, 0, 1, None, 0], dtype="Int64"),
        "code": pd.array(["E11", "I10", None, "E11.9", "J45"], dtype="string"),
        "born": ["1970-06-01", "1981-06-02", "1990", None, "2003-02-28"],
        "seen": ["2019-01-01T10:00:00+01:00", "2019-12-31", "2020-01-01", "2018-07-04", None],
    },
    index=[10, 11, 12, 13, 14],
)


def _kept(cohort: dict[str, Any], frame: pd.DataFrame = PATIENTS, **sources: pd.DataFrame) -> list[str]:
    chosen = apply_cohort(parse_cohort(cohort), frame, {f"dataset:{k}": v for k, v in sources.items()})
    return chosen["pid"].tolist()


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("=", 40, ["p2"]),
        ("!=", 40, ["p1", "p4", "p5"]),
        ("<", 40, ["p5"]),
        ("<=", 40, ["p2", "p5"]),
        (">", 55, ["p4"]),
        (">=", 55, ["p1", "p4"]),
    ],
)
def test_comparisons_keep_the_rows_where_they_are_true_and_never_a_missing_value(
    op: str, value: int, expected: list[str]
) -> None:
    """Each comparison keeps the rows where it holds; a row without an age is kept by none of them."""
    assert _kept({"op": op, "column": "age", "value": value}) == expected


def test_missing_values_follow_three_valued_logic() -> None:
    """not(unknown) is unknown; all is false when one part is false; any is true when one part is true."""
    assert _kept({"not": {"op": ">", "column": "age", "value": 50}}) == ["p2", "p5"]  # p3 has no age
    assert _kept({"all": [{"op": ">", "column": "age", "value": 50}, {"op": "=", "column": "sex", "value": 1}]}) == [
        "p1"
    ]
    # p4: sex unknown but age > 60 is true, so "any" holds; p3: age unknown, sex = 0 false -> unknown.
    assert _kept({"any": [{"op": ">", "column": "age", "value": 60}, {"op": "=", "column": "sex", "value": 0}]}) == [
        "p2",
        "p4",
        "p5",
    ]
    # not(all(unknown, false)) = not(false) = true for p3 (age unknown, sex = 1 -> "sex = 0" false).
    both = {"all": [{"op": ">", "column": "age", "value": 50}, {"op": "=", "column": "sex", "value": 0}]}
    assert "p3" in _kept({"not": both})


def test_code_in_set_between_and_not_null() -> None:
    """Codes in a set, an inclusive range and presence select as stated, on text and numbers."""
    assert _kept({"op": "in", "column": "code", "values": ["E11", "J45"]}) == ["p1", "p5"]
    assert _kept({"op": "between", "column": "age", "lower": 40, "upper": 55}) == ["p1", "p2"]
    assert _kept({"op": "not_null", "column": "code"}) == ["p1", "p2", "p4", "p5"]
    assert _kept({"op": "in", "column": "sex", "values": [0]}) == ["p2", "p5"]


def test_age_at_a_date_counts_completed_years_and_partial_birth_dates_as_unknown() -> None:
    """Born 1981-06-02 is 39 on 2021-06-01 and 40 the next day; "1990" (year only) is never selected."""
    assert _kept({"op": "=", "column": "born", "age_at": "2021-06-01", "value": 39}) == ["p2"]
    assert _kept({"op": "=", "column": "born", "age_at": "2021-06-02", "value": 40}) == ["p2"]
    assert _kept({"op": "between", "column": "born", "age_at": "2021-06-01", "lower": 18, "upper": 51}) == [
        "p1",
        "p2",
        "p5",
    ]
    assert "p3" not in _kept({"not": {"op": ">", "column": "born", "age_at": "2021-06-01", "value": 200}})


def test_date_windows_compare_calendar_dates_of_text_and_datetime_columns() -> None:
    """A 2019 window holds the dateTime of 2019-01-01 and the date 2019-12-31, whether text or datetime64."""
    window = {"op": "between", "column": "seen", "lower": "2019-01-01", "upper": "2019-12-31", "as_date": True}
    assert _kept(window) == ["p1", "p2"]
    typed = PATIENTS.assign(seen=pd.to_datetime(PATIENTS["seen"].str.slice(0, 10)))
    assert _kept({**window, "as_date": False}, typed) == ["p1", "p2"]
    assert _kept({"op": "<", "column": "seen", "value": "2019-01-01"}, typed) == ["p4"]


def test_a_join_keeps_the_rows_whose_patient_is_in_the_other_sources_cohort() -> None:
    """Lab rows of patients in a demographics cohort (women), joined on patient id; unknown ids never match."""
    labs = pd.DataFrame({"pid": ["p1", "p2", "p2", None, "p9"], "value": [1.0, 2.0, 3.0, 4.0, 5.0]})
    demographics = PATIENTS.assign(sex=pd.array([0, 0, 1, 1, 1], dtype="Int64"))
    cohort = {
        "op": "in_cohort",
        "column": "pid",
        "source": {"dataset": "demo"},
        "key": "pid",
        "where": {"op": "=", "column": "sex", "value": 0},
    }
    chosen = apply_cohort(parse_cohort(cohort), labs, {"dataset:demo": demographics})
    assert chosen["value"].tolist() == [1.0, 2.0, 3.0]
    assert cohort_sources(parse_cohort({"all": [cohort, cohort]})) == [Source(dataset="demo")]


def test_the_index_of_the_kept_rows_is_preserved() -> None:
    """Filtering keeps each row's index (the node's record identities)."""
    chosen = apply_cohort(parse_cohort({"op": ">", "column": "age", "value": 50}), PATIENTS)
    assert chosen.index.tolist() == [10, 13]


@pytest.mark.parametrize(
    ("cohort", "hint"),
    [
        ({"op": "=", "column": "age"}, "cohort.value: missing"),
        ({"op": "like", "column": "age", "value": 1}, "cohort: union_tag_not_found"),
        ({"all": [{"op": "=", "column": "age", "value": 1, "extra": 2}]}, "cohort.all[0].extra: extra_forbidden"),
        ({"all": []}, "cohort.all: too_short"),
        ({"op": "=", "column": "born", "value": 3, "age_at": "2021-01-01", "as_date": True}, "cohort: value_error"),
        ({"op": "between", "column": "age", "lower": 9, "upper": 1}, "cohort: value_error"),
        ({"op": "in_cohort", "source": {"dataset": "a", "view": "b"}}, "cohort.source: value_error"),
        ({"not": {"op": "in", "column": "code", "values": []}}, "cohort.not.values: too_short"),
    ],
)
def test_a_malformed_cohort_is_refused_naming_the_location(cohort: dict[str, Any], hint: str) -> None:
    """Parsing is strict and its hints name where the cohort is wrong and the rule, never a value."""
    with pytest.raises(InputError) as caught:
        parse_cohort(cohort)
    assert caught.value.code is ErrorCode.INVALID_ANALYSIS
    assert caught.value.hints[0] == hint


def test_a_cohort_nested_too_deep_is_refused() -> None:
    """More than MAX_DEPTH levels of nesting is refused."""
    cohort: dict[str, Any] = {"op": "not_null", "column": "age"}
    for _ in range(MAX_DEPTH):
        cohort = {"not": cohort}
    with pytest.raises(InputError) as caught:
        parse_cohort(cohort)
    assert caught.value.hints == (f"cohort: at most {MAX_DEPTH} levels and 1000 conditions",)


@pytest.mark.parametrize(
    ("cohort", "hint"),
    [
        ({"op": "=", "column": "weight", "value": 1}, "cohort.column: no such column"),
        (
            {"any": [{"op": "not_null", "column": "age"}, {"op": "<", "column": "code", "value": 3}]},
            "cohort.any[1].value: type does not match the column",
        ),
        ({"op": "in", "column": "age", "values": ["x"]}, "cohort.values: type does not match the column"),
        ({"op": "in_cohort", "column": "pid", "source": {"dataset": "gone"}}, "cohort.source: not loaded"),
        ({"op": "=", "column": "seen", "value": "secret", "as_date": False}, None),
    ],
)
def test_applying_refuses_unknown_columns_and_mismatched_types_by_location(
    cohort: dict[str, Any], hint: str | None
) -> None:
    """On the node, an unknown column or a value of the wrong type is refused with the location only."""
    if hint is None:  # a text comparison on a text column is fine
        assert _kept(cohort) == []
        return
    with pytest.raises(InputError) as caught:
        _kept(cohort)
    assert caught.value.hints == (hint,)


def test_the_coordinator_checks_the_cohort_against_the_declared_columns() -> None:
    """Every column the cohort reads from the filtered source must be declared; the join's key need not be."""
    cohort = parse_cohort(
        {
            "all": [
                {"op": ">", "column": "age", "value": 1},
                {"op": "in_cohort", "column": "pid", "source": {"view": "demo"}, "key": "patient_id"},
            ]
        }
    )
    check_cohort_columns(cohort, ["age", "pid"])
    with pytest.raises(InputError) as caught:
        check_cohort_columns(cohort, ["age"])
    assert caught.value.hints == ("cohort.all[1].column: not among the job's columns",)


def test_a_cohort_dumps_to_the_shape_it_was_written_in() -> None:
    """Parsing then dumping gives back the spec's spelling (``all``/``any``/``not``), defaults left out."""
    written = {"all": [{"op": ">=", "column": "age", "value": 50}, {"not": {"op": "in", "column": "c", "values": [1]}}]}
    assert dump_cohort(parse_cohort(written)) == written


def test_a_task_is_normalised_so_equal_questions_have_equal_digests() -> None:
    """Defaults are spelt out and the JSON is canonical: two phrasings of one task share one digest."""
    short = parse_task(
        {
            "analysis": "quantiles",
            "params": {"column": "x", "probabilities": [0.5], "lower": 0, "upper": 9},
            "source": {"dataset": "d"},
        }
    )
    long = parse_task(
        {
            "source": {"dataset": "d"},
            "params": {"upper": 9.0, "lower": 0.0, "probabilities": [0.5], "column": "x", "probes": 15},
            "analysis": "quantiles",
        }
    )
    assert short.params["probes"] == 15
    assert short.digest() == long.digest()
    assert from_wire(short.wire()) == from_wire(long.wire())


def test_a_task_with_bad_parameters_is_refused_with_prefixed_locations() -> None:
    """Parameter errors name their location under ``params``; an unknown analysis lists the known ones."""
    with pytest.raises(InputError) as caught:
        parse_task(
            {"analysis": "histogram", "params": {"column": "x", "lower": 0, "upper": 1}, "source": {"view": "v"}}
        )
    assert caught.value.hints == ("params.bins: missing",)
    with pytest.raises(InputError) as caught:
        parse_task({"analysis": "median", "params": {}, "source": {"view": "v"}})
    assert caught.value.hints[0].startswith("analysis: one of count, cox, crosstab")


def test_the_wire_refuses_non_finite_numbers_and_refusals_round_trip() -> None:
    """NaN never crosses silently; a refusal carries its code and hints, and garbage reads as internal."""
    with pytest.raises(ValueError, match="Out of range"):
        to_wire({"x": float("nan")})
    with pytest.raises(ValueError, match="non-finite"):
        from_wire('{"x": NaN}')
    error = InputError(ErrorCode.DESIGN_REFUSED, detail="local detail", hints=["design: rank 1 < 2 parameters"])
    assert decode_refusal(encode_refusal(error)) == (ErrorCode.DESIGN_REFUSED, ("design: rank 1 < 2 parameters",))
    assert decode_refusal("not json") == (ErrorCode.INTERNAL, ())
    assert decode_refusal('{"code": "no_such_code"}') == (ErrorCode.INTERNAL, ())
    assert np.isfinite(from_wire(to_wire({"x": 0.1}))["x"])
