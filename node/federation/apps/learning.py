"""The built-in ``learning`` app: a node's local work in a federated learning job, on its own data.

Instructions follow Flower's conventions: ``"arrays"`` (the global model) and ``"config"`` with ``task``
(a :class:`~common.models.task.LearningTask` as JSON, parsed strictly here), ``seed`` (the job's seed),
``server-round``, and ``proximal-mu`` from FedProx. Replies carry ``"arrays"`` (``train``) and
``"metrics"``:

* ``train``: ``train_loss`` (mean over the round's minibatches), ``num-examples`` (the node's training
  rows: the weight of its update, as in FLamby);
* ``evaluate`` on the node's local test split: ``eval_loss`` and ``eval_acc`` (binary models; accuracy at
  probability 0.5) or ``eval_cindex`` (Cox: Harrell's C of ``-risk``, as FLamby scores it;
  ``eval_cindex_pairs`` is its number of admissible pairs, and with none it is reported as 0.5), and
  ``num-examples`` (the test rows).

**Data.** On the job's first message the node loads the task's source once (``load_source``), prepares
its train and test rows (:func:`common.models.features.prepare`: columns, one-hot levels, the split,
standardisation) and keeps them in the job's ``context.state`` with the task digest and the data
snapshot id; a later message with another task is refused.

**Local work** is ``local_steps`` minibatch updates per round, drawn from a data iterator that persists
across rounds in the job's ``context.state`` (FLamby's ``DataLoaderWithMemory``): epoch ``e`` visits the
training rows in the order ``randperm`` draws from a generator seeded by ``(seed, node, e)``, in batches of
``batch_size`` (the last one smaller), and a round starts where the previous one stopped. When a round the
node has trained already is asked again (a retried attempt, or a coordinator that restarted mid-round),
the iterator is rewound to where that round started, so the answer is the same. Training uses the
task's optimizer (fresh each round: for SGD without momentum, FLamby's persistent optimizer is the same
thing), FLamby's Cox loss on the minibatch for a Cox model, binary cross-entropy otherwise, plus
FedProx's ``mu/2 * ||w - w_global||^2``. A node that restarts forgets its iterator: its next round
starts at epoch 0 again.

**Refusals** (a task that does not fit this node's data, another task than the job's first, data that
changed) are Flower error replies with code :data:`~common.models.task.LEARNING_ERROR_CODE` and a catalog
code with location-only hints; the detail stays in this node's log.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Final

import torch
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    MetricRecordValues,
    RecordDict,
)
from flwr.clientapp import ClientApp
from torch import nn

from common.analytics.task import encode_refusal
from common.errors import ConflictError, ErrorCode, InputError, MedfedError
from common.flower import assign_message_id, make_reply
from common.models import build_model
from common.models.features import prepare
from common.models.losses import binary_cross_entropy_loss, cox_partial_likelihood_loss
from common.models.metrics import admissible_pairs, binary_accuracy, risk_concordance_index
from common.models.task import LEARNING_ERROR_CODE, TASK_KEY, LearningTask, parse_learning_task
from node.federation.sources import SourceLoader

__all__ = ["DATA_KEY", "ITERATOR_KEY", "PIN_KEY", "epoch_seed", "learning_app"]

_log = logging.getLogger(__name__)

ARRAYS_KEY: Final[str] = "arrays"
CONFIG_KEY: Final[str] = "config"
METRICS_KEY: Final[str] = "metrics"
PIN_KEY: Final[str] = "medfed.learning.pin"
"""ConfigRecord in ``context.state``: the job's task digest and data snapshot id."""
DATA_KEY: Final[str] = "medfed.learning.data"
"""ArrayRecord in ``context.state``: the prepared train and test rows."""
ITERATOR_KEY: Final[str] = "medfed.learning.iterator"
"""ConfigRecord in ``context.state``: the data iterator (``epoch``, ``batch``) and where the last round began."""


@dataclass(frozen=True, slots=True)
class _Instruction:
    task: LearningTask
    seed: int
    server_round: int
    proximal_mu: float


