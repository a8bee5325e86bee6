"""The sticky-grid p-table and the record and cell keys it reads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import ConfigError, InternalError
from common.privacy import PTable, RecordKeyring, cell_key
from tests.unit.privacy.conftest import TEST_SECRET

ROWS = range(5, 400)


@pytest.mark.parametrize("max_noise", [1, 2, 5, 9])
def test_every_row_is_zero_mean_bounded_and_never_small(max_noise: int) -> None:
    """Every row averages to zero, moves a count by at most D, and never releases 1..k-1 or a negative."""
    table = PTable(max_noise=max_noise, min_cell=5)
    for value in ROWS:
        released = [table.released_for_phase(value, phase) for phase in range(table.period)]
        assert sum(released) == value * table.period
        assert all(abs(r - value) <= max_noise for r in released)
        assert all(r >= 5 for r in released)


def test_interior_rows_are_uniform_with_the_stated_variance() -> None:
    """From k + D on, a row is uniform on n-D..n+D, so its variance is D(D+1)/3."""
    table = PTable(max_noise=5, min_cell=5)
    for value in range(10, 200):
        row = table.row(value)
        assert sorted(row) == list(range(-5, 6))
        variance = sum(noise * noise * p for noise, p in row.items())
        assert variance == pytest.approx(table.variance)
    assert table.variance == pytest.approx(10.0)


def test_a_cell_of_exactly_k_is_released_as_k() -> None:
    """Zero-mean noise that never goes below k leaves a cell of k records at k."""
    assert PTable(max_noise=5, min_cell=5).row(5) == {0: 1.0}


@pytest.mark.parametrize("max_noise", [2, 5])
def test_one_more_record_with_the_same_key_changes_the_answer_in_one_phase_of_2d_plus_1(max_noise: int) -> None:
    """Between n-1 and n records under one cell key, exactly 1 phase class in J = 2D+1 changes the value."""
    table = PTable(max_noise=max_noise, min_cell=5)
    for value in range(5 + 2 * max_noise + 1, 300):
        changed = sum(
            table.released_for_phase(value, phase) != table.released_for_phase(value - 1, phase)
            for phase in range(table.period)
        )
        assert changed == 1


def test_empty_cells_stay_zero_and_small_cells_are_not_perturbed() -> None:
    """Zero is released as zero; asking the p-table for a cell below k is a bug and raises."""
    table = PTable(max_noise=5, min_cell=5)
    assert table.release(0, None) == 0
    with pytest.raises(InternalError):
        table.release(3, 123)


@pytest.mark.parametrize(("max_noise", "min_cell"), [(0, 5), (5, 0), (1001, 5)])
def test_p_table_parameters_are_validated(max_noise: int, min_cell: int) -> None:
    """A p-table without noise or with a minimum cell size below 1 is a configuration error."""
    with pytest.raises(ConfigError):
        PTable(max_noise=max_noise, min_cell=min_cell)


def test_phase_classes_are_equally_likely_for_uniform_keys() -> None:
    """The phase of a key splits [0, 2**64) into J intervals of equal width (to one key)."""
    table = PTable(max_noise=5, min_cell=5)
    edges = [next(k for k in range(p * (1 << 64) // 11, (1 << 64)) if table.phase(k) == p) for p in range(11)]
    widths = [b - a for a, b in zip(edges, [*edges[1:], 1 << 64], strict=True)]
    assert max(widths) - min(widths) <= 1


def test_record_keys_depend_on_the_secret_and_the_identity_only() -> None:
    """Two keyrings over one secret agree; another secret gives other keys; each identity its own."""
    first, second = RecordKeyring(TEST_SECRET), RecordKeyring(TEST_SECRET)
    other = RecordKeyring(bytes(32))
    assert first.keys("Patient/1") == second.keys("Patient/1")
    assert first.keys("Patient/1") != other.keys("Patient/1")
    assert first.keys("Patient/1") != first.keys("Patient/2")
    assert "secret" in repr(first)
    assert TEST_SECRET.hex() not in repr(first)


def test_a_short_secret_is_refused() -> None:
    """The disclosure secret has at least 32 bytes."""
    with pytest.raises(ConfigError):
        RecordKeyring(b"short")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=60, unique=True), st.randoms())
def test_a_cell_key_depends_on_the_set_of_records_only(numbers: list[int], random: object) -> None:
    """Order and repetition of identities do not change a cell's key."""
    keyring = RecordKeyring(TEST_SECRET)
    identities = [f"Patient/{n}" for n in numbers]
    shuffled = list(identities)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert cell_key(keyring, identities) == cell_key(keyring, shuffled + identities[:3])
    assert cell_key(keyring, []) is None
