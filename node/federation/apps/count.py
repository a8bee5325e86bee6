"""The built-in ``count`` app: a ``query`` answered with the node's number of patients."""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from common.flower import make_reply

__all__ = ["COUNT_KEY", "METRICS_KEY", "count_app"]

METRICS_KEY = "metrics"
"""The MetricRecord of the reply."""
COUNT_KEY = "count"
"""The patient count inside it."""


def count_app(count_patients: Callable[[], int]) -> ClientApp:
    """A ClientApp whose ``query`` reply is ``{"metrics": {"count": count_patients()}}``."""
    app = ClientApp()

    @app.query()
    def query(message: Message, context: Context) -> Message:
        count = int(count_patients())
        if count < 0:
            raise ValueError("a patient count cannot be negative")
        return make_reply(message, RecordDict({METRICS_KEY: MetricRecord({COUNT_KEY: count})}))

    return app