@dataclass(frozen=True, slots=True)
class _Data:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def epoch_seed(seed: int, node_id: int, epoch: int) -> int:
    """The seed of one node's minibatch order in one epoch: SHA-256 of the three, as a 63-bit integer."""
    digest = hashlib.sha256(f"medfed/learning/v1:{seed}:{node_id}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def _number(config: ConfigRecord, key: str, default: float | None = None) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(ErrorCode.INVALID_LEARNING_TASK, detail="bad instruction config", hints=[f"config.{key}"])
    return float(value)


def _integer(record: ConfigRecord, key: str) -> int:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConflictError(detail="damaged iterator state", hints=[f"{ITERATOR_KEY}.{key}"])
    return value


def _instruction(message: Message) -> _Instruction:
    config = message.content.config_records.get(CONFIG_KEY)
    task_text = None if config is None else config.get(TASK_KEY)
    if config is None or not isinstance(task_text, str):
        raise InputError(ErrorCode.INVALID_LEARNING_TASK, detail="instruction without a task", hints=["config.task"])
    server_round = _number(config, "server-round")
    seed = _number(config, "seed")
    if server_round != int(server_round) or server_round < 1 or seed != int(seed):
        raise InputError(ErrorCode.INVALID_LEARNING_TASK, detail="bad round or seed", hints=["config.server-round"])
    mu = _number(config, "proximal-mu", 0.0)
    if not 0 <= mu <= 1000:
        raise InputError(ErrorCode.INVALID_LEARNING_TASK, detail="bad proximal mu", hints=["config.proximal-mu"])
    return _Instruction(parse_learning_task(task_text), int(seed), int(server_round), mu)


def _pinned_data(load_source: SourceLoader, task: LearningTask, context: Context) -> _Data:
    """The job's prepared rows: loaded and prepared on the first message, kept in the job's context."""
    pin = context.state.config_records.get(PIN_KEY)
    if pin is not None and pin.get("task") != task.digest():
        raise ConflictError(detail="another task than the job's first", hints=["config.task: changed during the job"])
    if pin is None or DATA_KEY not in context.state.array_records:
        loaded = load_source(task.source)
        if pin is not None and pin.get("snapshot") != loaded.snapshot:
            raise ConflictError(detail="the data changed during the job", hints=["source: changed since round 1"])
        prepared = prepare(loaded.frame, task)
        context.state[DATA_KEY] = ArrayRecord(
            {
                "x_train": Array(prepared.train.x),
                "y_train": Array(prepared.train.y),
                "x_test": Array(prepared.test.x),
                "y_test": Array(prepared.test.y),
            }
        )
        context.state[PIN_KEY] = ConfigRecord({"task": task.digest(), "snapshot": loaded.snapshot})
        _log.info("learning data prepared: %d train, %d test rows", len(prepared.train), len(prepared.test))
    record = context.state.array_records[DATA_KEY]
    x_train, y_train, x_test, y_test = (
        torch.from_numpy(record[key].numpy()) for key in ("x_train", "y_train", "x_test", "y_test")
    )
    return _Data(x_train, y_train, x_test, y_test)


def _model(message: Message, task: LearningTask) -> nn.Module:
    # seed=0: a throw-away initialisation that stays off torch's global RNG; the weights are replaced next.
    model = build_model(task.model, **task.model_params(), seed=0)
    model.load_state_dict(message.content.array_records[ARRAYS_KEY].to_torch_state_dict())
    return model


def _loss(task: LearningTask, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task.survival:
        return cox_partial_likelihood_loss(scores, y[:, 0], y[:, 1])
    return binary_cross_entropy_loss(scores, y)


class _Iterator:
    """The job's minibatch iterator at this node, read from and written back to ``context.state``."""

    def __init__(self, context: Context, *, seed: int, n_rows: int, batch_size: int, server_round: int) -> None:
        self._context = context
        self._seed = seed
        self._n = n_rows
        self._batch_size = batch_size
        state = context.state.config_records.get(ITERATOR_KEY)
        epoch, batch = (0, 0) if state is None else (_integer(state, "epoch"), _integer(state, "batch"))
        if state is not None and _integer(state, "round") == server_round:  # asked again: rewind
            epoch, batch = _integer(state, "start_epoch"), _integer(state, "start_batch")
        self.server_round = server_round
        self.start = (epoch, batch)
        self.epoch, self.batch = epoch, batch
        self._order: torch.Tensor | None = None

    def next_batch(self) -> torch.Tensor:
        """The row indices of the next minibatch (a new epoch, in a new order, after the last one)."""
        if self.batch * self._batch_size >= self._n:
            self.epoch, self.batch, self._order = self.epoch + 1, 0, None
        if self._order is None:
            generator = torch.Generator().manual_seed(epoch_seed(self._seed, self._context.node_id, self.epoch))
            self._order = torch.randperm(self._n, generator=generator)
        start = self.batch * self._batch_size
        self.batch += 1
        return self._order[start : start + self._batch_size]

    def save(self) -> None:
        """Write the position, and where this round began, back to the job's context."""
        self._context.state[ITERATOR_KEY] = ConfigRecord(
            {
                "epoch": self.epoch,
                "batch": self.batch,
                "round": self.server_round,
                "start_epoch": self.start[0],
                "start_batch": self.start[1],
            }
        )


def _optimizer(task: LearningTask, model: nn.Module) -> torch.optim.Optimizer:
    if task.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=task.lr)
    return torch.optim.SGD(model.parameters(), lr=task.lr, momentum=task.momentum)


def _train(model: nn.Module, data: _Data, order: _Iterator, instruction: _Instruction) -> float:
    """``local_steps`` minibatch updates; the mean minibatch loss (without the proximal term)."""
    task = instruction.task
    optimizer = _optimizer(task, model)
    anchor = [p.detach().clone() for p in model.parameters()] if instruction.proximal_mu > 0 else []
    model.train()
    total = 0.0
    for _ in range(task.local_steps):
        rows = order.next_batch()
        optimizer.zero_grad()
        loss = _loss(task, model(data.x_train[rows]), data.y_train[rows])
        total += float(loss.item())
        if anchor:
            distance = sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor, strict=True))
            loss = loss + instruction.proximal_mu / 2 * distance
        torch.autograd.backward(loss)
        optimizer.step()
    return total / task.local_steps


