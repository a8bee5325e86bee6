"""Minimum cell size and secondary suppression, checked by the attacker's linear algebra."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from common.errors import InputError
from common.privacy import MarginMask, recomputable_cells, suppress_table
from common.privacy.suppression import Position, TableSuppression

MIN_CELL = 5

small_counts = st.integers(min_value=0, max_value=14)
tables_2d = st.tuples(st.integers(1, 6), st.integers(1, 6)).flatmap(
    lambda shape: arrays(np.int64, shape, elements=small_counts)
)
tables_1d = st.integers(1, 10).flatmap(lambda n: arrays(np.int64, (n,), elements=small_counts))


def test_the_attacker_recomputes_a_lone_hidden_cell_from_its_row_total() -> None:
    """A row with one hidden cell and a published row total gives the cell away (the check works)."""
    table = np.array([[3, 10], [12, 20]])
    released = np.array([[False, True], [True, True]])
    margins = MarginMask(rows=(True, True), columns=(False, False), total=False)
    assert ("cell", 0, 0) in recomputable_cells(table, released, margins)


def test_the_attacker_recomputes_a_lone_hidden_cell_of_a_histogram_from_its_total() -> None:
    """A histogram with one hidden bin and its total gives the bin away."""
    assert recomputable_cells(np.array([3, 10, 12]), np.array([False, True, True]), MarginMask(total=True)) == {
        ("cell", 0, 0)
    }


def _disclosed(table: np.ndarray, plan: TableSuppression) -> set[Position]:
    """What the attacker recomputes that matters: any hidden cell, and any hidden margin of 1..k-1."""
    margin_values: dict[str, np.ndarray] = {"row": table.sum(axis=-1).reshape(-1), "column": table.sum(axis=0)}
    disclosed: set[Position] = set()
    for position in recomputable_cells(table, plan.released, plan.margins):
        kind, i, j = position
        if kind == "cell":
            disclosed.add(position)
        else:
            value = int(table.sum()) if kind == "total" else int(margin_values[kind][i if kind == "row" else j])
            if 0 < value < MIN_CELL:
                disclosed.add(position)
    return disclosed


def test_a_small_cell_gets_company_in_its_row_and_column() -> None:
    """One small cell in a table with all margins makes four cells withheld (a 2x2 cycle)."""
    table = np.array([[3, 10, 12], [11, 20, 30], [14, 15, 16]])
    plan = suppress_table(table, min_cell=MIN_CELL)
    assert plan.primary == {("cell", 0, 0)}
    assert int((~plan.released).sum()) == 4
    assert plan.margins == MarginMask(rows=(True, True, True), columns=(True, True, True), total=True)
    assert _disclosed(table, plan) == set()


def test_zero_cells_are_released_and_not_suppressed() -> None:
    """Zero is not a small cell: an empty category comes back as 0."""
    plan = suppress_table(np.array([0, 10, 12]), min_cell=MIN_CELL)
    assert plan.released.tolist() == [True, True, True]


@settings(max_examples=300, deadline=None)
@given(tables_2d, st.booleans(), st.booleans(), st.booleans())
def test_no_withheld_cell_of_a_crosstab_can_be_recomputed(
    table: np.ndarray, rows: bool, columns: bool, total: bool
) -> None:
    """Whatever margins are published, no withheld cell or margin is fixed by what is released."""
    plan = suppress_table(table, min_cell=MIN_CELL, rows=rows, columns=columns, total=total)
    small = (table > 0) & (table < MIN_CELL)
    assert not (plan.released & small).any()
    assert _disclosed(table, plan) == set()
    for flag, sums in ((plan.margins.rows, table.sum(axis=1)), (plan.margins.columns, table.sum(axis=0))):
        for published, value in zip(flag, sums, strict=True):
            assert not (published and 0 < value < MIN_CELL)


@settings(max_examples=300, deadline=None)
@given(tables_1d, st.booleans())
def test_no_withheld_bin_of_a_histogram_can_be_recomputed(table: np.ndarray, total: bool) -> None:
    """A histogram's total never gives a withheld bin away, and no bin of 1..k-1 is released."""
    plan = suppress_table(table, min_cell=MIN_CELL, total=total)
    small = (table > 0) & (table < MIN_CELL)
    assert not (plan.released & small).any()
    assert _disclosed(table, plan) == set()
    if plan.margins.total:
        assert not 0 < int(table.sum()) < MIN_CELL


def test_secondary_suppression_prefers_cells_to_margins() -> None:
    """When cells can close the cycle, every margin stays published."""
    table = np.array([[2, 7, 9, 11], [8, 6, 13, 9], [10, 12, 8, 14]])
    plan = suppress_table(table, min_cell=MIN_CELL)
    assert all(plan.margins.rows)
    assert all(plan.margins.columns)
    assert plan.margins.total


def test_a_table_that_is_not_counts_is_refused() -> None:
    """Negative or non-integer cells, or more than two dimensions, are input errors."""
    for table in (np.array([[-1, 2]]), np.array([1.5, 2.0]), np.zeros((2, 2, 2), dtype=int)):
        with pytest.raises(InputError):
            suppress_table(table, min_cell=MIN_CELL)
