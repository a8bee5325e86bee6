"""Applying the node's disclosure policy to an analysis partial before it leaves the node.

A handler hands over *which records* are in each cell (their identities), never bare numbers, because
cell-key noise is a function of the records: a count, a histogram bin and a crosstab cell that hold the
same patients come back with the same value, however the handler reached them. :class:`Discloser`
then

- withholds cells of ``1 .. k-1`` records and as many more as needed so that no released margin or
  total lets a withheld cell be recomputed (:mod:`common.privacy.suppression`); a withheld cell comes
  back as ``value=None, suppressed=True``, never as 0;
- perturbs every released count with the cell-key p-table (:mod:`common.privacy.cell_key`), margins
  included (so released tables are not additive; say so to users);
- bins Kaplan-Meier times to the policy's width, carries event and censoring counts of ``1 .. k-1`` into
  the next bin (reported late rather than exactly), and ends the curve before fewer than ``k`` would
  remain at risk; bins are on a fixed grid, so several nodes' curves pool bin by bin;
- rounds quantiles to the declared precision and withholds them below ``k`` values.

Every release carries ``metadata = {"method": ..., "parameters": {...}}`` that states the rules and
noise parameters applied, so a researcher knows what they are looking at. With the policy disabled the
values are exact and the method is ``"none"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.errors import ConfigError, ErrorCode, InputError
from common.privacy.cell_key import PTable, cell_key
from common.privacy.policy import DisclosurePolicy
from common.privacy.record_keys import RecordKeyring
from common.privacy.suppression import primary_suppressed, suppress_table

__all__ = [
    "CountRelease",
    "CrosstabRelease",
    "Discloser",
    "KaplanMeierBin",
    "KaplanMeierRelease",
    "QuantileRelease",
    "ReleasedValue",
    "TableRelease",
    "round_to_precision",
]

SECONDARY_SUPPRESSION = "bipartite-cycle-v1"


@dataclass(frozen=True, slots=True)
class ReleasedValue:
    """One released count: ``value`` is None exactly when the cell is suppressed."""

    value: int | None
    suppressed: bool

    def to_json(self) -> dict[str, Any]:
        """``{"value": ..., "suppressed": ...}``."""
        return {"value": self.value, "suppressed": self.suppressed}


_SUPPRESSED = ReleasedValue(None, True)


@dataclass(frozen=True, slots=True)
class CountRelease:
    """A single released count."""

    count: ReleasedValue
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TableRelease:
    """A released one-way table (a histogram or a categorical count) and its total."""

    cells: tuple[ReleasedValue, ...]
    total: ReleasedValue | None
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CrosstabRelease:
    """A released two-way table with its row totals, column totals and grand total (None: not published)."""

    cells: tuple[tuple[ReleasedValue, ...], ...]
    row_totals: tuple[ReleasedValue, ...] | None
    column_totals: tuple[ReleasedValue, ...] | None
    total: ReleasedValue | None
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class KaplanMeierBin:
    """One step of a released survival table: counts over the time bin ``[start, end)``."""

    start: float
    end: float
    at_risk: int
    events: int
    censored: int


@dataclass(frozen=True, slots=True)
class KaplanMeierRelease:
    """A released survival table; ``truncated_at`` is where the curve stops short of the data, if it does."""

    bins: tuple[KaplanMeierBin, ...]
    suppressed: bool
    truncated_at: float | None
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QuantileRelease:
    """Released quantiles, in the order asked (all None and ``suppressed`` below the minimum cell size)."""

    values: tuple[float | None, ...]
    suppressed: bool
    metadata: dict[str, Any]


def round_to_precision(value: float, precision: float) -> float:
    """``value`` rounded to the nearest multiple of ``precision`` (ties to even), without float dust."""
    if not math.isfinite(value):
        raise InputError(ErrorCode.INVALID_REQUEST, detail="a quantile must be a finite number")
    steps = round(value / precision)
    decimals = max(0, -math.floor(math.log10(precision)) + 1) if precision < 1 else 0
    return round(steps * precision, decimals + 6)


class Discloser:
    """The node's disclosure policy bound to its record keys: turns record sets into releasable results."""

    def __init__(self, policy: DisclosurePolicy, keyring: RecordKeyring | None) -> None:
        """``keyring`` may be None only when the policy adds no cell-key noise."""
        self.policy = policy
        self._p_table: PTable | None = policy.p_table
        if self._p_table is not None and keyring is None:
            raise ConfigError(detail="cell-key noise needs the node's disclosure secret")
        self._keyring = keyring

    @property
    def _min_cell(self) -> int:
        return self.policy.min_cell if self.policy.enabled else 1

    def metadata(self, **extra: Any) -> dict[str, Any]:
        """``{"method", "parameters"}`` for a result released under this policy."""
        if not self.policy.enabled:
            return {"method": "none", "parameters": {}}
        parameters: dict[str, Any] = {
            "min_cell": self.policy.min_cell,
            "suppressed_cells": "value null, suppressed true",
            "secondary_suppression": SECONDARY_SUPPRESSION,
            "cell_key": None if self._p_table is None else self._p_table.parameters(),
            "additive": self._p_table is None,
        }
        parameters.update(extra)
        method = "suppression+cell-key" if self._p_table is not None else "suppression"
        return {"method": method, "parameters": parameters}

    def _value(self, records: frozenset[str]) -> int:
        """The released value of a cell that may be released (perturbed when the policy says so)."""
        if self._p_table is None or self._keyring is None:
            return len(records)
        return self._p_table.release(len(records), cell_key(self._keyring, records))

    def count(self, records: Iterable[str]) -> CountRelease:
        """A single count of the distinct records in ``records``."""
        cell = frozenset(records)
        if primary_suppressed(len(cell), self._min_cell):
            return CountRelease(_SUPPRESSED, self.metadata())
        return CountRelease(ReleasedValue(self._value(cell), False), self.metadata())

    def table(self, cells: Sequence[Iterable[str]], *, total: bool = True) -> TableRelease:
        """A one-way table (histogram bins, categories); cells must not share records."""
        sets = [frozenset(c) for c in cells]
        union = _disjoint_union(sets)
        counts = np.array([len(s) for s in sets], dtype=np.int64)
        plan = suppress_table(counts, min_cell=self._min_cell, total=total)
        released = tuple(
            ReleasedValue(self._value(s), False) if plan.released[j] else _SUPPRESSED for j, s in enumerate(sets)
        )
        total_value: ReleasedValue | None = None
        if total:
            total_value = ReleasedValue(self._value(union), False) if plan.margins.total else _SUPPRESSED
        return TableRelease(released, total_value, self.metadata())

    def crosstab(self, cells: Sequence[Sequence[Iterable[str]]]) -> CrosstabRelease:
        """A two-way table, with margins when the policy publishes them; cells must not share records."""
        sets = [[frozenset(c) for c in row] for row in cells]
        if not sets or not sets[0] or any(len(row) != len(sets[0]) for row in sets):
            raise InputError(ErrorCode.INVALID_REQUEST, detail="a crosstab is a non-empty rectangle of cells")
        rows = [_disjoint_union(row) for row in sets]
        columns = [_disjoint_union([row[j] for row in sets]) for j in range(len(sets[0]))]
        everything = _disjoint_union(rows)
        counts = np.array([[len(c) for c in row] for row in sets], dtype=np.int64)
        margins = self.policy.publish_margins or not self.policy.enabled
        plan = suppress_table(counts, min_cell=self._min_cell, rows=margins, columns=margins, total=margins)
        released_cells = tuple(
            tuple(
                ReleasedValue(self._value(cell), False) if plan.released[i, j] else _SUPPRESSED
                for j, cell in enumerate(row)
            )
            for i, row in enumerate(sets)
        )
        if not margins:
            return CrosstabRelease(released_cells, None, None, None, self.metadata(margins=False))
        return CrosstabRelease(
            released_cells,
            tuple(
                ReleasedValue(self._value(r), False) if ok else _SUPPRESSED
                for r, ok in zip(rows, plan.margins.rows, strict=True)
            ),
            tuple(
                ReleasedValue(self._value(c), False) if ok else _SUPPRESSED
                for c, ok in zip(columns, plan.margins.columns, strict=True)
            ),
            ReleasedValue(self._value(everything), False) if plan.margins.total else _SUPPRESSED,
            self.metadata(margins=True),
        )

    def kaplan_meier(self, times: Sequence[float], events: Sequence[bool]) -> KaplanMeierRelease:
        """The survival table of ``times`` (event when ``events[i]``, else censored), under the policy."""
        if len(times) != len(events):
            raise InputError(ErrorCode.INVALID_REQUEST, detail="one event flag per time")
        time_array = np.asarray(times, dtype=float)
        if time_array.size and (not np.isfinite(time_array).all() or (time_array < 0).any()):
            raise InputError(ErrorCode.INVALID_REQUEST, detail="survival times are finite and not negative")
        event_array = np.asarray(events, dtype=bool)
        if not self.policy.enabled:
            return self._exact_kaplan_meier(time_array, event_array)
        k, width = self.policy.min_cell, self.policy.km_time_bin
        metadata = self.metadata(km_time_bin=width, km_small_counts="carried into the next bin")
        if time_array.size < k:
            return KaplanMeierRelease((), True, None, metadata)
        indices = np.floor(time_array / width).astype(np.int64)
        released: list[KaplanMeierBin] = []
        at_risk = int(time_array.size)
        carried_events = carried_censored = 0
        for index in np.unique(indices):
            in_bin = indices == index
            events_here = int((in_bin & event_array).sum()) + carried_events
            censored_here = int((in_bin & ~event_array).sum()) + carried_censored
            events_out = 0 if primary_suppressed(events_here, k) else events_here
            censored_out = 0 if primary_suppressed(censored_here, k) else censored_here
            carried_events, carried_censored = events_here - events_out, censored_here - censored_out
            remaining = at_risk - events_out - censored_out
            if primary_suppressed(remaining, k):
                break
            if events_out or censored_out:
                start = float(index * width)
                released.append(KaplanMeierBin(start, start + width, at_risk, events_out, censored_out))
            at_risk = remaining
        # Whoever is still at risk after the last released bin is not accounted for beyond its end.
        truncated_at = (released[-1].end if released else 0.0) if at_risk > 0 else None
        return KaplanMeierRelease(tuple(released), False, truncated_at, metadata)

    def _exact_kaplan_meier(
        self, times: np.ndarray[Any, np.dtype[np.float64]], events: np.ndarray[Any, np.dtype[np.bool_]]
    ) -> KaplanMeierRelease:
        bins: list[KaplanMeierBin] = []
        at_risk = int(times.size)
        for time in np.unique(times):
            here = times == time
            died, censored = int((here & events).sum()), int((here & ~events).sum())
            bins.append(KaplanMeierBin(float(time), float(time), at_risk, died, censored))
            at_risk -= died + censored
        return KaplanMeierRelease(tuple(bins), False, None, self.metadata())

    def quantiles(self, values: Sequence[float], probabilities: Sequence[float]) -> QuantileRelease:
        """Quantiles (numpy's default linear interpolation) rounded to the policy's precision."""
        if any(not 0 <= p <= 1 for p in probabilities):
            raise InputError(ErrorCode.INVALID_REQUEST, detail="quantile probabilities are in [0, 1]")
        array = np.asarray(values, dtype=float)
        if not self.policy.enabled:
            exact = tuple(float(q) for q in np.quantile(array, probabilities)) if array.size else ()
            return QuantileRelease(exact, False, self.metadata())
        precision = self.policy.quantile_precision
        metadata = self.metadata(quantile_precision=precision)
        if array.size < self.policy.min_cell:
            return QuantileRelease(tuple(None for _ in probabilities), True, metadata)
        rounded = tuple(round_to_precision(float(q), precision) for q in np.quantile(array, probabilities))
        return QuantileRelease(rounded, False, metadata)


def _disjoint_union(sets: Sequence[frozenset[str]]) -> frozenset[str]:
    union = frozenset().union(*sets)
    if len(union) != sum(len(s) for s in sets):
        raise InputError(ErrorCode.INVALID_REQUEST, detail="table cells must not share records")
    return union
