"""Record-level DP-SGD at the node: the job's secret, the epsilon charged to the ledger, the private steps.

With ``privacy.dp_sgd`` in the task (:mod:`common.models.dp_sgd`), local work is ``local_steps`` Poisson
minibatches (rate ``q = batch_size / n``) with per-example clipping and Gaussian noise, drawn from a
generator seeded by a random secret the node makes for the job (kept in ``context.state``) and the
round's digest, never from the job's public seed. Before it trains, the node computes with its RDP
accountant (:mod:`common.privacy.rdp`) the job's epsilon after this round and reserves the increase in
its ledger (``ledger``: researcher x study, node-wide cap), keyed by a digest of the job, the task, the
data snapshot, the round, the global model it was sent and its secret: a round asked again with the same
inputs (a retried attempt, a resumed coordinator) gives the identical answer and costs nothing, while
any other input is charged anew. The job's epsilon is also capped by the task's ``epsilon_budget``. A
round that would overspend is refused with ``privacy_budget_exceeded`` before it touches the data. The
researcher is the config's ``researcher`` (the job's submitter, written by the coordinator); without it,
or without a ledger, DP-SGD is refused. A node that restarts forgets its step count and charges its next
round as if it were the first (more than the marginal cost: safe).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Final, Protocol

import torch
from flwr.app import ConfigRecord, Context, Message
from torch import nn

from common.crypto import canonical_json
from common.errors import ConflictError, ErrorCode
from common.models.dp_sgd import private_steps
from common.models.task import RESEARCHER_KEY
from common.privacy.rdp import dp_sgd_epsilon
from node.federation.apps.learning.data import PIN_KEY, LearningData
from node.federation.apps.learning.instruction import ARRAYS_KEY, CONFIG_KEY, Instruction, config_integer
from node.federation.apps.learning.training import optimizer_for

__all__ = ["DP_KEY", "Charge", "DpRound", "EpsilonLedger", "charge_round", "train_private"]

_log = logging.getLogger(__name__)

DP_KEY: Final[str] = "medfed.learning.dp"
"""ConfigRecord in ``context.state``: the job's DP secret and the DP-SGD steps charged so far."""


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
class DpRound:
    """A charged round: the noise generator and the job's (epsilon, delta) at this node after it."""

    generator: torch.Generator
    epsilon: float
    delta: float


def _arrays_digest(message: Message) -> str:
    digest = hashlib.sha256()
    for name, array in message.content.array_records[ARRAYS_KEY].items():
        digest.update(name.encode() + b"\0" + array.numpy().tobytes())
    return digest.hexdigest()


def charge_round(
    ledger: EpsilonLedger | None, message: Message, context: Context, instruction: Instruction, n_rows: int
) -> DpRound:
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
    secret, steps = state["secret"], config_integer(state, "steps", where=DP_KEY)
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
    return DpRound(torch.Generator().manual_seed(seed), after, dp.delta)


def train_private(model: nn.Module, data: LearningData, instruction: Instruction, dp_round: DpRound) -> None:
    """``local_steps`` DP-SGD steps on Poisson minibatches, noise from the round's generator."""
    task = instruction.task
    dp = task.dp_sgd
    assert dp is not None
    n = int(data.x_train.shape[0])
    anchor = [p.detach().clone() for p in model.parameters()] if instruction.proximal_mu > 0 else None
    work = private_steps(
        model,
        optimizer_for(task, model),
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
