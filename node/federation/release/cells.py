"""Releasing the count analyses (``count``, ``histogram``, ``crosstab``) from the records in each cell.

The release never trusts bare numbers: it puts every row of the cohort in its cell(s) by identity
(:mod:`.records`) and checks that the cell sizes equal the analysis' own partial (a guard against the
two drifting apart). Then, by the rules in force:

* **cell key + suppression** (:class:`common.privacy.release.Discloser`): cells of ``1 .. k-1`` and
  whatever secondary suppression needs are withheld (``{"value": null, "suppressed": true}``), every
  released count — margins included — is perturbed by the p-table from its records' keys. A
  ``count``'s row count and non-missing counts are separate single counts; a ``histogram`` is a
  one-way table of its bins, ``underflow``, ``overflow`` and ``missing`` with its total; a ``crosstab``
  is a two-way table with its margins (when the policy publishes them) and ``missing`` a single count;
* **differential privacy** (:mod:`common.privacy.dp`): the cells in which every record lies exactly
  once (histogram: bins, under/overflow, missing; crosstab: its cells and missing) get discrete Laplace
  or rounded Gaussian noise at the job's epsilon, are clamped at 0, and margins are their sums
  (post-processing, no further cost). A ``count``'s row count and ``m`` non-missing counts share one
  record ``1 + m`` times, so each gets ``epsilon / (1 + m)`` (and ``delta / (1 + m)``): basic
  composition. No suppression: the noise protects small cells;
* **secure aggregation** (:func:`secure_values`): the layout of :mod:`common.analytics.secure`, every
  non-zero entry perturbed with a p-table whose smallest released value is 1 (suppression is the
  coordinator's, on the totals), or the DP values, or the exact counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.analytics.count import CountParams
from common.analytics.crosstab import CrosstabParams, crosstab_codes
from common.analytics.histogram import HistogramParams, histogram_cell_index
from common.analytics.params import parse_params
from common.analytics.task import AnalysisTask
from common.errors import ErrorCode, InternalError
from common.privacy.cell_key import PTable, cell_key
from common.privacy.dp import dp_histogram
from common.privacy.policy import DpPolicy
from common.privacy.record_keys import RecordKeyring
from common.privacy.release import Discloser
from node.federation.release.records import Identities, record_identities

__all__ = ["CellSets", "cell_key_partial", "cell_sets", "dp_partial", "secure_values"]


@dataclass(frozen=True, slots=True)
class CellSets:
    """The records of every cell of a count analysis.

    ``cells``: count — the rows, then each column's non-missing rows; histogram — the bins, underflow,
    overflow, missing (disjoint); crosstab — the cells row by row, then missing (disjoint).
    ``shape``: the crosstab's (rows, columns), else None.
    """

    analysis: str
    params: Any
    cells: list[frozenset[str]]
    shape: tuple[int, int] | None = None

    @property
    def sizes(self) -> list[int]:
        """Each cell's number of records."""
        return [len(cell) for cell in self.cells]


def _groups(ids: Identities, codes: np.ndarray, size: int) -> list[frozenset[str]]:
    """The identities with each code ``0 .. size-1`` (one pass: sort by code, cut at the boundaries)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(codes, minlength=size))))
    ordered = ids[order]
    return [frozenset(ordered[bounds[j] : bounds[j + 1]]) for j in range(size)]


def cell_sets(task: AnalysisTask, rows: pd.DataFrame) -> CellSets:
    """The records of every cell of the task's count analysis over ``rows``."""
    ids = record_identities(task, rows)
    if task.analysis == "count":
        count = parse_params(CountParams, task.params)
        sets = [frozenset(ids)]
        sets += [frozenset(ids[rows[column].notna().to_numpy(dtype=bool)]) for column in count.columns]
        return CellSets("count", count, sets)
    if task.analysis == "histogram":
        histogram = parse_params(HistogramParams, task.params)
        codes = histogram_cell_index(rows, histogram)
        return CellSets("histogram", histogram, _groups(ids, codes, histogram.bins + 3))
    crosstab = parse_params(CrosstabParams, task.params)
    row_codes, column_codes = crosstab_codes(rows, crosstab)
    n_rows, n_columns = len(crosstab.row_levels), len(crosstab.column_levels)
    both = (row_codes >= 0) & (column_codes >= 0)
    codes = np.where(both, row_codes * n_columns + column_codes, n_rows * n_columns)
    return CellSets("crosstab", crosstab, _groups(ids, codes, n_rows * n_columns + 1), (n_rows, n_columns))


def _plain(sets: CellSets) -> dict[str, Any]:
    """The exact partial the analysis computes, from the cell sizes."""
    sizes = sets.sizes
    if sets.analysis == "count":
        return {"rows": sizes[0], "non_missing": sizes[1:]}
    if sets.analysis == "histogram":
        return {"counts": sizes[:-3], "underflow": sizes[-3], "overflow": sizes[-2], "missing": sizes[-1]}
    assert sets.shape is not None
    n_rows, n_columns = sets.shape
    return {
        "counts": [sizes[i * n_columns : (i + 1) * n_columns] for i in range(n_rows)],
        "missing": sizes[-1],
    }


def check_against(sets: CellSets, partial: dict[str, Any] | None) -> None:
    """Refuse to release when the cells do not reproduce the analysis' partial (they must never drift)."""
    if partial is None:
        return
    plain = _plain(sets)
    if any(partial.get(key) != value for key, value in plain.items()) or any(
        partial[key] is not None for key in set(partial) - set(plain)
    ):
        raise InternalError(ErrorCode.INTERNAL, detail="release cells differ from the analysis partial")


