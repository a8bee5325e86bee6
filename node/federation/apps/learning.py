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

**DP-SGD** (``privacy.dp_sgd`` in the task, :mod:`common.models.dp_sgd`): local work is ``local_steps``
Poisson minibatches (rate ``q = batch_size / n``) with per-example clipping and Gaussian noise, drawn
from a generator seeded by a random secret the node makes for the job (kept in ``context.state``) and
the round's digest, never from the job's public seed. Before it trains, the node computes with its RDP
accountant (:mod:`common.privacy.rdp`) the job's epsilon after this round and reserves the increase
in its ledger (``ledger``: researcher x study, node-wide cap), keyed by a digest of the job, the task,
the data snapshot, the round, the global model it was sent and its secret: a round asked again with
the same inputs (a retried attempt, a resumed coordinator) gives the identical answer and costs nothing,
while any other input is charged anew. The job's epsilon is also capped by the task's
``epsilon_budget``. A round that would overspend is refused with ``privacy_budget_exceeded`` before it
touches the data. The researcher is the config's ``researcher`` (the job's submitter, written by the
coordinator); without it, or without a ledger, DP-SGD is refused. Replies then carry ``dp_epsilon`` and
``dp_delta`` (this node's total for the job so far) and no training loss (it is not private).
A node that restarts forgets its step count and charges its next round as if it were the first
(more than the marginal cost: safe).

**Secure aggregation** (``privacy.secure_aggregation``, :mod:`common.privacy.secure_updates`): an
``evaluate`` instruction with ``secagg-publish`` makes a fresh X25519 round key (the node keeps its last
four) and answers its public half; a ``train`` instruction names the participants, their public keys
and a nonce; the node trains, clips and quantises its update, and answers the masked vector instead
of its model (no ``num-examples``: the weight is inside the vector). It never masks twice under one
nonce and never answers such a task with a plain model. With ``secagg-setup`` (the job's first round,
before any key is known) it answers without training.

**Refusals** (a task that does not fit this node's data, another task than the job's first, data that
changed, a budget that would be overspent, a secure round it cannot take part in) are Flower error
replies with code :data:`~common.models.task.LEARNING_ERROR_CODE` and a catalog code with location-only
hints; the detail stays in this node's log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Final, Protocol

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
from common.crypto import SealingKey, SealPublicKey, canonical_json
from common.errors import ConflictError, ErrorCode, InputError, MedfedError
from common.flower import assign_message_id, make_reply
from common.models import build_model
from common.models.dp_sgd import private_steps
from common.models.features import prepare
from common.models.losses import binary_cross_entropy_loss, cox_partial_likelihood_loss
from common.models.metrics import admissible_pairs, binary_accuracy, risk_concordance_index
from common.models.task import LEARNING_ERROR_CODE, RESEARCHER_KEY, TASK_KEY, LearningTask, parse_learning_task
from common.privacy.rdp import dp_sgd_epsilon
from common.privacy.secure_sum import SecureSumParticipant
from common.privacy.secure_updates import (
    PUBLIC_KEY,
    SECAGG_KEYS,
    SECAGG_NODES,
    SECAGG_NONCE,
    SECAGG_PUBLISH,
    SECAGG_RECORD,
    SECAGG_SETUP,
    encode_update,
    participant_name,
    update_round,
)
from node.config import training_threads
from node.federation.sources import SourceLoader

__all__ = [
    "DATA_KEY",
    "DP_KEY",
    "ITERATOR_KEY",
    "PIN_KEY",
    "SECURE_KEY",
    "EpsilonLedger",
    "epoch_seed",
    "learning_app",
]

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
DP_KEY: Final[str] = "medfed.learning.dp"
"""ConfigRecord in ``context.state``: the job's DP secret and the DP-SGD steps charged so far."""
SECURE_KEY: Final[str] = "medfed.learning.secure"
"""ConfigRecord in ``context.state``: the node's recent round keys (PEM) and the nonces it has masked for."""
_KEPT_KEYS = 4


class Charge(Protocol):
    """A ledger reservation as this app reads it."""

    @property
    def charged(self) -> bool:
        """False when the same query was charged before (a repeat costs nothing)."""
        ...


class EpsilonLedger(Protocol):
    """The node's epsilon ledger (:class:`node.privacy.ledger.PrivacyLedger`) as DP-SGD charges it."""

    def reserve(
        self, *, researcher: str, study: str, query_digest: str, epsilon: float, delta: float, job_id: str | None = None
    ) -> Charge:
        """Charge before answering; PrivacyBudgetExceededError when an account or the node cap would pass."""
        ...


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


# --- DP-SGD: the job's secret, the ledger charge, the private local work -----------------------------


@dataclass(frozen=True, slots=True)
class _DpRound:
    generator: torch.Generator
    epsilon: float
    delta: float


def _arrays_digest(message: Message) -> str:
    digest = hashlib.sha256()
    for name, array in message.content.array_records[ARRAYS_KEY].items():
        digest.update(name.encode() + b"\0" + array.numpy().tobytes())
    return digest.hexdigest()


def _charge_round(
    ledger: EpsilonLedger | None, message: Message, context: Context, instruction: _Instruction, n_rows: int
) -> _DpRound:
    """Reserve the epsilon this round adds to the job's total, before any work (see the module docstring)."""
    task = instruction.task
    dp = task.dp_sgd
    assert dp is not None
    assert task.study is not None
    config = message.content.config_records[CONFIG_KEY]
    researcher = config.get(RESEARCHER_KEY)
    if ledger is None or not isinstance(researcher, str) or not researcher:
        raise ConflictError(
            ErrorCode.PRIVACY_BUDGET_EXCEEDED,
            detail="DP-SGD without a ledger or a researcher",
            hints=["privacy.dp_sgd"],
        )
    state = context.state.config_records.get(DP_KEY)
    if state is None:
        state = ConfigRecord({"secret": secrets.token_bytes(32), "steps": 0})
    secret, steps = state["secret"], _integer(state, "steps")
    assert isinstance(secret, bytes)
    pin = context.state.config_records[PIN_KEY]
    digest = hashlib.sha256(
        canonical_json(
            {
                "kind": "medfed/learning/dp-sgd-round/v1",
                "run": context.run_id,
                "task": task.digest(),
                "snapshot": str(pin.get("snapshot")),
                "round": instruction.server_round,
                "mu": instruction.proximal_mu,
                "model": _arrays_digest(message),
                "secret": hashlib.sha256(secret).hexdigest(),
            }
        )
    ).hexdigest()
    q = min(1.0, task.batch_size / n_rows)
    before = dp_sgd_epsilon(q=q, sigma=dp.noise_multiplier, steps=steps, delta=dp.delta)
    after = dp_sgd_epsilon(q=q, sigma=dp.noise_multiplier, steps=steps + task.local_steps, delta=dp.delta)
    if after > dp.epsilon_budget:
        raise ConflictError(
            ErrorCode.PRIVACY_BUDGET_EXCEEDED,
            detail="the round would pass the job's epsilon budget",
            hints=["privacy.dp_sgd.epsilon_budget"],
        )
    reservation = ledger.reserve(
        researcher=researcher,
        study=task.study,
        query_digest=digest,
        epsilon=after - before,
        delta=dp.delta if steps == 0 else 0.0,
        job_id=f"learning:{context.run_id}",
    )
    if reservation.charged:
        context.state[DP_KEY] = ConfigRecord({"secret": secret, "steps": steps + task.local_steps})
    elif DP_KEY not in context.state.config_records:
        context.state[DP_KEY] = state
    seed = int.from_bytes(hmac.new(secret, digest.encode("ascii"), hashlib.sha256).digest()[:8], "big") >> 1
    _log.info("learning round charged: %s", "new" if reservation.charged else "repeat, no cost")
    return _DpRound(torch.Generator().manual_seed(seed), after, dp.delta)


def _train_private(model: nn.Module, data: _Data, instruction: _Instruction, dp_round: _DpRound) -> None:
    task = instruction.task
    dp = task.dp_sgd
    assert dp is not None
    n = int(data.x_train.shape[0])
    anchor = [p.detach().clone() for p in model.parameters()] if instruction.proximal_mu > 0 else None
    work = private_steps(
        model,
        _optimizer(task, model),
        data.x_train,
        data.y_train,
        steps=task.local_steps,
        q=min(1.0, task.batch_size / n),
        max_grad_norm=dp.max_grad_norm,
        noise_multiplier=dp.noise_multiplier,
        generator=dp_round.generator,
        proximal_mu=instruction.proximal_mu,
        anchor=anchor,
    )
    _log.info("DP-SGD round: %d steps, %d of %d drawn rows clipped", work.steps, work.clipped_rows, work.rows)


# --- secure aggregation: round keys, and the masked update --------------------------------------------


def _secure_state(context: Context) -> tuple[list[bytes], list[str]]:
    state = context.state.config_records.get(SECURE_KEY)
    if state is None:
        return [], []
    keys, nonces = state.get("keys", []), state.get("nonces", [])
    if not isinstance(keys, list) or not isinstance(nonces, list):
        raise ConflictError(detail="damaged secure-aggregation state", hints=[SECURE_KEY])
    return [k for k in keys if isinstance(k, bytes)], [n for n in nonces if isinstance(n, str)]


def _publish_key(context: Context) -> ConfigRecord:
    """A fresh round key, kept (the last few) in the job's context; its public half for the reply."""
    keys, nonces = _secure_state(context)
    key = SealingKey.generate()
    context.state[SECURE_KEY] = ConfigRecord({"keys": [*keys, key.to_pem()][-_KEPT_KEYS:], "nonces": nonces})
    return ConfigRecord({PUBLIC_KEY: key.public_key().to_bytes()})


@dataclass(frozen=True, slots=True)
class _SecureRound:
    nonce: str
    nodes: list[int]
    keys: list[bytes]


def _secure_request(message: Message, task: LearningTask) -> _SecureRound | None:
    """The masking the instruction asks for: None for the setup round; refused when it asks for none."""
    config = message.content.config_records[CONFIG_KEY]
    if config.get(SECAGG_SETUP) is True:
        return None
    nonce, nodes, keys = config.get(SECAGG_NONCE), config.get(SECAGG_NODES), config.get(SECAGG_KEYS)
    if (
        not isinstance(nonce, str)
        or not 16 <= len(nonce) <= 128
        or not isinstance(nodes, list)
        or not isinstance(keys, list)
        or len(nodes) != len(keys)
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in nodes)
        or not all(isinstance(k, bytes) for k in keys)
    ):
        raise ConflictError(
            ErrorCode.SECURE_AGGREGATION_FAILED,
            detail="the task asks for secure aggregation and the instruction for a plain update",
            hints=["config.secagg-nonce"],
        )
    return _SecureRound(nonce, [int(n) for n in nodes], [k for k in keys if isinstance(k, bytes)])


