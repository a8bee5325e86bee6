"""The one adapter over Flower's internals: wire format, identities, message ids, logging.

Everything medfed needs from ``flwr.common.serde``, ``flwr.supercore`` and ``flwr.proto`` goes through
this module, so a Flower upgrade touches one file (``flwr==1.42.*`` is pinned). The public Flower API
(``flwr.app``, ``flwr.clientapp``, ``flwr.serverapp``) is used directly by the federation packages.

Wire format
    :func:`message_to_bytes` / :func:`message_from_bytes` are Flower's own protobuf serde
    (``message_to_proto`` + ``SerializeToString(deterministic=True)``): content, error and every metadata
    field (message id, reply-to id, run id, source and destination node and task ids, group id, type,
    created-at, TTL) survive the round trip.

Identifiers
    Flower node and run ids are unsigned 64-bit on the wire; SQL stores keep them signed. medfed derives
    them deterministically from its own string names with SHA-256 (:func:`flower_node_id`,
    :func:`flower_run_id`) as positive 63-bit integers clear of Flower's reserved values: node id ``0``
    ("not set", rejected by Flower's message validator) and ``1`` (``SUPERLINK_NODE_ID``, the coordinator's
    own id as the source of every instruction). Message ids are ``str(uuid4())``, assigned on push exactly
    as Flower's ``InMemoryGrid.push_messages`` does (:func:`assign_message_id`).

TaskIdentity: the concurrency design
    Flower's ``Message(content, dst_node_id, message_type)`` constructor, which every strategy uses,
    reads the process-global ``flwr.supercore.task_identity.TaskIdentity`` (``run_id``, ``node_id``,
    ``task_id``) and raises ``RuntimeError`` while it is unset. Flower's own runtimes set it once per
    process because they run one ServerApp per process. medfed runs jobs side by side in one coordinator
    process (a count submitted during a FedAvg job is not queued behind it), so it does **not** set the
    identity per job. Instead:

    * :func:`ensure_task_identity` sets a *sentinel* identity once per process (run id
      :data:`SENTINEL_RUN_ID` = 0, node id ``SUPERLINK_NODE_ID``, task id :data:`SENTINEL_TASK_ID`) and
      never changes it afterwards, so threads never race on the global;
    * the job's Grid stamps the job's own run id on every message it pushes (:func:`stamp_run_id`), the
      same way Flower's grids stamp the message id, and nodes refuse a message whose run id is not that
      of the job it arrives for.

    Read in flwr 1.42 before choosing this: ``TaskIdentity`` is read only by the ``Message`` constructor
    for *instruction* messages (reply messages copy the instruction's metadata) and by
    ``flwr.supercore.json_message`` (agent/connector/model task processes, unused here); it is written only
    by Flower's process entry points (``run_serverapp``, ``run_clientapp``, simulation, compat). Nothing
    compares a message's run id with ``TaskIdentity.run_id``; the SuperLink's state checks run ids
    against its own run table, which medfed replaces. Flower's validator requires ``src_node_id`` to be
    ``SUPERLINK_NODE_ID`` on instructions, which the sentinel provides. The alternatives were a warm
    worker process per running job (about 400 MB and a second of start-up each, and results to marshal
    back) and serialising jobs (exactly what the issue rules out).

Logging
    :func:`route_flower_logging` takes Flower's own console handler off the ``flwr`` logger and lets its
    records flow into the standard logging tree with their arguments removed: Flower logs node ids and
    metric values as ``%`` arguments, and medfed logs never carry identifiers.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from enum import IntEnum
from typing import Final
from uuid import UUID, uuid4, uuid5

from flwr.app import Error, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID as _SUPERLINK_NODE_ID

# The banned Flower internals below are allowed here, and only here: this is the one adapter over them.
from flwr.common.serde import message_from_proto, message_to_proto  # noqa: TID251
from flwr.proto.message_pb2 import Message as ProtoMessage  # noqa: TID251
from flwr.server.utils.validator import validate_message
from flwr.supercore.logger import LOGGER_NAME, ConsoleHandler  # noqa: TID251
from flwr.supercore.run import Run  # noqa: TID251
from flwr.supercore.task_identity import TaskIdentity  # noqa: TID251

from common.errors import ErrorCode, InputError

__all__ = [
    "RESERVED_NODE_IDS",
    "SENTINEL_RUN_ID",
    "SENTINEL_TASK_ID",
    "SUPERLINK_NODE_ID",
    "ReplyErrorCode",
    "Run",
    "assign_message_id",
    "deterministic_message_id",
    "empty_run",
    "ensure_task_identity",
    "error_reply",
    "flower_node_id",
    "flower_run_id",
    "instruction_problems",
    "is_reserved_node_id",
    "make_reply",
    "message_from_bytes",
    "message_to_bytes",
    "reply_problems",
    "route_flower_logging",
    "stamp_run_id",
]

SUPERLINK_NODE_ID: Final[int] = _SUPERLINK_NODE_ID
"""The coordinator's node id: the source of every instruction and the destination of every reply."""