def _grid(sets: CellSets) -> list[list[frozenset[str]]]:
    assert sets.shape is not None
    n_rows, n_columns = sets.shape
    return [sets.cells[i * n_columns : (i + 1) * n_columns] for i in range(n_rows)]


def cell_key_partial(sets: CellSets, discloser: Discloser) -> tuple[dict[str, Any], dict[str, Any]]:
    """The partial under suppression and cell-key noise, and its metadata."""
    if sets.analysis == "count":
        released = [discloser.count(cell).count.to_json() for cell in sets.cells]
        return {"rows": released[0], "non_missing": released[1:]}, discloser.metadata()
    if sets.analysis == "histogram":
        table = discloser.table(sets.cells, total=True)
        cells = [cell.to_json() for cell in table.cells]
        histogram: dict[str, Any] = {
            "counts": cells[:-3],
            "underflow": cells[-3],
            "overflow": cells[-2],
            "missing": cells[-1],
            "total": None if table.total is None else table.total.to_json(),
        }
        return histogram, table.metadata
    crosstab = discloser.crosstab(_grid(sets))
    missing = discloser.count(sets.cells[-1]).count.to_json()
    partial: dict[str, Any] = {
        "counts": [[cell.to_json() for cell in row] for row in crosstab.cells],
        "missing": missing,
        "row_totals": None if crosstab.row_totals is None else [c.to_json() for c in crosstab.row_totals],
        "column_totals": None if crosstab.column_totals is None else [c.to_json() for c in crosstab.column_totals],
        "total": None if crosstab.total is None else crosstab.total.to_json(),
    }
    return partial, crosstab.metadata


def _dp_counts(sets: CellSets, dp: DpPolicy, rng: np.random.Generator) -> tuple[list[int], dict[str, Any]]:
    """Noisy counts (clamped at 0) of the disjoint cells, or of a count's counts with the budget split."""
    sizes = sets.sizes
    if sets.analysis == "count":
        share = len(sizes)
        split = DpPolicy(mechanism=dp.mechanism, epsilon=dp.epsilon / share, delta=dp.delta / share)
        noisy = dp_histogram(sizes, policy=split, rng=rng)
        metadata = noisy.metadata
        metadata["parameters"].update(epsilon=dp.epsilon, delta=dp.delta, composition=f"{share} counts, equal shares")
    else:
        noisy = dp_histogram(sizes, policy=dp, rng=rng)
        metadata = noisy.metadata
    return [max(0, int(v)) for v in noisy.value], metadata


def _from_disjoint(sets: CellSets, values: Sequence[int]) -> dict[str, Any]:
    """A partial (with margins as sums) from counts of the cells of ``sets``."""
    if sets.analysis == "count":
        return {"rows": values[0], "non_missing": list(values[1:])}
    if sets.analysis == "histogram":
        return {
            "counts": list(values[:-3]),
            "underflow": values[-3],
            "overflow": values[-2],
            "missing": values[-1],
            "total": int(sum(values)),
        }
    assert sets.shape is not None
    n_rows, n_columns = sets.shape
    table = np.asarray(values[:-1], dtype=np.int64).reshape(n_rows, n_columns)
    return {
        "counts": [[int(c) for c in row] for row in table],
        "missing": values[-1],
        "row_totals": [int(v) for v in table.sum(axis=1)],
        "column_totals": [int(v) for v in table.sum(axis=0)],
        "total": int(table.sum()),
    }


def dp_partial(sets: CellSets, dp: DpPolicy, rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    """The partial under differential privacy, and its metadata."""
    values, metadata = _dp_counts(sets, dp, rng)
    return _from_disjoint(sets, values), metadata


def _layout(partial: dict[str, Any], analysis: str) -> list[int]:
    """The secure-aggregation vector of a plain-integer partial with margins (common.analytics.secure)."""
    if analysis == "count":
        return [int(partial["rows"]), *(int(v) for v in partial["non_missing"])]
    if analysis == "histogram":
        cells = [*partial["counts"], partial["underflow"], partial["overflow"], partial["missing"]]
        return [int(v) for v in cells] + [int(partial["total"])]
    cells = [int(v) for row in partial["counts"] for v in row]
    margins = [*partial["row_totals"], *partial["column_totals"], partial["total"]]
    return cells + [int(partial["missing"])] + [int(v) for v in margins]


def _margin_sets(sets: CellSets) -> list[frozenset[str]]:
    """The record sets of the layout's entries, margins included."""
    if sets.analysis == "count":
        return list(sets.cells)
    if sets.analysis == "histogram":
        return [*sets.cells, frozenset().union(*sets.cells)]
    grid = _grid(sets)
    rows = [frozenset().union(*row) for row in grid]
    columns = [frozenset().union(*(row[j] for row in grid)) for j in range(len(grid[0]))]
    flat = [cell for row in grid for cell in row]
    return [*flat, sets.cells[-1], *rows, *columns, frozenset().union(*rows)]


def secure_values(
    sets: CellSets,
    *,
    dp: tuple[DpPolicy, np.random.Generator] | None,
    p_table: PTable | None,
    keyring: RecordKeyring | None,
) -> tuple[list[int], dict[str, Any] | None]:
    """The node's vector for secure aggregation (DP metadata when DP applied)."""
    if dp is not None:
        values, metadata = _dp_counts(sets, *dp)
        return _layout(_from_disjoint(sets, values), sets.analysis), metadata
    entries = _margin_sets(sets)
    if p_table is None or keyring is None:
        return [len(entry) for entry in entries], None
    return [p_table.release(len(entry), cell_key(keyring, entry)) for entry in entries], None
