"""Which other nodes a message asks this node to mask for, so that none of them is a revoked node.

A secure sum's masks cancel only over the round's participants, and the coordinator names them. A
coordinator that kept a revoked node in a round (compromised, or simply behind) would have every honest
node mask with that node's round key: the revoked node then takes part in the sum, and with the
coordinator's help can learn what the pairwise masks hide. So before an app reads a message, the channel
asks :func:`round_participants` for the nodes the message names and refuses the message (``node_revoked``)
when the node's newest revocation list names one of them (:class:`~node.trust.RevocationBook`).

It reads the same fields the apps read:

- ``analysis`` (and ``distinct_count``) step 2, ``secure_aggregation: mask``: ``participants`` and the keys
  of ``public_keys`` in the request (:class:`common.analytics.secure.SecureMaskRequest`; participants are
  Flower node ids as text);
- learning ``train`` under secure aggregation: ``secagg-nodes`` in the ``config`` record (Flower node ids;
  :mod:`common.privacy.secure_updates`).

A message the app would refuse as malformed names no one here; the app refuses it itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flwr.app import Message

from common.analytics.task import RECORD, REQUEST_KEY, from_wire
from common.privacy.secure_updates import SECAGG_NODES

__all__ = ["Participants", "round_participants"]

CONFIG_KEY = "config"  # the learning apps' record (node/federation/apps/learning/instruction.py)
_MAX_PARTICIPANTS = 10_000


@dataclass(frozen=True, slots=True)
class Participants:
    """The nodes a secure round names: by Flower node id, and by any other name the coordinator used."""

    flower_node_ids: frozenset[int]
    names: frozenset[str]


def _split(values: Iterable[object]) -> Participants:
    ids: set[int] = set()
    names: set[str] = set()
    for value in values:
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, str):
            if value.isdecimal() and len(value) <= 20:
                ids.add(int(value))
            else:
                names.add(value)
    return Participants(frozenset(ids), frozenset(names))


def _analysis(message: Message) -> list[object]:
    record = message.content.config_records.get(RECORD)
    text = None if record is None else record.get(REQUEST_KEY)
    if not isinstance(text, str):
        return []
    try:
        request = from_wire(text)
    except ValueError:
        return []
    if not isinstance(request, dict) or request.get("secure_aggregation") != "mask":
        return []
    named: list[object] = []
    participants, keys = request.get("participants"), request.get("public_keys")
    if isinstance(participants, list):
        named += participants[:_MAX_PARTICIPANTS]
    if isinstance(keys, dict):
        named += list(keys)[:_MAX_PARTICIPANTS]
    return named


def _learning(message: Message) -> list[object]:
    config = message.content.config_records.get(CONFIG_KEY)
    nodes = None if config is None else config.get(SECAGG_NODES)
    return list(nodes[:_MAX_PARTICIPANTS]) if isinstance(nodes, list) else []


def round_participants(message: Message) -> Participants | None:
    """The nodes ``message`` asks this node to mask for (None: it asks for no masking)."""
    named = _analysis(message) + _learning(message)
    return _split(named) if named else None