RESERVED_NODE_IDS: Final[frozenset[int]] = frozenset({0, SUPERLINK_NODE_ID})
"""Node ids Flower gives a meaning: 0 is "not set" and 1 is the SuperLink (here: the coordinator)."""

SENTINEL_RUN_ID: Final[int] = 0
"""The process-wide ``TaskIdentity.run_id``; every pushed message is stamped with its job's run id instead."""

SENTINEL_TASK_ID: Final[int] = 0
"""The process-wide ``TaskIdentity.task_id`` (travels as ``src_task_id``; nothing reads it)."""

_ID_MASK: Final[int] = (1 << 63) - 1
_identity_lock = threading.Lock()


class ReplyErrorCode(IntEnum):
    """Codes of the error replies a medfed node sends; from 100 up, clear of Flower's own codes (0-8)."""

    INVALID_MESSAGE = 100
    WRONG_RECIPIENT = 101
    MESSAGE_TYPE_REFUSED = 102
    UNKNOWN_APP = 103
    APP_FAILED = 104


_REPLY_REASONS: Final[dict[ReplyErrorCode, str]] = {
    ReplyErrorCode.INVALID_MESSAGE: "The message is not a valid Flower instruction.",
    ReplyErrorCode.WRONG_RECIPIENT: "The message is addressed to another node or job.",
    ReplyErrorCode.MESSAGE_TYPE_REFUSED: "This job does not allow this message type at this node.",
    ReplyErrorCode.UNKNOWN_APP: "No app of this name is installed at this node.",
    ReplyErrorCode.APP_FAILED: "The app failed; the node logged the detail.",
}


# --- wire format --------------------------------------------------------------------------------------


def message_to_bytes(message: Message) -> bytes:
    """Serialise a message with Flower's protobuf serde (deterministic field order)."""
    # bytes(): protobuf ships no type stubs in this environment, so mypy sees SerializeToString as Any.
    return bytes(message_to_proto(message).SerializeToString(deterministic=True))


def message_from_bytes(data: bytes) -> Message:
    """Deserialise a message; raise :class:`InputError` (``invalid_request``) when the bytes are not one."""
    try:
        proto = ProtoMessage.FromString(data)
        return message_from_proto(proto)
    except Exception as exc:
        # Parsing is the whole of this boundary: protobuf raises its DecodeError, Flower ValueError or
        # TypeError for a bad message type or record. The exception text can quote the payload: keep
        # only its type.
        raise InputError(ErrorCode.INVALID_REQUEST, detail=f"not a Flower message ({type(exc).__name__})") from None


# --- identifiers --------------------------------------------------------------------------------------


def _derive_id(label: bytes, name: str, excluded: frozenset[int]) -> int:
    """A positive 63-bit integer from SHA-256 of ``label || counter || name``, skipping ``excluded``."""
    counter = 0
    while True:
        digest = hashlib.sha256(label + counter.to_bytes(4, "big") + name.encode("utf-8")).digest()
        value = int.from_bytes(digest[:8], "big") & _ID_MASK
        if value not in excluded:
            return value
        counter += 1


def flower_node_id(name: str) -> int:
    """The Flower node id of the medfed node called ``name``: stable, positive, 63-bit, never reserved."""
    if not name:
        raise ValueError("a node name is required")
    return _derive_id(b"medfed/flower-node-id/v1\x00", name, RESERVED_NODE_IDS)


def flower_run_id(job_id: str) -> int:
    """The Flower run id of the medfed job ``job_id``: stable, positive, 63-bit, never the sentinel."""
    if not job_id:
        raise ValueError("a job id is required")
    return _derive_id(b"medfed/flower-run-id/v1\x00", job_id, frozenset({SENTINEL_RUN_ID}))


def is_reserved_node_id(node_id: int) -> bool:
    """Whether ``node_id`` is one Flower reserves, or is outside the positive 63-bit range medfed uses."""
    return node_id in RESERVED_NODE_IDS or not 0 < node_id <= _ID_MASK


