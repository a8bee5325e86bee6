"""The coordinator side of the built-in ``count`` job: one ``query`` to every node, counts summed."""

from __future__ import annotations

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from coordinator.federation.grid import IncompleteResultError

__all__ = ["run_count"]

_METRICS_KEY = "metrics"
_COUNT_KEY = "count"


def run_count(grid: Grid, timeout: float) -> int:
    """The number of patients across all eligible nodes; raise :class:`IncompleteResultError` unless all answer."""
    node_ids = list(grid.get_node_ids())
    if not node_ids:
        raise IncompleteResultError(detail="no eligible nodes")
    messages = [Message(RecordDict({"config": ConfigRecord()}), node_id, MessageType.QUERY) for node_id in node_ids]
    replies = list(grid.send_and_receive(messages, timeout=timeout))
    counts: list[int] = []
    for reply in replies:
        metrics = None if reply.has_error() else reply.content.metric_records.get(_METRICS_KEY)
        value = None if metrics is None else metrics.get(_COUNT_KEY)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            counts.append(value)
    if len(counts) != len(node_ids):
        raise IncompleteResultError(detail=f"{len(counts)} of {len(node_ids)} nodes answered with a count")
    return sum(counts)
