"""The coordinator side of the built-in ``fedavg_mlp`` job: Flower's own ``FedAvg`` on the medfed Grid.

The strategy runs unchanged (``FedAvg(...).start(grid=...)``); medfed adds only the initial model (the
registry's MLP, weights from ``seed``) and the train/evaluate configs the node app reads. With the same
seed, nodes and data the final arrays are bit-identical: the Grid returns replies in node-id order, and
each node's local training is seeded from ``(seed, node id, round)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from flwr.app import ArrayRecord, ConfigRecord, ConfigRecordValues
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Result

from common.models import build_model
from coordinator.federation.grid import IncompleteResultError

__all__ = ["MODEL_NAME", "run_fedavg", "start_fedavg", "train_config"]

MODEL_NAME = "mlp"


def train_config(
    *, seed: int, hidden: Sequence[int], local_epochs: int, lr: float, batch_size: int
) -> dict[str, ConfigRecordValues]:
    """The ConfigRecord entries the node's ``fedavg_mlp`` app reads (one spelling for every caller)."""
    return {
        "seed": seed,
        "hidden": [int(width) for width in hidden],
        "local-epochs": local_epochs,
        "lr": lr,
        "batch-size": batch_size,
    }


def start_fedavg(
    grid: Grid,
    *,
    rounds: int,
    seed: int,
    in_features: int = 30,
    hidden: Sequence[int] = (64, 64),
    local_epochs: int = 1,
    lr: float = 0.05,
    batch_size: int = 32,
    min_nodes: int = 1,
    timeout: float = 600.0,
) -> Result:
    """Run FedAvg over every eligible node for ``rounds`` rounds; Flower's full ``Result`` (arrays, metrics)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    model = build_model(MODEL_NAME, in_features=in_features, hidden=tuple(hidden), seed=seed)
    config = train_config(seed=seed, hidden=hidden, local_epochs=local_epochs, lr=lr, batch_size=batch_size)
    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_train_nodes=min_nodes,
        min_evaluate_nodes=min_nodes,
        min_available_nodes=min_nodes,
    )
    return strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(model.state_dict()),
        num_rounds=rounds,
        timeout=timeout,
        train_config=ConfigRecord(dict(config)),
        evaluate_config=ConfigRecord(dict(config)),
    )


def run_fedavg(
    grid: Grid,
    *,
    rounds: int,
    seed: int,
    in_features: int = 30,
    hidden: Sequence[int] = (64, 64),
    local_epochs: int = 1,
    lr: float = 0.05,
    batch_size: int = 32,
    min_nodes: int = 1,
    timeout: float = 600.0,
) -> ArrayRecord:
    """The final global model of :func:`start_fedavg`; :class:`IncompleteResultError` when no round trained."""
    result = start_fedavg(
        grid,
        rounds=rounds,
        seed=seed,
        in_features=in_features,
        hidden=hidden,
        local_epochs=local_epochs,
        lr=lr,
        batch_size=batch_size,
        min_nodes=min_nodes,
        timeout=timeout,
    )
    if not result.arrays:
        raise IncompleteResultError(detail="no training round produced a model")
    return result.arrays