def empty_run(run_id: int) -> Run:
    """A Flower ``Run`` with only its id set (what a Grid's ``run`` property reports)."""
    return Run.create_empty(run_id)


# --- TaskIdentity -------------------------------------------------------------------------------------


def ensure_task_identity() -> None:
    """Set the sentinel process identity once, so Flower's ``Message`` constructor works in any thread.

    Fields already set (a process started by a Flower runtime) are left as they are. See the module
    docstring for why the identity is a sentinel and the Grid stamps each message's run id.
    """
    with _identity_lock:
        # TaskIdentity's class properties raise while unset; the private fields say whether they are.
        if TaskIdentity._run_id is None:
            TaskIdentity.run_id = SENTINEL_RUN_ID
        if TaskIdentity._node_id is None:
            TaskIdentity.node_id = SUPERLINK_NODE_ID
        if TaskIdentity._task_id is None:
            TaskIdentity.task_id = SENTINEL_TASK_ID


# --- message ids, run ids, validation -----------------------------------------------------------------


def assign_message_id(message: Message, message_id: str | None = None) -> str:
    """Give ``message`` an id (a fresh one unless given), the way Flower's ``InMemoryGrid`` does; return it."""
    message_id = message_id or str(uuid4())
    # Metadata has no public setter for the id: Flower's own grids write the field directly.
    message.metadata.__dict__["_message_id"] = message_id
    return message_id


_MESSAGE_ID_NAMESPACE = UUID("6f1d3c2e-8a4b-5c6d-9e0f-1a2b3c4d5e6f")


def deterministic_message_id(*parts: str | int) -> str:
    """A message id derived from what the message *is* (job, round, attempt, type, node).

    A resumed job re-sends an interrupted round with the same ids, so replies that already arrived
    are used as they are and a node that already answered answers from its kept reply: nothing runs
    twice.
    """
    return str(uuid5(_MESSAGE_ID_NAMESPACE, "/".join(str(part) for part in parts)))


def stamp_run_id(message: Message, run_id: int) -> None:
    """Set the run id of ``message`` (the Grid stamps its job's run id over the sentinel identity)."""
    message.metadata.__dict__["_run_id"] = run_id


def instruction_problems(message: Message) -> list[str]:
    """What Flower's message validator finds wrong with ``message`` as an instruction (empty when valid)."""
    return validate_message(message, is_reply_message=False)


def reply_problems(message: Message) -> list[str]:
    """What Flower's message validator finds wrong with ``message`` as a reply (empty when valid)."""
    return validate_message(message, is_reply_message=True)


def make_reply(instruction: Message, content: RecordDict) -> Message:
    """A reply to ``instruction`` carrying ``content``, with its own message id."""
    reply = Message(content, reply_to=instruction)
    assign_message_id(reply)
    return reply


def error_reply(instruction: Message, code: ReplyErrorCode) -> Message:
    """An error reply to ``instruction`` whose reason is the fixed public sentence for ``code``."""
    reply = Message(Error(code=int(code), reason=_REPLY_REASONS[code]), reply_to=instruction)
    assign_message_id(reply)
    return reply


# --- logging ------------------------------------------------------------------------------------------


_PLACEHOLDER = re.compile(r"%[-#0 +]*(?:\d+|\*)?(?:\.\d+)?[diouxXeEfFgGcrsa%]")


class _TemplateOnly(logging.Filter):
    """Keep a Flower record's message template and drop its arguments (node ids, metric values).

    A template that says nothing without its arguments (``"%s"``, the lines of a result dump) is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        template = str(record.msg).replace("\t", " ").strip()
        record.msg = template
        record.args = None
        return any(char.isalpha() for char in _PLACEHOLDER.sub("", template))


def route_flower_logging(level: int = logging.WARNING) -> None:
    """Send the ``flwr`` logger's records to the standard logging tree, templates only (idempotent).

    Flower's console handler is removed, records at ``level`` and above propagate to the root handlers
    (medfed's JSON formatter), and every record loses its ``%`` arguments on the way.
    """
    flower_logger = logging.getLogger(LOGGER_NAME)
    for handler in list(flower_logger.handlers):
        if isinstance(handler, ConsoleHandler):
            flower_logger.removeHandler(handler)
    if not any(isinstance(existing, _TemplateOnly) for existing in flower_logger.filters):
        flower_logger.addFilter(_TemplateOnly())
    flower_logger.setLevel(level)
    flower_logger.propagate = True
