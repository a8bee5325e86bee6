"""SCAFFOLD at the node: its control variate c_i, kept in the job's context, and the corrected local work.

A train instruction of a Scaffold job carries the server control variate c
(:data:`~common.models.scaffold.SCAFFOLD_CONTROL`, one array per model parameter). The node corrects every
local step to ``y <- y - lr * (g - c_i + c)`` (:func:`~node.federation.apps.learning.training.train` with
``correction = c - c_i``), then, with x the model it was sent and K the task's ``local_steps``, updates
(option II of the paper) ``c_i+ = c_i - c + (x - y) / (K * lr)`` and answers ``delta c_i = c_i+ - c_i``
(:data:`~common.models.scaffold.SCAFFOLD_DELTA`) next to its model.

c_i lives in the job's ``context.state`` like the data iterator, with its value from before the round the
node last trained: a round asked again (a retried attempt, a coordinator that resumed) starts from that
value, so the answer is the same and c_i is not advanced twice. So does a round after a training the
coordinator did not aggregate (an abandoned attempt that was retried without this node): the config
names the last round the coordinator aggregated from each node
(:data:`~common.models.scaffold.SCAFFOLD_NODES`, :data:`~common.models.scaffold.SCAFFOLD_ROUNDS`), and a
node whose last training is not that round rolls back. c_i starts at zero, and a node that restarts
forgets it (as it forgets its iterator) and starts again from zero.

Refused: a Scaffold instruction for a task with DP-SGD or secure aggregation (delta c_i would leave the
node unmasked and without noise), for an optimizer other than SGD without momentum (the control update
assumes plain SGD steps), or whose c does not match the model's parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message
from torch import nn

from common.errors import ConflictError, ErrorCode, InputError
from common.models.scaffold import SCAFFOLD_CONTROL, SCAFFOLD_NODES, SCAFFOLD_ROUNDS
from node.federation.apps.learning.instruction import CONFIG_KEY, Instruction, config_integer

__all__ = [
    "SCAFFOLD_KEY",
    "SCAFFOLD_ROUND_KEY",
    "ScaffoldRound",
    "control_update",
    "finish_scaffold_round",
    "scaffold_request",
]

SCAFFOLD_KEY: Final[str] = "medfed.learning.scaffold"
"""ArrayRecord in ``context.state``: c_i (``now/<name>``) and c_i before the last trained round (``start/<name>``)."""
SCAFFOLD_ROUND_KEY: Final[str] = "medfed.learning.scaffold-round"
"""ConfigRecord in ``context.state``: the round that last advanced c_i."""


@dataclass(frozen=True, slots=True)
class ScaffoldRound:
    """One round's control variates, per model parameter in ``model.named_parameters()`` order."""

    names: list[str]
    server: list[torch.Tensor]  # c
    own: list[torch.Tensor]  # c_i at the start of this round

    def correction(self) -> list[torch.Tensor]:
        """``c - c_i``, added to every gradient of the round's local steps."""
        return [c - ci for c, ci in zip(self.server, self.own, strict=True)]


def scaffold_request(
    message: Message, context: Context, instruction: Instruction, model: nn.Module
) -> ScaffoldRound | None:
    """The round's control variates when the instruction is a Scaffold one (None otherwise); refused
    before any work when the task or the control variate does not allow it (see the module)."""
    record = message.content.array_records.get(SCAFFOLD_CONTROL)
    if record is None:
        return None
    task = instruction.task
    if task.dp_sgd is not None or task.secure_updates is not None:
        raise ConflictError(
            ErrorCode.INVALID_LEARNING_TASK,
            detail="scaffold asked for a task with DP-SGD or secure aggregation",
            hints=[f"{SCAFFOLD_CONTROL}: not with privacy.dp_sgd or privacy.secure_aggregation"],
        )
    if task.optimizer != "sgd" or task.momentum:
        raise InputError(
            ErrorCode.INVALID_LEARNING_TASK,
            detail="scaffold asked for a task that is not plain SGD",
            hints=["optimizer: scaffold needs sgd without momentum"],
        )
    parameters = dict(model.named_parameters())
    if sorted(record) != sorted(parameters):
        raise InputError(ErrorCode.INVALID_LEARNING_TASK, detail="control variate names", hints=[SCAFFOLD_CONTROL])
    server = []
    for name, parameter in parameters.items():
        value = torch.as_tensor(record[name].numpy(), dtype=parameter.dtype)
        if value.shape != parameter.shape or not bool(torch.isfinite(value).all()):
            raise InputError(ErrorCode.INVALID_LEARNING_TASK, detail="control variate values", hints=[SCAFFOLD_CONTROL])
        server.append(value)
    applied = _applied_round(message, context.node_id)
    own = _own_control(context, instruction.server_round, applied, parameters)
    return ScaffoldRound(list(parameters), server, own)


