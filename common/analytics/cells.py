"""Counts as nodes release them: a plain integer, or a released cell that may be suppressed.

With disclosure control off a node's partial holds plain integers and the merges add them, so the result
equals the pooled count. With it on, a node sends each count as a :class:`ReleasedCell`
``{"value": v, "suppressed": false}`` (``v`` perturbed by the node's cell key) or ``{"value": null,
"suppressed": true}`` (withheld). The merges add counts with :func:`add_counts`, whose rule is the one
that keeps suppression meaningful after pooling:

* a cell suppressed at **any** node is suppressed in the total — never read as 0 (a total over some
  hospitals is a different number, and adding the other nodes' values would let anyone who knows
  them subtract back to the hidden one);
* a cell released by every node is the sum of the released values (each node's noise included);
* plain integers stay plain integers, so results without disclosure control are unchanged.

A suppression pattern that protects each node's own table (every withheld cell on a cycle of withheld
cells, :mod:`common.privacy.suppression`) protects the pooled table too: the pooled unknowns are the
union of the nodes' unknowns, and a cycle in one node's pattern is still a cycle in the union.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import NonNegativeInt, model_validator

from common.analytics.params import AnalysisModel

__all__ = ["Count", "ReleasedCell", "add_counts", "count_value", "is_suppressed", "sum_counts", "sum_optional"]


class ReleasedCell(AnalysisModel):
    """A count released under disclosure control: ``value`` is None exactly when ``suppressed``."""

    value: NonNegativeInt | None
    suppressed: bool

    @model_validator(mode="after")
    def _value_iff_released(self) -> ReleasedCell:
        if (self.value is None) != self.suppressed:
            raise ValueError("a suppressed cell has no value and a released one has one")
        return self


Count = NonNegativeInt | ReleasedCell
"""A count in a partial or result: a plain integer (no disclosure control) or a released cell."""

SUPPRESSED = ReleasedCell(value=None, suppressed=True)


def is_suppressed(count: Count) -> bool:
    """Whether the count was withheld."""
    return isinstance(count, ReleasedCell) and count.suppressed


def count_value(count: Count) -> int | None:
    """The count's value (None when suppressed)."""
    return count.value if isinstance(count, ReleasedCell) else int(count)


def add_counts(a: Count, b: Count) -> Count:
    """``a + b`` under the rule of the module docstring (suppressed wins; released cells stay cells)."""
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if is_suppressed(a) or is_suppressed(b):
        return SUPPRESSED
    left, right = count_value(a), count_value(b)
    if left is None or right is None:  # pragma: no cover - excluded by is_suppressed above
        return SUPPRESSED
    return ReleasedCell(value=left + right, suppressed=False)


def sum_counts(counts: Iterable[Count]) -> Count:
    """The sum of counts (0 for none)."""
    total: Count = 0
    for count in counts:
        total = add_counts(total, count)
    return total


def sum_optional(counts: Sequence[Count | None]) -> Count | None:
    """The sum of a margin every node may or may not have sent: None as soon as one node did not."""
    if not counts or any(count is None for count in counts):
        return None
    return sum_counts(count for count in counts if count is not None)
