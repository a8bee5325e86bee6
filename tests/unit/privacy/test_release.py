"""The disclosure policy applied to counts, tables, crosstabs, survival tables and quantiles."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import ConfigError, InputError
from common.privacy import Discloser, DisclosurePolicy, RecordKeyring, recomputable_cells
from common.privacy.release import round_to_precision
from common.privacy.suppression import MarginMask


def _ids(prefix: str, n: int) -> list[str]:
    return [f"Patient/{prefix}{i}" for i in range(n)]


def test_a_small_count_comes_back_suppressed_never_as_zero(discloser: Discloser) -> None:
    """A count of 1..4 is released as value None with the suppressed flag; an empty count as 0."""
    small = discloser.count(_ids("a", 3)).count
    assert small.value is None
    assert small.suppressed
    assert small.to_json() == {"value": None, "suppressed": True}
    empty = discloser.count([]).count
    assert empty.value == 0
    assert not empty.suppressed


def test_every_release_carries_its_method_and_noise_parameters(discloser: Discloser) -> None:
    """Metadata names the method and the p-table, its maximum noise and its variance."""
    metadata = discloser.count(_ids("b", 40)).metadata
    assert metadata["method"] == "suppression+cell-key"
    parameters = metadata["parameters"]
    assert parameters["min_cell"] == 5
    assert parameters["cell_key"]["max_noise"] == 5
    assert parameters["cell_key"]["variance"] == pytest.approx(10.0)
    assert parameters["additive"] is False


def test_a_crosstab_withholds_small_cells_so_that_no_margin_gives_them_away(discloser: Discloser) -> None:
    """A 3x3 crosstab with one small cell: that cell and three more are withheld; margins stay."""
    sizes = [[3, 20, 25], [30, 22, 27], [18, 40, 33]]
    cells = [[_ids(f"r{i}c{j}-", n) for j, n in enumerate(row)] for i, row in enumerate(sizes)]
    released = discloser.crosstab(cells)
    mask = np.array([[not c.suppressed for c in row] for row in released.cells])
    assert released.cells[0][0].value is None
    assert released.cells[0][0].suppressed
    assert int((~mask).sum()) == 4
    assert all(c.value is None for row in released.cells for c in row if c.suppressed)
    assert released.row_totals is not None
    assert released.column_totals is not None
    assert released.total is not None
    margins = MarginMask(
        rows=tuple(not t.suppressed for t in released.row_totals),
        columns=tuple(not t.suppressed for t in released.column_totals),
        total=not released.total.suppressed,
    )
    assert not any(kind == "cell" for kind, _, _ in recomputable_cells(np.array(sizes), mask, margins))


def test_with_disclosure_control_off_every_value_is_exact(keyring: RecordKeyring) -> None:
    """The disabled policy releases the true counts, small ones included, and says method none."""
    exact = Discloser(DisclosurePolicy.disabled(), keyring)
    sizes = [[3, 20], [1, 7]]
    released = exact.crosstab([[_ids(f"x{i}{j}", n) for j, n in enumerate(row)] for i, row in enumerate(sizes)])
    assert [[c.value for c in row] for row in released.cells] == sizes
    assert released.total is not None
    assert released.total.value == 31
    assert released.metadata == {"method": "none", "parameters": {}}


def test_cells_that_share_records_are_refused(discloser: Discloser) -> None:
    """A table's cells partition its records; overlapping cells are a handler bug the caller hears of."""
    with pytest.raises(InputError):
        discloser.table([["Patient/1", "Patient/2"], ["Patient/2"]])


def test_cell_key_noise_needs_the_node_secret() -> None:
    """A discloser that must add cell-key noise refuses to be built without a keyring."""
    with pytest.raises(ConfigError):
        Discloser(DisclosurePolicy(), None)


def test_kaplan_meier_bins_times_carries_small_counts_and_stops_before_fewer_than_k_remain(
    keyring: RecordKeyring,
) -> None:
    """Times fall in 30-day bins; 1..4 events wait for the next bin; the curve ends before <5 remain."""
    discloser = Discloser(DisclosurePolicy(cell_key=False), keyring)
    times = [5.0] * 6 + [40.0] * 3 + [70.0] * 4 + [100.0] * 7 + [130.0] * 2 + [200.0] * 3
    events = [True] * 6 + [True] * 3 + [False] * 4 + [True] * 7 + [True] * 2 + [False] * 3
    released = discloser.kaplan_meier(times, events)
    steps = [(b.start, b.end, b.at_risk, b.events, b.censored) for b in released.bins]
    assert steps == [(0.0, 30.0, 25, 6, 0), (90.0, 120.0, 19, 10, 0)]
    assert released.truncated_at == 120.0
    for step in released.bins:
        assert step.events == 0 or step.events >= 5
        assert step.censored == 0 or step.censored >= 5
        assert step.at_risk >= 5
        assert step.at_risk - step.events - step.censored == 0 or step.at_risk - step.events - step.censored >= 5
    assert released.metadata["parameters"]["km_time_bin"] == 30.0


def test_kaplan_meier_of_fewer_than_k_patients_is_suppressed(discloser: Discloser) -> None:
    """A survival table of four patients is withheld whole."""
    released = discloser.kaplan_meier([1.0, 2.0, 3.0, 4.0], [True, True, False, True])
    assert released.suppressed
    assert released.bins == ()


def test_kaplan_meier_without_disclosure_control_is_the_exact_event_table(keyring: RecordKeyring) -> None:
    """Disabled: one step per distinct time with the exact at-risk, event and censoring counts."""
    released = Discloser(DisclosurePolicy.disabled(), keyring).kaplan_meier([2.0, 1.0, 2.0], [True, False, True])
    assert [(b.start, b.at_risk, b.events, b.censored) for b in released.bins] == [(1.0, 3, 0, 1), (2.0, 2, 2, 0)]


def test_quantiles_are_rounded_to_the_declared_precision_and_suppressed_below_k(keyring: RecordKeyring) -> None:
    """Quantiles of at least k values are rounded to the policy's precision; of fewer, withheld."""
    discloser = Discloser(DisclosurePolicy(quantile_precision=0.5), keyring)
    values = [1.1, 2.3, 2.9, 3.6, 4.4, 5.2, 7.7]
    released = discloser.quantiles(values, [0.25, 0.5, 0.75])
    assert released.values == (2.5, 3.5, 5.0)
    assert released.metadata["parameters"]["quantile_precision"] == 0.5
    assert discloser.quantiles(values[:4], [0.5]).values == (None,)


def test_rounding_to_a_precision_leaves_no_float_dust() -> None:
    """0.1-steps give 0.3, not 0.30000000000000004."""
    assert round_to_precision(0.29, 0.1) == 0.3
    assert round_to_precision(1234.4, 10) == 1230
