"""Minimum cell size with secondary suppression: no released margin or cell lets a hidden cell be recomputed.

**Primary suppression.** A cell (or a published margin) that counts ``1 .. k-1`` records is withheld.
Zero is not: an empty cell discloses nobody.

**Secondary suppression.** A table is published with some of its margins (row totals, column totals,
the grand total). Write it as the ``(R+1) x (C+1)`` table extended with its margins: every row and every
column of that table satisfies "the cells add up to the margin". Those identities are the incidence
equations of a bipartite graph whose nodes are the ``R+1`` rows and ``C+1`` columns and whose edges are
the cells, so the cells an attacker does not know (withheld cells and margins that are not published)
can be solved for exactly when they are *bridges* of the graph formed by the unknown cells: a cell that
lies on a cycle of unknown cells can be moved by ``+t, -t, +t, ...`` around the cycle with every
published number unchanged, and a bridge is fixed by the equations. So the rule, which is also the
proof:

    every withheld cell lies on a cycle of unknown cells (rows and columns alternating).

:func:`suppress_table` withholds the small cells, then, while some withheld cell is a bridge, closes a
cycle through it along the cheapest path of cells to withhold (already unknown cells cost nothing;
small non-zero cells cost least; zero cells and published margins cost most, so that margins stay
published when they can and the ``+1/-1`` move around a cycle usually stays non-negative). A
one-dimensional table with a total is the case ``R = 1``: the withheld cells and the total, if it is
withheld too, must be none or at least two.

:func:`recomputable_cells` is the attacker and the independent check: it writes every identity as a
linear equation, substitutes every released value, and reports each unknown cell that the equations fix
(its coordinate vanishes on the null space, by SVD). The tests run it against random tables. It treats
released values as exact, which is conservative when they are also perturbed, and it does not use
non-negativity or integrality; the cost order above makes those rarely matter, and the cell-key noise on
released values blurs any interval an attacker could still compute.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.errors import ErrorCode, InputError

__all__ = [
    "MarginMask",
    "TableSuppression",
    "primary_suppressed",
    "recomputable_cells",
    "suppress_table",
]

# Relative costs of withholding one more cell (see the module docstring).
_COST_CELL = 1.0
_COST_ZERO_CELL = 1_000.0
_COST_MARGIN = 100_000.0
_SVD_TOLERANCE = 1e-9

Position = tuple[str, int, int]
"""A cell of a table: ``("cell", i, j)``, ``("row", i, -1)``, ``("column", -1, j)`` or ``("total", -1, -1)``.

