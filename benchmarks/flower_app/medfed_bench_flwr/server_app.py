"""ServerApp: Flower's FedAvg over the same MLP, configs and rounds as medfed's ``run_fedavg``.

Records when each ``send_and_receive`` starts (train and evaluate per round) and when the job ends, and
writes them as JSON to the absolute ``timings-file`` from the run config (the ServerApp's cwd is the
SuperLink's, so relative paths would land elsewhere).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from common.flower import Run
from common.models import build_model

app = ServerApp()


class TimedGrid(Grid):
    """Delegates to Flower's Grid; notes the start of each send-and-receive."""

    def __init__(self, inner: Grid) -> None:
        self._inner = inner
        self.calls: list[tuple[float, str]] = []

    def set_run(self, run: Run) -> None:
        self._inner.set_run(run)

    @property
    def run(self) -> Run:
        return self._inner.run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        return self._inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self._inner.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._inner.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        batch = list(messages)
        self.calls.append((time.time(), batch[0].metadata.message_type if batch else ""))
        return self._inner.send_and_receive(batch, timeout=timeout)


@app.main()
def main(grid: Grid, context: Context) -> None:
    rounds = int(context.run_config["num-server-rounds"])
    seed = int(context.run_config["seed"])
    config = ConfigRecord({"seed": seed, "hidden": [64, 64], "local-epochs": 1, "lr": 0.05, "batch-size": 32})
    model = build_model("mlp", in_features=30, hidden=(64, 64), seed=seed)
    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_train_nodes=3,
        min_evaluate_nodes=3,
        min_available_nodes=3,
    )
    timed = TimedGrid(grid)
    started = time.time()
    strategy.start(
        grid=timed,
        initial_arrays=ArrayRecord(model.state_dict()),
        num_rounds=rounds,
        timeout=600,
        train_config=config,
        evaluate_config=ConfigRecord(dict(config)),
    )
    out = str(context.run_config["timings-file"])
    if out:
        Path(out).write_text(json.dumps({"started": started, "ended": time.time(), "calls": timed.calls}))