def _round_key(context: Context, request: _SecureRound) -> SealingKey:
    """This node's private key for the round; refused before any work when it cannot take part."""
    keys, nonces = _secure_state(context)
    if context.node_id not in request.nodes or request.nonce in nonces or len(set(request.nodes)) != len(request.nodes):
        raise ConflictError(
            ErrorCode.SECURE_AGGREGATION_FAILED, detail="not a participant, or a nonce used before", hints=["config"]
        )
    own_public = request.keys[request.nodes.index(context.node_id)]
    for pem in keys:
        key = SealingKey.from_pem(pem)
        if key.public_key().to_bytes() == own_public:
            return key
    raise ConflictError(
        ErrorCode.SECURE_AGGREGATION_FAILED, detail="the round names a key this node does not hold", hints=["config"]
    )


def _masked_update(
    context: Context,
    request: _SecureRound,
    own: SealingKey,
    instruction: _Instruction,
    update: list[torch.Tensor],
    n: int,
) -> ArrayRecord:
    """``update`` clipped, quantised, weighted by ``n`` and masked for the round's participants."""
    settings = instruction.task.secure_updates
    assert settings is not None
    values, clipped = encode_update(
        [part.numpy() for part in update], weight=n, clip_range=settings.clip_range, bits=settings.bits
    )
    secure_round = update_round(
        run_id=context.run_id,
        nonce=request.nonce,
        server_round=instruction.server_round,
        participants=request.nodes,
        parameters=len(values) - 2,
        bits=settings.bits,
    )
    peers = {
        participant_name(node): SealPublicKey.from_bytes(key)
        for node, key in zip(request.nodes, request.keys, strict=True)
        if node != context.node_id
    }
    masked = SecureSumParticipant.from_key(participant_name(context.node_id), own).mask(values, secure_round, peers)
    keys, nonces = _secure_state(context)
    context.state[SECURE_KEY] = ConfigRecord({"keys": keys, "nonces": [*nonces, request.nonce][-64:]})
    if clipped:
        _log.info("secure aggregation: %d coordinates clipped", clipped)
    return ArrayRecord({"masked": Array(masked.values)})


