"""Twenty ways a researcher can ask a node for "how many patients of this cohort have the trait".

Each shape reaches the same set of patients through a different code path: the count of a filtered
list, in another order, with repeated rows, as a bin of a histogram, as a cell of a crosstab (either
orientation), as the union of sub-groups, as a difference of sets, as a margin. A cell-key node must
answer all of them with one value.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from common.privacy import Discloser
from tests.unit.privacy.conftest import Population

Shape = Callable[[Discloser, Population, frozenset[int]], int | None]


def _members(population: Population, cohort: frozenset[int]) -> list[int]:
    return [i for i in sorted(cohort) if population.trait[i]]


def _ids(population: Population, indices: list[int]) -> list[str]:
    return [population.ids[i] for i in indices]


def _count_filtered(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    return d.count(_ids(p, _members(p, c))).count.value


def _count_reversed(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    return d.count(reversed(_ids(p, _members(p, c)))).count.value


def _count_sorted_by_id(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    return d.count(sorted(_ids(p, _members(p, c)))).count.value


def _count_with_repeated_rows(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    ids = _ids(p, _members(p, c))
    return d.count(ids + ids[::3]).count.value


def _count_from_a_set(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    return d.count({p.ids[i] for i in c if p.trait[i]}).count.value


def _count_trait_first(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    with_trait = [i for i in range(len(p.ids)) if p.trait[i]]
    return d.count(p.ids[i] for i in with_trait if i in c).count.value


def _count_shuffled(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    ids = _ids(p, _members(p, c))
    order = np.random.default_rng(len(ids)).permutation(len(ids))
    return d.count([ids[k] for k in order]).count.value


def _histogram_bin(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    without = [p.ids[i] for i in sorted(c) if not p.trait[i]]
    return d.table([without, _ids(p, _members(p, c))]).cells[1].value


def _histogram_bin_reordered(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    without = [p.ids[i] for i in sorted(c) if not p.trait[i]]
    return d.table([_ids(p, _members(p, c))[::-1], without]).cells[0].value


def _histogram_without_total(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    without = [p.ids[i] for i in sorted(c) if not p.trait[i]]
    return d.table([without, _ids(p, _members(p, c))], total=False).cells[1].value


def _histogram_of_the_trait_by_cohort(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    with_trait = [i for i in range(len(p.ids)) if p.trait[i]]
    outside = [p.ids[i] for i in with_trait if i not in c]
    return d.table([[p.ids[i] for i in with_trait if i in c], outside]).cells[0].value


def _crosstab_cell(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    grid: list[list[list[str]]] = [[[], []], [[], []]]
    for i, identity in enumerate(p.ids):
        grid[int(p.trait[i])][int(i in c)].append(identity)
    return d.crosstab(grid).cells[1][1].value


def _crosstab_transposed(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    grid: list[list[list[str]]] = [[[], []], [[], []]]
    for i, identity in enumerate(p.ids):
        grid[int(i not in c)][int(not p.trait[i])].append(identity)
    return d.crosstab(grid).cells[0][0].value


def _crosstab_row_margin(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    # Rows: cohort with the trait, cohort without it, everybody else; columns: sex. The first row's total.
    grid: list[list[list[str]]] = [[[], []], [[], []], [[], []]]
    for i, identity in enumerate(p.ids):
        row = (0 if p.trait[i] else 1) if i in c else 2
        grid[row][int(p.sex[i])].append(identity)
    totals = d.crosstab(grid).row_totals
    assert totals is not None
    return totals[0].value


def _crosstab_column_margin(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    grid: list[list[list[str]]] = [[[], [], []], [[], [], []]]
    for i, identity in enumerate(p.ids):
        column = (0 if p.trait[i] else 1) if i in c else 2
        grid[int(p.sex[i])][column].append(identity)
    totals = d.crosstab(grid).column_totals
    assert totals is not None
    return totals[0].value


def _table_total(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    by_age: list[list[str]] = [[] for _ in range(8)]
    for i in _members(p, c):
        by_age[int(p.age_band[i])].append(p.ids[i])
    total = d.table(by_age).total
    assert total is not None
    return total.value


def _union_of_sexes(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    members = _members(p, c)
    women = [p.ids[i] for i in members if p.sex[i] == 0]
    men = [p.ids[i] for i in members if p.sex[i] == 1]
    return d.count(men + women).count.value


def _union_of_age_bands(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    members = _members(p, c)
    return d.count(p.ids[i] for band in range(7, -1, -1) for i in members if p.age_band[i] == band).count.value


def _cohort_minus_untraited(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    cohort = {p.ids[i] for i in c}
    untraited = {p.ids[i] for i in range(len(p.ids)) if not p.trait[i]}
    return d.count(cohort - untraited).count.value


def _traited_minus_outsiders(d: Discloser, p: Population, c: frozenset[int]) -> int | None:
    traited = {p.ids[i] for i in range(len(p.ids)) if p.trait[i]}
    outsiders = {p.ids[i] for i in range(len(p.ids)) if i not in c}
    return d.count(traited - outsiders).count.value


SHAPES: tuple[Shape, ...] = (
    _count_filtered,
    _count_reversed,
    _count_sorted_by_id,
    _count_with_repeated_rows,
    _count_from_a_set,
    _count_trait_first,
    _count_shuffled,
    _histogram_bin,
    _histogram_bin_reordered,
    _histogram_without_total,
    _histogram_of_the_trait_by_cohort,
    _crosstab_cell,
    _crosstab_transposed,
    _crosstab_row_margin,
    _crosstab_column_margin,
    _table_total,
    _union_of_sexes,
    _union_of_age_bands,
    _cohort_minus_untraited,
    _traited_minus_outsiders,
)
assert len(SHAPES) == 20
