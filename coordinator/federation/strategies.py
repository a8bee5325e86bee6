"""The strategies a learning job may name: Flower's own, FLamby's FedOpt variants, and a Cyclic strategy.

``flavour: flower`` (the default) runs Flower's classes unchanged (``flwr.serverapp.strategy.FedAvg``,
``FedProx``, ``FedAdam``, ``FedYogi``, ``FedAdagrad``). ``flavour: flamby`` reproduces FLamby's
definitions (read in owkin/FLamby ``flamby/strategies/fed_opt.py``) as subclasses of Flower's classes.
With Δ the sample-weighted mean of the nodes' updates and x the global model, every FedOpt variant does
``m = β1·m + (1-β1)·Δ`` and ``x ← x + η·m / (√v + τ)`` (Flower's shared ``_compute_deltat_and_mt``), and:

============  ==========================================  =============================================
strategy      Flower 1.42                                 FLamby (``flavour: flamby``)
============  ==========================================  =============================================
FedAdam       v = β2·v + (1-β2)·Δ²; η bias-corrected:      v = β2·v + (1-β2)·Δ²; plain η (no bias
              η·√(1-β2^(t+1)) / (1-β1^(t+1))               correction)
FedYogi       v = v - (1-β2)·Δ²·sign(v-Δ²)                 the same (written out here so that a Flower
                                                           change cannot alter the reproduction)
FedAdagrad    v = v + Δ²; no momentum (β1 forced to 0)     v = v + Δ²; momentum β1 (0.9 by default)
============  ==========================================  =============================================

FLamby's published runs used τ = 1e-8, β1 = 0.9, β2 = 0.999 and server learning rates per dataset; those
are the ``flamby`` defaults here. Flower's defaults are Flower's. FedAvg and FedProx are the same in both
(FedProx's proximal term μ/2·‖w - w_global‖² is added by the node to its minibatch loss; Flower's
``FedProx`` sends ``proximal-mu`` in the train config).

:class:`Cyclic` (cyclic weight transfer): one node trains per round, in an order drawn afresh (from the
job's seeded RNG) at the start of every cycle through the nodes; the global model is that node's model.
FLamby's ``Cyclic`` class returns, as the benchmark's model, the model of its *first* client, which its
code never passes the other clients' weights (``flamby/strategies/cyclic.py``: each client's ``_Model``
is a deep copy trained only on its own data). That is client 0's local model, not cyclic weight
transfer. medfed's Cyclic transfers the weights as the strategy is described; ``flavour: flamby``
(:class:`FlambyCyclic`, with ``reference_node`` naming FLamby's client 0) reproduces FLamby's code.

**Privacy wrappers** (``docs/privacy.md``), around any of the above but Cyclic:

* :class:`CentralDp`: central (client-level) differential privacy with Flower's
  ``DifferentialPrivacyServerSideFixedClipping``: the coordinator clips each node's update to L2 norm
  ``clipping_norm``, averages them *uniformly* (a sample-weighted mean would let one large node move
  the mean by more than ``clipping_norm / m``), and adds Gaussian noise of standard deviation
  ``noise_multiplier * clipping_norm / m`` for the ``m`` updates averaged. FedAvg and FedProx only: an
  adaptive server step (FedOpt) is not the Gaussian mechanism the accounting assumes. Each round adds
  ``central_dp_epsilon`` / ``central_dp_delta`` (client level, all rounds so far, no amplification by
  sampling: the driver's sample is drawn from the job's seed, which the researcher may know) to the
  round's train metrics. Never charged to a node's ledger: the nodes send exact updates and the
  coordinator is trusted with them.
* :class:`SecureAggregation`: the nodes' updates arrive masked (:mod:`common.privacy.secure_updates`)
  and the coordinator sees only their weighted sum. Keys travel with the evaluate phase: every
  available node evaluates each round and answers a fresh public round key, and the next round's train
  instructions carry the participants' keys and a fresh nonce. Round 1 has no keys yet: it is the key
  step (nothing is trained; the nodes evaluate the initial model), so training starts in round 2. A
  participant that does not answer fails the attempt (its masks cannot be removed without it); the
  driver retries the round once with a new nonce.

The round driver (:mod:`coordinator.federation.driver`) samples nodes, enforces the quorum and calls a
strategy's ``configure_train``/``configure_evaluate`` (over a view of the Grid that holds only the sampled
nodes) and ``aggregate_train``/``aggregate_evaluate``. What a strategy keeps between rounds
(FedOpt's moments, Cyclic's order) goes through :func:`strategy_state` / :func:`load_strategy_state` into
the job's saved state, so a resumed job continues bit for bit.
"""

