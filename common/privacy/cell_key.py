"""Cell-key perturbation of counts: the same records always get the same noise, whatever the query.

The statistical-office method (ABS TableBuilder, Destatis/ONS census tables): every record carries a
persistent secret key (:mod:`common.privacy.record_keys`), a cell's key is derived from the keys of the
records in it, and a *p-table* maps (cell value, cell key) to an integer perturbation. A cell reached
by any query — a count, a histogram bin, a crosstab cell, its rows filtered or ordered any way — holds
the same records, so it gets the same key and the same released value. Asking again, or in another
shape, gives nothing to average.

**Cell key.** The phase key of the cell's record with the smallest order key (a min-hash). It is
exactly uniform for every non-empty cell, and adding or removing one record changes it only when that
record is the cell's minimum (probability ``1/(n+1)``). The textbook cell key — the sum of uniform
record keys mod 1 — changes *completely* with every record, so the two cells of a differencing pair
(a cohort with and without one patient) get independent noise; with any zero-mean p-table that tells
an attacker the patient's value most of the time (measured for an ABS-like table with D = 2: 84-89%),
because a pair whose sets are identical always shows a difference of exactly 0, and a pair that differs
by the patient rarely does. Here the two cells of such a pair usually share their key.

**P-table ("sticky grid").** With the maximum noise ``D`` and period ``J = 2D + 1``, the cell key picks
one of ``J`` equally likely phase classes ``c``; a cell of value ``n`` is released as the one value
``v`` in ``[n - D, n + D]`` with ``v ≡ c - D (mod J)``. As a cell grows by one record with its key
unchanged, ``v`` stays put until ``n`` passes it by ``D``, then jumps by ``J``. So:

- each row is uniform on ``n - D .. n + D``: zero-mean, variance ``D(D+1)/3``, ``|noise| <= D``;
- a differencing pair (``n`` and ``n - 1`` records, same key) shows a difference with probability
  exactly ``1/J``, and an attacker who reads "the answers differ" as "the patient has the value" is
  right ``1/2 + 1/(2J)`` of the time on balanced targets (0.545 for the default ``D = 5``), plus
  ``~1/(2(n+1))`` when the patient happens to be the cell's minimum;
- no zero-mean perturbation with maximum noise ``D`` that gives identical sets identical answers can
  do better than ``1/2 + 1/(2(2D+1))``: the expected jump between ``n - 1`` and ``n`` is 1 and a jump is
  at most ``2D + 1``.

*Small values.* A cell of ``1 .. k-1`` records is suppressed before the p-table is consulted (see
:mod:`common.privacy.suppression`), and a released value is never in ``1 .. k-1`` nor negative: in the
rows ``k <= n < k + D`` a phase whose value would fall below ``k`` — and the phase whose value mirrors
it about ``n`` — release ``n`` itself, which keeps every row exactly zero-mean. (So a cell of exactly
``k`` is always released as ``k``: a zero-mean noise that never goes below ``k`` has no other choice.)
Zero is released as zero: an empty cell has no records and no key.

*Limits, stated plainly.* Perturbation with bounded noise is not differential privacy. A cohort whose
noise sits at ``+D`` (probability ``1/J``) changes its answer whenever any member is removed, so an
attacker who can find such a cohort (by probing with patients whose values they already know) can then
test every other member of it. Margins and cells are perturbed independently, so released tables are
not additive. Where those risks matter, the node's policy adds differential privacy charged to its
epsilon ledger (:mod:`common.privacy.dp`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from common.errors import ConfigError, InternalError
from common.privacy.record_keys import KEY_BITS, RecordKeyring

__all__ = ["PTABLE_NAME", "PTable", "cell_key"]

#: Name and version of the p-table construction; it travels in every release's metadata.
PTABLE_NAME = "sticky-grid-v1"
#: Name and version of the cell-key derivation.
CELL_KEY_NAME = "minhash-hmac-sha256-v1"


def cell_key(keyring: RecordKeyring, identities: Iterable[str]) -> int | None:
    """The key of the cell holding ``identities`` (a uniform 64-bit integer), or None for an empty cell."""
    smallest = keyring.min_record_keys(identities)
    return None if smallest is None else smallest[1]


@dataclass(frozen=True, slots=True)
class PTable:
    """The sticky-grid p-table for maximum noise ``max_noise`` (D) and minimum cell size ``min_cell`` (k)."""

    max_noise: int
    min_cell: int

    def __post_init__(self) -> None:
        if type(self.max_noise) is not int or not 1 <= self.max_noise <= 1000:
            raise ConfigError(detail="the cell-key maximum noise must be an integer in 1..1000")
        if type(self.min_cell) is not int or not 1 <= self.min_cell <= 1000:
            raise ConfigError(detail="the minimum cell size must be an integer in 1..1000")

    @property
    def period(self) -> int:
        """``J = 2D + 1``: the number of phase classes and the size of every jump."""
        return 2 * self.max_noise + 1

    @property
    def variance(self) -> float:
        """The noise variance of every row from ``k + D`` on: ``D(D+1)/3`` (smaller in the rows below)."""
        return self.max_noise * (self.max_noise + 1) / 3

    def phase(self, key: int) -> int:
        """The phase class ``0 .. J-1`` of a cell key (the key's top bits, scaled exactly)."""
        if not 0 <= key < 1 << KEY_BITS:
            raise InternalError(detail="a cell key is a 64-bit unsigned integer")
        return (key * self.period) >> KEY_BITS

    def released_for_phase(self, value: int, phase: int) -> int:
        """The value released for a cell of ``value`` records in phase class ``phase``."""
        if value == 0:
            return 0
        if value < self.min_cell:
            raise InternalError(detail="a cell below the minimum size must be suppressed, not perturbed")
        d = self.max_noise
        candidate = value + (phase - value) % self.period - d
        if candidate < self.min_cell or candidate > 2 * value - self.min_cell:
            return value
        return candidate

    def release(self, value: int, key: int | None) -> int:
        """The perturbed count of a cell of ``value`` records whose key is ``key`` (None only for 0)."""
        if value == 0:
            return 0
        if key is None:
            raise InternalError(detail="a non-empty cell has a key")
        return self.released_for_phase(value, self.phase(key))

    def row(self, value: int) -> dict[int, float]:
        """The distribution of the perturbation for a cell of ``value`` records: ``{noise: probability}``."""
        counts: dict[int, int] = {}
        for phase in range(self.period):
            noise = self.released_for_phase(value, phase) - value
            counts[noise] = counts.get(noise, 0) + 1
        return {noise: count / self.period for noise, count in sorted(counts.items())}

    def parameters(self) -> dict[str, Any]:
        """What a result's metadata says about the perturbation."""
        return {
            "p_table": PTABLE_NAME,
            "cell_key": CELL_KEY_NAME,
            "max_noise": self.max_noise,
            "variance": self.variance,
            "zero_mean": True,
            "min_released_value": self.min_cell,
        }
