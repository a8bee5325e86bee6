"""ServerApp: Flower's FedAvg over a medfed learning job's spec (task, model, initial weights, config).

The spec is read from the absolute ``spec-file`` of the run config; the instructions carry what medfed's
driver sends (``task`` and ``seed``; FedAvg adds ``server-round``). Every node trains and evaluates every
round (``min_*_nodes`` = ``quorum``). The end of each round is noted through ``evaluate_fn`` (Flower calls
it before round 1 and after each round) and written as JSON to the absolute ``timings-file`` (the
ServerApp's cwd is the SuperLink's).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from coordinator.federation.jobs.learning import LearningSpec, initial_arrays, learning_config

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the job's FedAvg rounds and write the round timings."""
    rounds = int(context.run_config["num-server-rounds"])
    seed = int(context.run_config["seed"])
    spec = LearningSpec.model_validate_json(Path(str(context.run_config["spec-file"])).read_text(encoding="utf-8"))
    marks: list[tuple[int, float]] = []

    def mark(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        marks.append((server_round, time.time()))
        return None

    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_train_nodes=spec.quorum,
        min_evaluate_nodes=spec.quorum,
        min_available_nodes=spec.quorum,
    )
    started = time.time()
    config = learning_config(spec, seed)
    strategy.start(
        grid=grid,
        initial_arrays=initial_arrays(spec, seed),
        num_rounds=rounds,
        timeout=600,
        train_config=ConfigRecord(dict(config)),
        evaluate_config=ConfigRecord(dict(config)),
        evaluate_fn=mark,
    )
    out = str(context.run_config["timings-file"])
    if out:
        Path(out).write_text(json.dumps({"started": started, "ended": time.time(), "marks": marks}), encoding="utf-8")