def _evaluate(model: nn.Module, data: _Data, task: LearningTask) -> dict[str, MetricRecordValues]:
    model.eval()
    with torch.no_grad():
        scores = model(data.x_test).reshape(-1)
        loss = float(_loss(task, scores, data.y_test).item())
    metrics: dict[str, MetricRecordValues] = {"eval_loss": loss, "num-examples": int(data.x_test.shape[0])}
    if not task.survival:
        metrics["eval_acc"] = binary_accuracy(scores.numpy(), data.y_test.numpy())
        return metrics
    times, events = data.y_test[:, 1].numpy(), data.y_test[:, 0].numpy()
    pairs = admissible_pairs(times, events)
    metrics["eval_cindex_pairs"] = pairs
    metrics["eval_cindex"] = risk_concordance_index(times, scores.numpy(), events) if pairs else 0.5
    return metrics


def _refusal(message: Message, error: MedfedError) -> Message:
    _log.info("learning task refused: %s", error.code)
    reply = Message(Error(code=LEARNING_ERROR_CODE, reason=encode_refusal(error)), reply_to=message)
    assign_message_id(reply)
    return reply


def learning_app(load_source: SourceLoader) -> ClientApp:
    """A ClientApp with ``train`` and ``evaluate`` of a learning task on ``load_source``'s data."""
    app = ClientApp()

    @app.train()
    def train(message: Message, context: Context) -> Message:
        try:
            instruction = _instruction(message)
            data = _pinned_data(load_source, instruction.task, context)
        except MedfedError as exc:
            return _refusal(message, exc)
        model = _model(message, instruction.task)
        order = _Iterator(
            context,
            seed=instruction.seed,
            n_rows=int(data.x_train.shape[0]),
            batch_size=instruction.task.batch_size,
            server_round=instruction.server_round,
        )
        train_loss = _train(model, data, order, instruction)
        order.save()
        metrics = MetricRecord({"train_loss": train_loss, "num-examples": int(data.x_train.shape[0])})
        content = RecordDict({ARRAYS_KEY: ArrayRecord.from_torch_state_dict(model.state_dict()), METRICS_KEY: metrics})
        return make_reply(message, content)

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        try:
            instruction = _instruction(message)
            data = _pinned_data(load_source, instruction.task, context)
        except MedfedError as exc:
            return _refusal(message, exc)
        metrics = _evaluate(_model(message, instruction.task), data, instruction.task)
        return make_reply(message, RecordDict({METRICS_KEY: MetricRecord(metrics)}))

    return app