A one-dimensional table uses ``("cell", 0, j)`` and ``("total", -1, -1)``.
"""


@dataclass(frozen=True, slots=True)
class MarginMask:
    """Which margins are released: one flag per row total, per column total, and one for the total.

    A one-dimensional table uses only ``total``.
    """

    rows: tuple[bool, ...] = ()
    columns: tuple[bool, ...] = ()
    total: bool = False


@dataclass(frozen=True, slots=True)
class TableSuppression:
    """The outcome of suppression: which cells and margins may be released (True) or are withheld."""

    released: npt.NDArray[np.bool_]
    margins: MarginMask
    primary: frozenset[Position]
    secondary: frozenset[Position]


def primary_suppressed(value: int, min_cell: int) -> bool:
    """Whether a count must be withheld on its own: ``0 < value < min_cell``."""
    return 0 < value < min_cell


def _as_counts(table: npt.ArrayLike) -> npt.NDArray[np.int64]:
    counts = np.asarray(table)
    if counts.ndim not in (1, 2) or counts.size == 0:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="a count table has one or two non-empty dimensions")
    if not np.issubdtype(counts.dtype, np.integer) or bool((counts < 0).any()):
        raise InputError(ErrorCode.INVALID_REQUEST, detail="a count table holds non-negative integers")
    return counts.astype(np.int64)


def suppress_table(
    table: npt.ArrayLike,
    *,
    min_cell: int,
    rows: bool = True,
    columns: bool = True,
    total: bool = True,
) -> TableSuppression:
    """Primary and secondary suppression of a 1-D or 2-D count table published with the given margins.

    For a 1-D table only ``total`` matters (``rows``/``columns`` are ignored). The returned
    ``released`` mask has the table's shape; ``margins`` says which requested margins survive.
    """
    counts = _as_counts(table)
    if counts.ndim == 1:
        return _suppress_1d(counts, min_cell=min_cell, total=total)
    return _suppress_2d(counts, min_cell=min_cell, publish=(rows, columns, total))


def _suppress_1d(counts: npt.NDArray[np.int64], *, min_cell: int, total: bool) -> TableSuppression:
    released = np.array([not primary_suppressed(int(v), min_cell) for v in counts], dtype=bool)
    primary = {("cell", 0, j) for j in range(counts.size) if not released[j]}
    total_value = int(counts.sum())
    total_released = total and not primary_suppressed(total_value, min_cell)
    if total and not total_released:
        primary.add(("total", -1, -1))
    secondary: set[Position] = set()
    withheld = int((~released).sum()) + (1 if total and not total_released else 0)
    if total_released and withheld == 1:
        # The total would give the one hidden cell away: hide the cheapest other cell, or the total.
        candidates = [j for j in range(counts.size) if released[j]]
        if candidates:
            j = min(candidates, key=lambda c: (counts[c] == 0, int(counts[c]), c))
            released[j] = False
            secondary.add(("cell", 0, j))
        else:  # no other cell to hide: hide the total
            total_released = False
            secondary.add(("total", -1, -1))
    return TableSuppression(
        released=released,
        margins=MarginMask(total=total_released),
        primary=frozenset(primary),
        secondary=frozenset(secondary),
    )


def _extended(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    rows, cols = counts.shape
    extended = np.zeros((rows + 1, cols + 1), dtype=np.int64)
    extended[:rows, :cols] = counts
    extended[:rows, cols] = counts.sum(axis=1)
    extended[rows, :cols] = counts.sum(axis=0)
    extended[rows, cols] = counts.sum()
    return extended


def _position(i: int, j: int, rows: int, cols: int) -> Position:
    if i < rows and j < cols:
        return ("cell", i, j)
    if i < rows:
        return ("row", i, -1)
    if j < cols:
        return ("column", -1, j)
    return ("total", -1, -1)


def _suppress_2d(counts: npt.NDArray[np.int64], *, min_cell: int, publish: tuple[bool, bool, bool]) -> TableSuppression:
    rows, cols = counts.shape
    values = _extended(counts)
    published = np.ones_like(values, dtype=bool)
    published[:rows, cols] = publish[0]
    published[rows, :cols] = publish[1]
    published[rows, cols] = publish[2]
    small = (values > 0) & (values < min_cell) & published
    unknown = small | ~published
    primary = {_position(int(i), int(j), rows, cols) for i, j in zip(*np.nonzero(small), strict=True)}
    secondary: set[Position] = set()
    # Protected: every withheld cell or margin, and an unpublished margin that is small itself.
    protect = published | ((values > 0) & (values < min_cell))
    while True:
        withheld_bridges = [edge for edge in _bridges(unknown) if protect[edge]]
        if not withheld_bridges:
            break
        i, j = withheld_bridges[0]
        path = _cheapest_cycle_path(values, published, unknown, (i, j))
        for a, b in path:
            if not unknown[a, b]:
                unknown[a, b] = True
                secondary.add(_position(a, b, rows, cols))
    withheld = unknown & published
    return TableSuppression(
        released=~withheld[:rows, :cols],
        margins=MarginMask(
            rows=tuple(bool(published[i, cols] and not withheld[i, cols]) for i in range(rows)),
            columns=tuple(bool(published[rows, j] and not withheld[rows, j]) for j in range(cols)),
            total=bool(published[rows, cols] and not withheld[rows, cols]),
        ),
        primary=frozenset(primary),
        secondary=frozenset(secondary),
    )


def _bridges(unknown: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """The bridges of the bipartite graph (rows ⟷ columns) whose edges are the unknown cells."""
    n_rows, n_cols = unknown.shape
    adjacency: list[list[tuple[int, int]]] = [[] for _ in range(n_rows + n_cols)]
    for edge_id, (i, j) in enumerate(zip(*np.nonzero(unknown), strict=True)):
        adjacency[int(i)].append((n_rows + int(j), edge_id))
        adjacency[n_rows + int(j)].append((int(i), edge_id))
    edges = [(int(i), int(j)) for i, j in zip(*np.nonzero(unknown), strict=True)]
    order = [-1] * (n_rows + n_cols)
    low = [0] * (n_rows + n_cols)
    found: list[tuple[int, int]] = []
    counter = 0
    for root in range(n_rows + n_cols):
        if order[root] != -1:
            continue
        order[root] = low[root] = counter
        counter += 1
        # Iterative DFS: (node, edge used to reach it, iterator position).
        stack: list[tuple[int, int, int]] = [(root, -1, 0)]
        while stack:
            node, via, position = stack[-1]
            if position < len(adjacency[node]):
                stack[-1] = (node, via, position + 1)
                neighbour, edge_id = adjacency[node][position]
                if edge_id == via:
                    continue
                if order[neighbour] == -1:
                    order[neighbour] = low[neighbour] = counter
                    counter += 1
                    stack.append((neighbour, edge_id, 0))
                else:
                    low[node] = min(low[node], order[neighbour])
            else:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[node])
                    if low[node] > order[parent]:
                        found.append(edges[via])
    return found


def _cheapest_cycle_path(
    values: npt.NDArray[np.int64],
    published: npt.NDArray[np.bool_],
    unknown: npt.NDArray[np.bool_],
    edge: tuple[int, int],
) -> list[tuple[int, int]]:
    """The cheapest set of cells that, with ``edge``, closes a cycle (Dijkstra from its row to its column)."""
    n_rows, n_cols = values.shape
    scale = float(values.max()) + 1.0

    def cost(i: int, j: int) -> float:
        if unknown[i, j]:
            return 0.0
        if i == n_rows - 1 or j == n_cols - 1:
            return _COST_MARGIN
        if values[i, j] == 0:
            return _COST_ZERO_CELL
        return _COST_CELL + float(values[i, j]) / scale

    start, goal = edge[0], n_rows + edge[1]
    best = {start: 0.0}
    previous: dict[int, int] = {}
    queue = [(0.0, start)]
    done: set[int] = set()
    while queue:
        distance, node = heapq.heappop(queue)
        if node in done:
            continue
        done.add(node)
        if node == goal:
            break
        if node < n_rows:
            neighbours = [(n_rows + j, (node, j)) for j in range(n_cols)]
        else:
            neighbours = [(i, (i, node - n_rows)) for i in range(n_rows)]
        for neighbour, (i, j) in neighbours:
            if (i, j) == edge:
                continue
            candidate = distance + cost(i, j)
            if candidate < best.get(neighbour, float("inf")):
                best[neighbour] = candidate
                previous[neighbour] = node
                heapq.heappush(queue, (candidate, neighbour))
    path: list[tuple[int, int]] = []
    node = goal
    while node != start:
        before = previous[node]
        path.append((before, node - n_rows) if before < n_rows else (node, before - n_rows))
        node = before
    return path


def recomputable_cells(table: npt.ArrayLike, released_mask: npt.ArrayLike, margins: MarginMask) -> frozenset[Position]:
    """Every hidden cell and margin that the released cells and margins determine exactly.

    ``table`` holds the true counts (1-D or 2-D), ``released_mask`` says which cells were released, and
    ``margins`` which margins were. Every hidden quantity (a withheld cell, a withheld or unpublished
    margin) is an unknown; every table identity (cells add up to row totals, column totals and the
    total) is an equation. An unknown is recomputable when every solution of the equations gives it the
    same value. A recomputable *cell* is a disclosure; a recomputable unpublished margin is one only if
    it is small (the sum of released cells is not), so callers judge margins by their values.
    """
    counts = _as_counts(table)
    mask = np.asarray(released_mask, dtype=bool)
    if mask.shape != counts.shape:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the released mask must have the table's shape")
    if counts.ndim == 1:
        variables: list[Position] = [("cell", 0, j) for j in range(counts.size)] + [("total", -1, -1)]
        known = {("cell", 0, j) for j in range(counts.size) if mask[j]}
        if margins.total:
            known.add(("total", -1, -1))
        equations = [{**{("cell", 0, j): 1.0 for j in range(counts.size)}, ("total", -1, -1): -1.0}]
    else:
        variables, known, equations = _equations_2d(counts.shape, mask, margins)
    unknowns = [v for v in variables if v not in known]
    if not unknowns:
        return frozenset()
    column = {v: k for k, v in enumerate(unknowns)}
    matrix = np.zeros((len(equations), len(unknowns)))
    for row, equation in enumerate(equations):
        for variable, coefficient in equation.items():
            if variable in column:
                matrix[row, column[variable]] = coefficient
    return frozenset(unknowns[k] for k in _determined_columns(matrix))


def _equations_2d(
    shape: tuple[int, ...], mask: npt.NDArray[np.bool_], margins: MarginMask
) -> tuple[list[Position], set[Position], list[dict[Position, float]]]:
    rows, cols = int(shape[0]), int(shape[1])
    row_flags = margins.rows or (False,) * rows
    column_flags = margins.columns or (False,) * cols
    if len(row_flags) != rows or len(column_flags) != cols:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="one margin flag per row and per column")
    variables: list[Position] = [("cell", i, j) for i in range(rows) for j in range(cols)]
    variables += [("row", i, -1) for i in range(rows)] + [("column", -1, j) for j in range(cols)]
    variables.append(("total", -1, -1))
    known: set[Position] = {("cell", i, j) for i in range(rows) for j in range(cols) if mask[i, j]}
    known |= {("row", i, -1) for i in range(rows) if row_flags[i]}
    known |= {("column", -1, j) for j in range(cols) if column_flags[j]}
    if margins.total:
        known.add(("total", -1, -1))
    equations: list[dict[Position, float]] = []
    for i in range(rows):
        equations.append({**{("cell", i, j): 1.0 for j in range(cols)}, ("row", i, -1): -1.0})
    for j in range(cols):
        equations.append({**{("cell", i, j): 1.0 for i in range(rows)}, ("column", -1, j): -1.0})
    equations.append({**{("row", i, -1): 1.0 for i in range(rows)}, ("total", -1, -1): -1.0})
    equations.append({**{("column", -1, j): 1.0 for j in range(cols)}, ("total", -1, -1): -1.0})
    return variables, known, equations


def _determined_columns(matrix: npt.NDArray[np.float64]) -> list[int]:
    """Columns ``k`` of ``matrix`` whose unit vector lies in its row space (zero on the null space)."""
    _, singular, vt = np.linalg.svd(matrix, full_matrices=True)
    rank = int((singular > _SVD_TOLERANCE * max(1.0, float(singular.max(initial=0.0)))).sum())
    null_space = vt[rank:]
    if null_space.shape[0] == 0:
        return list(range(matrix.shape[1]))
    norms = np.linalg.norm(null_space, axis=0)
    return [k for k in range(matrix.shape[1]) if norms[k] < 1e-7]