def learning_app(load_source: SourceLoader, *, ledger: EpsilonLedger | None = None) -> ClientApp:
    """A ClientApp with ``train`` and ``evaluate`` of a learning task on ``load_source``'s data.

    ``ledger`` is the node's epsilon ledger; without one, DP-SGD tasks are refused.
    """
    app = ClientApp()

    def answer_train(message: Message, context: Context) -> Message:
        instruction = _instruction(message)
        task = instruction.task
        data = _pinned_data(load_source, task, context)
        secure = _secure_request(message, task) if task.secure_updates is not None else None
        if task.secure_updates is not None and secure is None:  # the key step: nothing trained, nothing sent
            return make_reply(message, RecordDict({METRICS_KEY: MetricRecord({"secagg-setup": 1})}))
        own_key = None if secure is None else _round_key(context, secure)
        torch.set_num_threads(training_threads())  # the FHIR API in this process keeps the other cores
        n = int(data.x_train.shape[0])
        dp_round = _charge_round(ledger, message, context, instruction, n) if task.dp_sgd is not None else None
        model = _model(message, task)
        start = [value.detach().clone() for value in model.state_dict().values()]
        metrics: dict[str, MetricRecordValues] = {}
        if dp_round is not None:
            _train_private(model, data, instruction, dp_round)
            metrics.update({"dp_epsilon": dp_round.epsilon, "dp_delta": dp_round.delta})
        else:
            order = _Iterator(
                context,
                seed=instruction.seed,
                n_rows=n,
                batch_size=task.batch_size,
                server_round=instruction.server_round,
            )
            metrics["train_loss"] = _train(model, data, order, instruction)
            order.save()
        if secure is not None and own_key is not None:
            update = [value.detach() - first for value, first in zip(model.state_dict().values(), start, strict=True)]
            masked = _masked_update(context, secure, own_key, instruction, update, n)
            return make_reply(message, RecordDict({SECAGG_RECORD: masked, METRICS_KEY: MetricRecord(metrics)}))
        metrics["num-examples"] = n
        content = RecordDict(
            {ARRAYS_KEY: ArrayRecord.from_torch_state_dict(model.state_dict()), METRICS_KEY: MetricRecord(metrics)}
        )
        return make_reply(message, content)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        try:
            return answer_train(message, context)
        except MedfedError as exc:
            return _refusal(message, exc)

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        try:
            instruction = _instruction(message)
            data = _pinned_data(load_source, instruction.task, context)
        except MedfedError as exc:
            return _refusal(message, exc)
        metrics = _evaluate(_model(message, instruction.task), data, instruction.task)
        content = RecordDict({METRICS_KEY: MetricRecord(metrics)})
        config = message.content.config_records[CONFIG_KEY]
        if instruction.task.secure_updates is not None and config.get(SECAGG_PUBLISH) is True:
            content[SECAGG_RECORD] = _publish_key(context)
        return make_reply(message, content)

    return app