from __future__ import annotations

import base64
import random
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    MetricRecordValues,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (
    DifferentialPrivacyServerSideFixedClipping,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
    Strategy,
)
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from common.errors import MedfedError
from common.models.checkpoints import decode_tensors, encode_tensors
from common.models.task import SecureUpdates
from common.privacy.rdp import dp_sgd_epsilon
from common.privacy.secure_sum import MaskedVector, SecureSumRound, aggregate
from common.privacy.secure_updates import (
    PUBLIC_KEY,
    SECAGG_KEYS,
    SECAGG_NODES,
    SECAGG_NONCE,
    SECAGG_PUBLISH,
    SECAGG_RECORD,
    SECAGG_SETUP,
    decode_sum,
    participant_name,
    update_round,
)

__all__ = [
    "CentralDp",
    "CentralDpSettings",
    "Cyclic",
    "FlambyCyclic",
    "FlambyFedAdagrad",
    "FlambyFedAdam",
    "FlambyFedYogi",
    "SecureAggregation",
    "StrategySpec",
    "build_strategy",
    "load_strategy_state",
    "strategy_state",
]

StrategyName = Literal["fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad", "cyclic"]
Arrays = dict[str, NDArray[Any]]
_FEDOPT = frozenset({"fedadam", "fedyogi", "fedadagrad"})
# The settings of FLamby's published FedOpt runs (the seed CSVs: tau 1e-8, beta1 0.9, beta2 0.999).
_FLAMBY_DEFAULTS: dict[str, float] = {"server_lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "tau": 1e-8}
# One node at a time trains, so no other minimum means anything; the round driver enforces the quorum.
_DRIVER_OWNS_SAMPLING: dict[str, Any] = {
    "fraction_train": 1.0,
    "fraction_evaluate": 1.0,
    "min_train_nodes": 1,
    "min_evaluate_nodes": 1,
    "min_available_nodes": 1,
}


class CentralDpSettings(BaseModel):
    """Central (client-level) DP of a learning job: Flower's server-side fixed clipping (see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    noise_multiplier: float = Field(gt=0, le=100)
    clipping_norm: float = Field(gt=0, le=1e6)
    num_sampled_clients: int = Field(ge=1, le=10_000, description="Nodes expected per round (Flower's m).")
    delta: float = Field(default=1e-5, gt=0, lt=1, description="The delta the client-level epsilon is reported at.")

    def epsilon(self, releases: int) -> float:
        """Client-level epsilon at ``delta`` after ``releases`` noisy aggregates (RDP, no amplification)."""
        return dp_sgd_epsilon(q=1.0, sigma=self.noise_multiplier, steps=releases, delta=self.delta)


class StrategySpec(BaseModel):
    """The strategy of a learning job and its hyper-parameters (``None``: the flavour's default).

    The job's privacy wrappers (its ``central_dp`` and ``privacy.secure_aggregation``) are attached by
    :class:`~coordinator.federation.jobs.learning.LearningSpec` (:meth:`with_privacy`), so that
    :func:`build_strategy` sees them; they are not part of the strategy's own fields.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    _central_dp: CentralDpSettings | None = PrivateAttr(default=None)
    _secure_updates: SecureUpdates | None = PrivateAttr(default=None)

    name: StrategyName = "fedavg"
    flavour: Literal["flower", "flamby"] = "flower"
    server_lr: float | None = Field(default=None, gt=0, le=100, description="FedOpt's eta.")
    beta1: float | None = Field(default=None, ge=0, lt=1)
    beta2: float | None = Field(default=None, ge=0, lt=1)
    tau: float | None = Field(default=None, gt=0, le=1)
    proximal_mu: float = Field(default=0.0, ge=0, le=1000, description="FedProx's mu.")
    reference_node: int | None = Field(
        default=None,
        ge=2,
        lt=2**63,
        description="Cyclic, flavour flamby: the node (Flower id) whose model is the job's.",
    )

    @model_validator(mode="after")
    def _coherent(self) -> StrategySpec:
        fedopt_only = (self.server_lr, self.beta1, self.beta2, self.tau)
        if self.name not in _FEDOPT and any(value is not None for value in fedopt_only):
            raise ValueError("server_lr, beta1, beta2 and tau apply to fedadam, fedyogi and fedadagrad only")
        if self.proximal_mu and self.name != "fedprox":
            raise ValueError("proximal_mu applies to fedprox only")
        if self.name == "fedadagrad" and self.flavour == "flower" and self.beta1 not in (None, 0.0):
            raise ValueError("Flower's FedAdagrad has no momentum; use flavour flamby for beta1")
        if (self.reference_node is not None) != (self.name == "cyclic" and self.flavour == "flamby"):
            raise ValueError("reference_node is required by cyclic with flavour flamby, and by nothing else")
        return self

    def with_privacy(self, central_dp: CentralDpSettings | None, secure_updates: SecureUpdates | None) -> StrategySpec:
        """A copy of this spec that builds its strategy inside the job's privacy wrappers."""
        copy = self.model_copy()
        copy._central_dp = central_dp
        copy._secure_updates = secure_updates
        return copy

    @property
    def central_dp(self) -> CentralDpSettings | None:
        """The job's central DP, attached by :meth:`with_privacy`."""
        return self._central_dp

    @property
    def secure_updates(self) -> SecureUpdates | None:
        """The job's secure aggregation, attached by :meth:`with_privacy`."""
        return self._secure_updates

    def fedopt_settings(self) -> dict[str, float]:
        """``eta``, ``beta_1``, ``beta_2``, ``tau`` as given, else the flavour's defaults (Flower's: omitted)."""
        given = {"eta": self.server_lr, "beta_1": self.beta1, "beta_2": self.beta2, "tau": self.tau}
        if self.flavour == "flamby":
            defaults = dict(zip(("eta", "beta_1", "beta_2", "tau"), _FLAMBY_DEFAULTS.values(), strict=True))
            return {key: defaults[key] if value is None else value for key, value in given.items()}
        return {key: value for key, value in given.items() if value is not None}


class _FlambyFedOpt:
    """FLamby's server step, shared by its three FedOpt variants; mixed into Flower's FedOpt subclasses."""

    current_arrays: Arrays | None
    v_t: Arrays | None
    eta: float
    tau: float

    def _flamby_step(
        self,
        server_round: int,
        replies: Iterable[Message],
        second_moment: Callable[[NDArray[Any], NDArray[Any]], NDArray[Any]],
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Weighted mean (FedAvg), then ``x + eta * m / (sqrt(v) + tau)`` with ``v = second_moment(v, delta)``."""
        averaged, metrics = FedAvg.aggregate_train(cast(FedAvg, self), server_round, replies)
        if averaged is None or self.current_arrays is None:
            return averaged, metrics
        delta, momentum, _ = cast(Any, self)._compute_deltat_and_mt(averaged)
        if not self.v_t:
            self.v_t = {key: np.zeros_like(value) for key, value in delta.items()}
        self.v_t = {key: second_moment(self.v_t[key], delta[key]) for key in delta}
        updated = {
            key: x + self.eta * momentum[key] / (np.sqrt(self.v_t[key]) + self.tau)
            for key, x in self.current_arrays.items()
        }
        return ArrayRecord({key: Array(np.asarray(value)) for key, value in updated.items()}), metrics


class FlambyFedAdam(_FlambyFedOpt, FedAdam):
    """FedAdam as FLamby defines it: ``v = β2·v + (1-β2)·Δ²`` and no bias correction of η."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """One FLamby FedAdam step."""
        beta_2 = self.beta_2
        return self._flamby_step(server_round, replies, lambda v, d: beta_2 * v + (1 - beta_2) * d * d)


class FlambyFedYogi(_FlambyFedOpt, FedYogi):
    """FedYogi as FLamby defines it: ``v = v - (1-β2)·Δ²·sign(v - Δ²)``, no bias correction."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """One FLamby FedYogi step."""
        beta_2 = self.beta_2
        return self._flamby_step(server_round, replies, lambda v, d: v - (1 - beta_2) * d * d * np.sign(v - d * d))


class FlambyFedAdagrad(_FlambyFedOpt, FedAdagrad):
    """FedAdagrad as FLamby defines it: ``v = v + Δ²`` with momentum ``β1`` on Δ (Flower forces β1 = 0)."""

    def __init__(self, *, beta_1: float = 0.9, beta_2: float | None = None, **kwargs: Any) -> None:
        """``beta_2`` is accepted for a uniform FedOpt signature and unused: Adagrad sums the squares."""
        super().__init__(**kwargs)
        self.beta_1 = beta_1

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """One FLamby FedAdagrad step."""
        return self._flamby_step(server_round, replies, lambda v, d: v + d * d)


class Cyclic(FedAvg):
    """Cyclic weight transfer: one node per round, a fresh order of the nodes at every cycle (see module)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.order: list[int] = []
        self.position = 0

    def sample_train(self, available: Sequence[int], rng: random.Random) -> list[int]:
        """The next node of the cycle that is available; a new cycle (order drawn from ``rng``) when needed."""
        online = set(available)
        while True:
            while self.position < len(self.order):
                node_id = self.order[self.position]
                self.position += 1
                if node_id in online:
                    return [node_id]
            if not online:
                return []
            nodes = sorted(online)
            self.order, self.position = rng.sample(nodes, len(nodes)), 0

    def evaluate_targets(self, trained: Sequence[int], available: Sequence[int]) -> list[int]:
        """Every available node evaluates the model the round's one node trained."""
        return sorted(set(available) | set(trained))


class FlambyCyclic(Cyclic):
    """FLamby's ``Cyclic`` as its code behaves: no weight transfer (see the module docstring).

    The nodes are visited as by :class:`Cyclic`, but each node trains its *own* model, which starts as the
    job's initial model and is kept here between its turns; the job's model (evaluated by every node,
    saved, exported) is the model of ``reference_node``, FLamby's client 0. Kept for reproducing FLamby's
    published Cyclic numbers, which are those of one centre's model trained on that centre alone.
    """

    def __init__(self, *, reference_node: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reference_node = reference_node
        self.initial: Arrays | None = None
        self.models: dict[int, Arrays] = {}

    def _record(self, arrays: Arrays) -> ArrayRecord:
        return ArrayRecord({key: Array(np.array(value, copy=True)) for key, value in arrays.items()})

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send the round's one node its own model (the initial model on its first turn)."""
        if self.initial is None:
            self.initial = {key: np.array(array.numpy(), copy=True) for key, array in arrays.items()}
        (node_id,) = grid.get_node_ids()
        own = self.models.get(node_id, self.initial)
        return super().configure_train(server_round, self._record(own), config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Keep the node's new model as its own; the job's model is the reference node's."""
        replies = list(replies)
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is None or self.initial is None:
            return arrays, metrics
        trained = next(reply for reply in replies if not reply.has_error()).metadata.src_node_id
        self.models[trained] = {key: np.array(array.numpy(), copy=True) for key, array in arrays.items()}
        return self._record(self.models.get(self.reference_node, self.initial)), metrics


_METRICS = "metrics"
_WEIGHT = "num-examples"


class CentralDp(DifferentialPrivacyServerSideFixedClipping):
    """Flower's server-side fixed clipping with uniform weights and client-level epsilon (see the module)."""

    def __init__(self, strategy: Strategy, settings: CentralDpSettings) -> None:
        super().__init__(strategy, settings.noise_multiplier, settings.clipping_norm, settings.num_sampled_clients)
        self.settings = settings
        self.releases = 0

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Clip, average uniformly, add noise for the ``m`` updates received; report the epsilon so far."""
        replies = list(replies)
        for reply in replies:  # uniform weights: one node's influence on the mean is at most C / m
            record = reply.content.metric_records.get(_METRICS)
            if record is not None:
                record[_WEIGHT] = 1
        self.num_sampled_clients = max(1, len(replies))
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is None:
            return arrays, metrics
        self.releases += 1
        metrics = metrics if metrics is not None else MetricRecord()
        metrics["central_dp_epsilon"] = self.settings.epsilon(self.releases)
        metrics["central_dp_delta"] = self.settings.delta
        return arrays, metrics


@dataclass(frozen=True, slots=True)
class _PendingRound:
    """What the coordinator needs to read the masked sum of one train instruction."""

    secure_round: SecureSumRound | None  # None: the key step
    current: dict[str, NDArray[Any]]


class SecureAggregation(Strategy):
    """The nodes' updates arrive masked; the wrapped strategy steps from their weighted mean (see the module)."""

    def __init__(self, strategy: Strategy, settings: SecureUpdates) -> None:
        super().__init__()
        self.strategy = strategy
        self.settings = settings
        self.keys: dict[int, bytes] = {}
        self.clipped = 0
        self._pending: _PendingRound | None = None

    def summary(self) -> None:
        """The wrapped strategy's summary."""
        self.strategy.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The wrapped strategy's instructions, with the participants' keys and a fresh nonce (or the key step)."""
        current = {name: np.array(array.numpy(), copy=True) for name, array in arrays.items()}
        participants = sorted(node_id for node_id in grid.get_node_ids() if node_id in self.keys)
        if not self.keys:
            config[SECAGG_SETUP] = True
            self._pending = _PendingRound(None, current)
        else:
            nonce = secrets.token_hex(16)
            config[SECAGG_NONCE] = nonce
            config[SECAGG_NODES] = participants
            config[SECAGG_KEYS] = [self.keys[node_id] for node_id in participants]
            size = sum(int(value.size) for value in current.values())
            secure_round = (
                update_round(
                    run_id=grid.run.run_id,
                    nonce=nonce,
                    server_round=server_round,
                    participants=participants,
                    parameters=size,
                    bits=self.settings.bits,
                )
                if len(participants) >= 2
                else None
            )
            self._pending = _PendingRound(secure_round, current) if secure_round is not None else None
        return self.strategy.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The weighted mean update from the exact sum of the masked vectors; None when anyone is missing."""
        pending, replies = self._pending, list(replies)
        if pending is None:
            return None, None  # fewer than two participants: a sum would reveal an update
        if pending.secure_round is None:  # the key step: the model stays as it was
            record = ArrayRecord({name: Array(value) for name, value in pending.current.items()})
            return record, MetricRecord({"secagg-setup": 1})
        secure_round = pending.secure_round
        vectors, losses = [], []
        for reply in replies:
            masked = reply.content.array_records.get(SECAGG_RECORD)
            if masked is None or "masked" not in masked:
                return None, None
            name = participant_name(reply.metadata.src_node_id)
            vectors.append(MaskedVector(name, secure_round.digest, secure_round.modulus_bits, masked["masked"].numpy()))
            loss = reply.content.metric_records.get(_METRICS, MetricRecord()).get("train_loss")
            if isinstance(loss, float):
                losses.append(loss)
        try:
            total = aggregate(secure_round, vectors)
        except MedfedError:
            return None, None  # a participant missing (or a vector that is not the round's): the attempt fails
        shapes = [tuple(value.shape) for value in pending.current.values()]
        decoded = decode_sum(total, shapes=shapes, clip_range=self.settings.clip_range, bits=self.settings.bits)
        self.clipped += decoded.clipped
        mean = {
            name: (value.astype(np.float64) + update).astype(value.dtype)
            for (name, value), update in zip(pending.current.items(), decoded.mean_update, strict=True)
        }
        metrics: dict[str, MetricRecordValues] = {_WEIGHT: decoded.total_weight}
        if losses:
            metrics["train_loss"] = float(np.mean(losses))
        content = RecordDict(
            {"arrays": ArrayRecord({k: Array(v) for k, v in mean.items()}), _METRICS: MetricRecord(metrics)}
        )
        arrays, aggregated = self.strategy.aggregate_train(
            server_round, [Message(content=content, dst_node_id=0, message_type=MessageType.TRAIN)]
        )
        aggregated = aggregated if aggregated is not None else MetricRecord()
        aggregated["secagg_participants"] = len(vectors)
        aggregated["secagg_clipped"] = decoded.clipped
        return arrays, aggregated

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The wrapped strategy's instructions, asking every node for a fresh public round key."""
        config[SECAGG_PUBLISH] = True
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def evaluate_targets(self, trained: Sequence[int], available: Sequence[int]) -> list[int]:
        """Every available node evaluates (and so has a key for the next round)."""
        return sorted(set(available) | set(trained))

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Keep the nodes' new public keys for the next round; the wrapped strategy aggregates the metrics."""
        replies = list(replies)
        keys: dict[int, bytes] = {}
        for reply in replies:
            record = reply.content.config_records.get(SECAGG_RECORD)
            key = None if record is None else record.get(PUBLIC_KEY)
            if isinstance(key, bytes):
                keys[reply.metadata.src_node_id] = key
        self.keys = keys
        return self.strategy.aggregate_evaluate(server_round, replies)


def build_strategy(spec: StrategySpec, *, client_lr: float) -> Strategy:
    """The strategy ``spec`` names, configured so that the round driver owns sampling and quorum,
    inside the job's privacy wrappers when it has any."""
    strategy = _plain_strategy(spec, client_lr=client_lr)
    if spec.central_dp is not None:
        return CentralDp(strategy, spec.central_dp)
    if spec.secure_updates is not None:
        return SecureAggregation(strategy, spec.secure_updates)
    return strategy


def _plain_strategy(spec: StrategySpec, *, client_lr: float) -> Strategy:
    if spec.name == "fedavg":
        return FedAvg(**_DRIVER_OWNS_SAMPLING)
    if spec.name == "fedprox":
        return FedProx(**_DRIVER_OWNS_SAMPLING, proximal_mu=spec.proximal_mu)
    if spec.name == "cyclic" and spec.reference_node is not None:
        return FlambyCyclic(**_DRIVER_OWNS_SAMPLING, reference_node=spec.reference_node)
    if spec.name == "cyclic":
        return Cyclic(**_DRIVER_OWNS_SAMPLING)
    settings = {**_DRIVER_OWNS_SAMPLING, **spec.fedopt_settings(), "eta_l": client_lr}
    if spec.flavour == "flamby":
        classes: dict[str, type[Strategy]] = {
            "fedadam": FlambyFedAdam,
            "fedyogi": FlambyFedYogi,
            "fedadagrad": FlambyFedAdagrad,
        }
    else:
        classes = {"fedadam": FedAdam, "fedyogi": FedYogi, "fedadagrad": FedAdagrad}
        if spec.name == "fedadagrad":
            settings.pop("beta_1", None)
            settings.pop("beta_2", None)
    return classes[spec.name](**settings)


# --- state kept between rounds ---------------------------------------------------------------------


def _pack(arrays: Arrays | None) -> str | None:
    return None if not arrays else base64.b64encode(encode_tensors(arrays)).decode("ascii")


def _unpack(text: str | None) -> Arrays | None:
    return None if text is None else dict(decode_tensors(base64.b64decode(text)))


def strategy_state(strategy: Strategy) -> dict[str, Any]:
    """What ``strategy`` carries from one round to the next, JSON-ready (arrays as base64 model bytes)."""
    if isinstance(strategy, CentralDp):
        return {"central_dp_releases": strategy.releases, "inner": strategy_state(strategy.strategy)}
    if isinstance(strategy, SecureAggregation):
        keys = {str(node_id): base64.b64encode(key).decode("ascii") for node_id, key in sorted(strategy.keys.items())}
        return {"secure_keys": keys, "inner": strategy_state(strategy.strategy)}
    if isinstance(strategy, FlambyCyclic):
        models = {str(node_id): _pack(arrays) for node_id, arrays in sorted(strategy.models.items())}
        return {
            "order": list(strategy.order),
            "position": strategy.position,
            "initial": _pack(strategy.initial),
            "models": models,
        }
    if isinstance(strategy, Cyclic):
        return {"order": list(strategy.order), "position": strategy.position}
    if isinstance(strategy, FedAdam | FedYogi | FedAdagrad):  # FedOpt: the moments
        return {"m_t": _pack(strategy.m_t), "v_t": _pack(strategy.v_t)}
    return {}


def load_strategy_state(strategy: Strategy, state: dict[str, Any]) -> None:
    """Put back what :func:`strategy_state` returned (an empty mapping: the strategy's initial state)."""
    if isinstance(strategy, CentralDp):
        strategy.releases = int(state.get("central_dp_releases", 0))
        load_strategy_state(strategy.strategy, state.get("inner", {}))
        return
    if isinstance(strategy, SecureAggregation):
        keys = state.get("secure_keys", {})
        strategy.keys = {int(node_id): base64.b64decode(text) for node_id, text in keys.items()}
        load_strategy_state(strategy.strategy, state.get("inner", {}))
        return
    if isinstance(strategy, Cyclic):
        strategy.order = [int(node_id) for node_id in state.get("order", [])]
        strategy.position = int(state.get("position", 0))
    if isinstance(strategy, FlambyCyclic):
        strategy.initial = _unpack(state.get("initial"))
        strategy.models = {
            int(node_id): arrays
            for node_id, packed in state.get("models", {}).items()
            if (arrays := _unpack(packed)) is not None
        }
    elif isinstance(strategy, FedAdam | FedYogi | FedAdagrad):
        strategy.m_t = _unpack(state.get("m_t"))
        strategy.v_t = _unpack(state.get("v_t"))
