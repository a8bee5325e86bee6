"""Reading a learning instruction: the task, the job's seed, the round, FedProx's mu; and refusing one.

Instructions follow Flower's conventions: ``"arrays"`` (the global model) and ``"config"`` with ``task``
(a :class:`~common.models.task.LearningTask` as JSON, parsed strictly here), ``seed`` (the job's seed),
``server-round``, and ``proximal-mu`` from FedProx. Anything malformed is an ``invalid_learning_task``
refusal with location-only hints: the detail stays in this node's log, never a value in the reply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from flwr.app import ConfigRecord, Error, Message

from common.analytics.task import encode_refusal
from common.errors import ConflictError, ErrorCode, InputError, MedfedError
from common.flower import assign_message_id
from common.models.task import LEARNING_ERROR_CODE, TASK_KEY, LearningTask, parse_learning_task

__all__ = [
    "ARRAYS_KEY",
    "CONFIG_KEY",
    "METRICS_KEY",
    "Instruction",
    "config_integer",
    "read_instruction",
    "refusal",
]

_log = logging.getLogger(__name__)

ARRAYS_KEY: Final[str] = "arrays"
CONFIG_KEY: Final[str] = "config"
METRICS_KEY: Final[str] = "metrics"


@dataclass(frozen=True, slots=True)
class Instruction:
    """What a train or evaluate instruction asks, parsed and range-checked."""

    task: LearningTask
    seed: int
    server_round: int
    proximal_mu: float


def _number(config: ConfigRecord, key: str, default: float | None = None) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(ErrorCode.INVALID_LEARNING_TASK, detail="bad instruction config", hints=[f"config.{key}"])
    return float(value)


def config_integer(record: ConfigRecord, key: str, *, where: str) -> int:
    """An integer this node wrote into its own job state; ConflictError when the state is damaged."""
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConflictError(detail="damaged job state", hints=[f"{where}.{key}"])
    return value


def read_instruction(message: Message) -> Instruction:
    """The instruction's task, seed, round and mu; InputError ``invalid_learning_task`` when malformed."""
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
    return Instruction(parse_learning_task(task_text), int(seed), int(server_round), mu)


def refusal(message: Message, error: MedfedError) -> Message:
    """A Flower error reply with the learning error code and the error's catalog code and hints only."""
    _log.info("learning task refused: %s", error.code)
    reply = Message(Error(code=LEARNING_ERROR_CODE, reason=encode_refusal(error)), reply_to=message)
    assign_message_id(reply)
    return reply