def _applied_round(message: Message, node_id: int) -> int | None:
    """The last round whose delta c_i of this node the coordinator aggregated (None: none so far)."""
    config = message.content.config_records[CONFIG_KEY]
    nodes, rounds = config.get(SCAFFOLD_NODES, []), config.get(SCAFFOLD_ROUNDS, [])
    if not isinstance(nodes, list) or not isinstance(rounds, list) or len(nodes) != len(rounds):
        raise InputError(
            ErrorCode.INVALID_LEARNING_TASK, detail="bad scaffold rounds", hints=[f"config.{SCAFFOLD_ROUNDS}"]
        )
    for node, server_round in zip(nodes, rounds, strict=True):
        if not isinstance(node, int) or not isinstance(server_round, int) or isinstance(server_round, bool):
            raise InputError(
                ErrorCode.INVALID_LEARNING_TASK, detail="bad scaffold rounds", hints=[f"config.{SCAFFOLD_ROUNDS}"]
            )
        if node == node_id:
            return server_round
    return None


def _own_control(
    context: Context, server_round: int, applied: int | None, parameters: dict[str, nn.Parameter]
) -> list[torch.Tensor]:
    """c_i at the start of ``server_round``: zero at first; the value from before the last trained round
    when that round is asked again or was not aggregated; else the current value."""
    saved = context.state.array_records.get(SCAFFOLD_KEY)
    marker = context.state.config_records.get(SCAFFOLD_ROUND_KEY)
    if saved is None or marker is None:
        return [torch.zeros_like(parameter.detach()) for parameter in parameters.values()]
    last = config_integer(marker, "round", where=SCAFFOLD_ROUND_KEY)
    prefix = "start/" if last == server_round or last != applied else "now/"
    if sorted(key for key in saved if key.startswith(prefix)) != sorted(prefix + name for name in parameters):
        raise ConflictError(detail="damaged scaffold state", hints=[SCAFFOLD_KEY])
    return [torch.from_numpy(saved[prefix + name].numpy().copy()) for name in parameters]


def control_update(
    server: list[torch.Tensor],
    own: list[torch.Tensor],
    start: list[torch.Tensor],
    end: list[torch.Tensor],
    *,
    steps: int,
    lr: float,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Option II: ``c_i+ = c_i - c + (x - y) / (K * lr)`` (in float64) and ``delta c_i = c_i+ - c_i``.

    ``start`` is x (the model sent), ``end`` is y (after the K = ``steps`` corrected steps).
    """
    new, delta = [], []
    for c, ci, x, y in zip(server, own, start, end, strict=True):
        updated = (ci.double() - c.double() + (x.double() - y.double()) / (steps * lr)).to(ci.dtype)
        new.append(updated)
        delta.append((updated.double() - ci.double()).to(ci.dtype))
    return new, delta


def finish_scaffold_round(
    context: Context,
    request: ScaffoldRound,
    instruction: Instruction,
    start: list[torch.Tensor],
    end: list[torch.Tensor],
) -> ArrayRecord:
    """Advance c_i in the job's context (keeping the round's start) and return ``delta c_i`` for the reply."""
    task = instruction.task
    new, delta = control_update(request.server, request.own, start, end, steps=task.local_steps, lr=task.lr)
    kept = {f"start/{name}": Array(value.numpy()) for name, value in zip(request.names, request.own, strict=True)}
    kept |= {f"now/{name}": Array(value.numpy()) for name, value in zip(request.names, new, strict=True)}
    context.state[SCAFFOLD_KEY] = ArrayRecord(kept)
    context.state[SCAFFOLD_ROUND_KEY] = ConfigRecord({"round": instruction.server_round})
    return ArrayRecord({name: Array(value.numpy()) for name, value in zip(request.names, delta, strict=True)})
