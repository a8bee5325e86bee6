"""The coordinator side of the built-in ``count`` job: one ``query`` to every node, counts summed."""

from __future__ import annotations

from collections.abc import Sequence

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from coordinator.federation.grid import IncompleteResultError

__all__ = ["count_by_node", "run_count"]

_METRICS_KEY = "metrics"
_COUNT_KEY = "count"


def count_by_node(grid: Grid, timeout: float, node_ids: Sequence[int] | None = None) -> dict[int, int | None]:
    """Each node's patient count (None: no valid answer in time), for ``node_ids`` or every eligible node.

    The queries name no round (a count is one exchange; the runner shows it as round 1 of its job).
    """
    targets = sorted(grid.get_node_ids() if node_ids is None else node_ids)
    if not targets:
        raise IncompleteResultError(detail="no eligible nodes")
    messages = [Message(RecordDict({"config": ConfigRecord()}), node_id, MessageType.QUERY) for node_id in targets]
    counts: dict[int, int | None] = dict.fromkeys(targets)
    for reply in grid.send_and_receive(messages, timeout=timeout):
        metrics = None if reply.has_error() else reply.content.metric_records.get(_METRICS_KEY)
        value = None if metrics is None else metrics.get(_COUNT_KEY)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            counts[reply.metadata.src_node_id] = value
    return counts


def run_count(grid: Grid, timeout: float) -> int:
    """The number of patients across all eligible nodes; raise :class:`IncompleteResultError` unless all answer."""
    counts = count_by_node(grid, timeout)
    answered = [value for value in counts.values() if value is not None]
    if len(answered) != len(counts):
        raise IncompleteResultError(detail=f"{len(answered)} of {len(counts)} nodes answered with a count")
    return sum(answered)
