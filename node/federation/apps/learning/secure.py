"""Secure aggregation at the node: round keys, and the masked update it answers instead of its model.

With ``privacy.secure_aggregation`` in the task (:mod:`common.privacy.secure_updates`): an ``evaluate``
instruction with ``secagg-publish`` makes a fresh X25519 round key (the node keeps its last four) and
answers its public half; a ``train`` instruction names the participants, their public keys and a nonce;
the node trains, clips and quantises its update, and answers the masked vector instead of its model (no
``num-examples``: the weight is inside the vector). It never masks twice under one nonce and never
answers such a task with a plain model. With ``secagg-setup`` (the job's first round, before any key is
known) it answers without training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message

from common.crypto import SealingKey, SealPublicKey
from common.errors import ConflictError, ErrorCode
from common.privacy.secure_sum import SecureSumParticipant
from common.privacy.secure_updates import (
    PUBLIC_KEY,
    SECAGG_KEYS,
    SECAGG_NODES,
    SECAGG_NONCE,
    SECAGG_SETUP,
    encode_update,
    participant_name,
    update_round,
)
from node.federation.apps.learning.instruction import CONFIG_KEY, Instruction

__all__ = ["SECURE_KEY", "SecureRound", "masked_update", "publish_key", "round_key", "secure_request"]

_log = logging.getLogger(__name__)

SECURE_KEY: Final[str] = "medfed.learning.secure"
"""ConfigRecord in ``context.state``: the node's recent round keys (PEM) and the nonces it has masked for."""
_KEPT_KEYS = 4


def _secure_state(context: Context) -> tuple[list[bytes], list[str]]:
    state = context.state.config_records.get(SECURE_KEY)
    if state is None:
        return [], []
    keys, nonces = state.get("keys", []), state.get("nonces", [])
    if not isinstance(keys, list) or not isinstance(nonces, list):
        raise ConflictError(detail="damaged secure-aggregation state", hints=[SECURE_KEY])
    return [k for k in keys if isinstance(k, bytes)], [n for n in nonces if isinstance(n, str)]


def publish_key(context: Context) -> ConfigRecord:
    """A fresh round key, kept (the last few) in the job's context; its public half for the reply."""
    keys, nonces = _secure_state(context)
    key = SealingKey.generate()
    context.state[SECURE_KEY] = ConfigRecord({"keys": [*keys, key.to_pem()][-_KEPT_KEYS:], "nonces": nonces})
    return ConfigRecord({PUBLIC_KEY: key.public_key().to_bytes()})


@dataclass(frozen=True, slots=True)
class SecureRound:
    """The masking a train instruction asks for: its nonce and the participants with their public keys."""

    nonce: str
    nodes: list[int]
    keys: list[bytes]


def secure_request(message: Message) -> SecureRound | None:
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
    return SecureRound(nonce, [int(n) for n in nodes], [k for k in keys if isinstance(k, bytes)])


def round_key(context: Context, request: SecureRound) -> SealingKey:
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


def masked_update(
    context: Context,
    request: SecureRound,
    own: SealingKey,
    instruction: Instruction,
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
