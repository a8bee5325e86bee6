"""The built-in ``fedavg_mlp`` app: local training and evaluation of the registry's MLP on tabular features.

Messages follow Flower's ``FedAvg`` conventions: the instruction carries ``"arrays"`` (the global model)
and ``"config"`` (``server-round``, plus medfed's ``seed``, ``hidden``, ``local-epochs``, ``lr``,
``batch-size``); a ``train`` reply carries the updated ``"arrays"`` and ``"metrics"``
(``train_loss``, ``num-examples``), an ``evaluate`` reply ``"metrics"`` (``eval_loss``, ``eval_acc``,
``num-examples``) on the node's local test split (the last fifth of its rows).

Determinism: the rows come from ``load_features(seed)`` and the mini-batch order from a private
``torch.Generator`` seeded with :func:`local_seed` of ``(seed, node id, round)``. A private generator
rather than ``torch.manual_seed``: the global RNG is shared by every thread, and two jobs train side by
side. Same seed, same node, same round, same global model: bit-identical update.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from numpy.typing import NDArray
from torch import nn

from common.flower import make_reply
from common.models import build_model

__all__ = [
    "ARRAYS_KEY",
    "CONFIG_KEY",
    "METRICS_KEY",
    "MODEL_NAME",
    "FeatureLoader",
    "fedavg_mlp_app",
    "local_seed",
    "warm_up",
]

ARRAYS_KEY: Final[str] = "arrays"
CONFIG_KEY: Final[str] = "config"
METRICS_KEY: Final[str] = "metrics"
MODEL_NAME: Final[str] = "mlp"
_DATA_KEY: Final[str] = "medfed.fedavg_mlp.data"
_TEST_FRACTION: Final[float] = 0.2

FeatureLoader = Callable[[int], tuple[NDArray[np.float32], NDArray[np.float32]]]
"""``load_features(seed) -> (X, y)``: the node's rows (float32 features, 0/1 float32 target)."""


@dataclass(frozen=True, slots=True)
class _Settings:
    seed: int
    server_round: int
    hidden: tuple[int, ...]
    local_epochs: int
    lr: float
    batch_size: int


def local_seed(seed: int, node_id: int, server_round: int) -> int:
    """The seed of one node's local training in one round: SHA-256 of the three, as a 63-bit integer."""
    digest = hashlib.sha256(f"medfed/fedavg_mlp/v1:{seed}:{node_id}:{server_round}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def warm_up() -> None:
    """Pay torch's one-off lazy initialisation (the first optimizer step imports ~1.6 s of modules) now."""
    model = build_model(MODEL_NAME, in_features=2, hidden=(2,), seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.binary_cross_entropy_with_logits(model(torch.zeros(2, 2)).squeeze(1), torch.zeros(2))
    torch.autograd.backward(loss)
    optimizer.step()


def _int(config: ConfigRecord, key: str, default: int | None = None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"config {key!r} must be an integer")
    return value


def _float(config: ConfigRecord, key: str, default: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"config {key!r} must be a number")
    return float(value)


def _settings(message: Message) -> _Settings:
    config = message.content.config_records[CONFIG_KEY]
    hidden = config.get("hidden", [64, 64])
    if not isinstance(hidden, list) or not all(isinstance(w, int) and not isinstance(w, bool) for w in hidden):
        raise ValueError("config 'hidden' must be a list of integers")
    settings = _Settings(
        seed=_int(config, "seed"),
        server_round=_int(config, "server-round"),
        hidden=tuple(int(w) for w in hidden),
        local_epochs=_int(config, "local-epochs", 1),
        lr=_float(config, "lr", 0.05),
        batch_size=_int(config, "batch-size", 32),
    )
    if settings.local_epochs < 1 or settings.batch_size < 1 or not settings.lr > 0:
        raise ValueError("local-epochs, batch-size and lr must be positive")
    return settings


def _local_data(load_features: FeatureLoader, seed: int, context: Context) -> Sequence[torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)``, loaded once per job and kept in the job's context state."""
    if _DATA_KEY not in context.state.array_records:
        x, y = load_features(seed)
        if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] < 2:
            raise ValueError("load_features must return X of shape (n, f) and y of shape (n,), n >= 2")
        n_test = max(1, round(x.shape[0] * _TEST_FRACTION))
        cut = x.shape[0] - n_test
        context.state[_DATA_KEY] = ArrayRecord(
            {
                "x_train": Array(np.ascontiguousarray(x[:cut], dtype=np.float32)),
                "y_train": Array(np.ascontiguousarray(y[:cut], dtype=np.float32)),
                "x_test": Array(np.ascontiguousarray(x[cut:], dtype=np.float32)),
                "y_test": Array(np.ascontiguousarray(y[cut:], dtype=np.float32)),
            }
        )
    record = context.state.array_records[_DATA_KEY]
    return tuple(torch.from_numpy(record[key].numpy()) for key in ("x_train", "y_train", "x_test", "y_test"))


def _model(message: Message, settings: _Settings, in_features: int) -> nn.Module:
    # seed=0: a throw-away initialisation that stays off torch's global RNG; the weights are replaced next.
    model = build_model(MODEL_NAME, in_features=in_features, hidden=settings.hidden, seed=0)
    model.load_state_dict(message.content.array_records[ARRAYS_KEY].to_torch_state_dict())
    return model


def _train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: _Settings, generator: torch.Generator
) -> float:
    """Mini-batch SGD; the mean training loss over all batches seen."""
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr)
    model.train()
    total, seen = 0.0, 0
    for _ in range(settings.local_epochs):
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, x.shape[0], settings.batch_size):
            batch = order[start : start + settings.batch_size]
            optimizer.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(model(x[batch]).squeeze(1), y[batch])
            torch.autograd.backward(loss)
            optimizer.step()
            total += float(loss.item()) * len(batch)
            seen += len(batch)
    return total / seen


def fedavg_mlp_app(load_features: FeatureLoader) -> ClientApp:
    """A ClientApp with ``train`` and ``evaluate`` for the registry's MLP over ``load_features``' rows."""
    app = ClientApp()

    @app.train()
    def train(message: Message, context: Context) -> Message:
        settings = _settings(message)
        x_train, y_train, _, _ = _local_data(load_features, settings.seed, context)
        model = _model(message, settings, x_train.shape[1])
        generator = torch.Generator().manual_seed(local_seed(settings.seed, context.node_id, settings.server_round))
        train_loss = _train(model, x_train, y_train, settings, generator)
        content = RecordDict(
            {
                ARRAYS_KEY: ArrayRecord.from_torch_state_dict(model.state_dict()),
                METRICS_KEY: MetricRecord({"train_loss": train_loss, "num-examples": int(x_train.shape[0])}),
            }
        )
        return make_reply(message, content)

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        settings = _settings(message)
        _, _, x_test, y_test = _local_data(load_features, settings.seed, context)
        model = _model(message, settings, x_test.shape[1])
        model.eval()
        with torch.no_grad():
            logits = model(x_test).squeeze(1)
            loss = float(nn.functional.binary_cross_entropy_with_logits(logits, y_test).item())
            accuracy = float(((logits > 0).float() == y_test).float().mean().item())
        metrics = MetricRecord({"eval_loss": loss, "eval_acc": accuracy, "num-examples": int(x_test.shape[0])})
        return make_reply(message, RecordDict({METRICS_KEY: metrics}))

    return app
