"""The coordinator's ``flwr.serverapp.Grid``: any Flower strategy runs unchanged over medfed's node channel.

One :class:`MedfedGrid` serves one job. It talks to the nodes through a
:class:`~coordinator.federation.transport.Transport` and, compared with Flower's own grids:

* stamps every pushed message with the job's run id (:func:`common.flower.flower_run_id` of the job id)
  and a fresh message id, then validates it with Flower's own validator; the process keeps a sentinel
  ``TaskIdentity`` (see :mod:`common.flower`), so jobs run side by side in threads;
* keeps node ids clear of Flower's reserved ids (0 and 1): the transport's reserved ids are never
  reported, and a message addressed to one is refused; a message for a node that is not eligible is not
  pushed and its id is not returned (as Flower's link state does);
* hands the transport the round (the strategy's ``server-round`` config value, when there is one) and a
  deadline;
* accepts a reply only when Flower's validator passes it and it comes from the node the message went to,
  for this run; returns replies in node-id order whatever order they arrived in, so aggregation is
  reproducible;
* ``send_and_receive`` never waits forever: ``timeout=None`` means ``max_timeout`` (Flower's grids wait
  forever), and a job ``deadline`` caps every wait; replies that arrive after their wait are discarded.
  ``get_node_ids`` raises :class:`DeadlineExceededError` past the deadline, which ends Flower's
  otherwise endless wait for ``min_available_nodes``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Final

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from common.errors import ConflictError, InputError, NotFoundError
from common.flower import (
    Run,
    assign_message_id,
    empty_run,
    ensure_task_identity,
    flower_run_id,
    instruction_problems,
    is_reserved_node_id,
    message_from_bytes,
    message_to_bytes,
    reply_problems,
    stamp_run_id,
)
from coordinator.federation.transport import Transport

__all__ = ["DEFAULT_MAX_TIMEOUT", "DeadlineExceededError", "IncompleteResultError", "MedfedGrid", "server_round"]

DEFAULT_MAX_TIMEOUT: Final[float] = 3600.0
"""The longest one ``send_and_receive`` waits when the caller gives no timeout (Flower's strategy default)."""

_log = logging.getLogger(__name__)


class DeadlineExceededError(ConflictError):
    """The job's deadline has passed; the Grid sends nothing more for it."""


class IncompleteResultError(ConflictError):
    """Too few nodes answered for the result to be right, so a job reports nothing."""


def server_round(message: Message) -> int | None:
    """The ``server-round`` a Flower strategy put in the message's config, if any."""
    if not message.has_content():
        return None
    for record in message.content.config_records.values():
        value = record.get("server-round")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


class MedfedGrid(Grid):
    """A Flower Grid for one job over a medfed :class:`~coordinator.federation.transport.Transport`."""

    def __init__(
        self,
        transport: Transport,
        *,
        job_id: str,
        max_timeout: float = DEFAULT_MAX_TIMEOUT,
        deadline: float | None = None,
    ) -> None:
        """``deadline`` is a Unix time after which the job sends and waits for nothing more."""
        if not max_timeout > 0:
            raise ValueError("max_timeout must be positive")
        ensure_task_identity()
        self._transport = transport
        self._job_id = job_id
        self._max_timeout = max_timeout
        self._deadline = deadline
        self._run = empty_run(flower_run_id(job_id))
        self._lock = threading.Lock()
        # Message id -> node id it went to, for messages whose reply is still expected.
        self._pending: dict[str, int] = {}

    @property
    def job_id(self) -> str:
        """The medfed job this Grid serves."""
        return self._job_id

    # --- the Grid ABC -----------------------------------------------------------------------------

    def set_run(self, run: Run) -> None:
        """Replace the run details; its run id must be the job's (it is derived from the job id)."""
        if not isinstance(run, Run):
            raise TypeError(f"`run` must be an instance of Run, got {type(run).__name__}")
        if run.run_id != self._run.run_id:
            raise ValueError("a medfed Grid's run id is derived from its job id and cannot change")
        self._run = run

    @property
    def run(self) -> Run:
        """A copy of the run details."""
        return Run(**vars(self._run))

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """A new instruction (the same as Flower's ``Message(...)``; the run id is stamped on push)."""
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> list[int]:
        """Eligible node ids in ascending order, without Flower's reserved ids."""
        self._check_deadline()
        node_ids = set(self._transport.node_ids())
        reserved = {node_id for node_id in node_ids if is_reserved_node_id(node_id)}
        if reserved:
            _log.warning("the transport reported %d reserved node id(s); they are left out", len(reserved))
        return sorted(node_ids - reserved)

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        """Stamp, validate and push each message; return the ids of those pushed."""
        return self._push(messages, wait_until=None)

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        """The replies that have arrived for these messages, in node-id order."""
        wanted = list(dict.fromkeys(message_ids))
        if not wanted:
            return []
        replies: list[Message] = []
        for message_id, payload in self._transport.pull(job_id=self._job_id, message_ids=wanted).items():
            reply = self._accept(message_id, payload)
            if reply is not None:
                replies.append(reply)
        return _in_node_order(replies)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        """Push the messages and wait up to ``timeout`` s for their replies; return those received, in node order.

        ``timeout=None`` waits at most ``max_timeout``; the job deadline caps either.
        """
        wait = self._max_timeout if timeout is None else max(0.0, min(timeout, self._max_timeout))
        if self._deadline is not None:
            wait = max(0.0, min(wait, self._deadline - time.time()))
        ends = time.monotonic() + wait
        outstanding = self._push(messages, wait_until=time.time() + wait)
        received: list[Message] = []
        while outstanding:
            replies = self.pull_messages(outstanding)
            received.extend(replies)
            answered = {reply.metadata.reply_to_message_id for reply in replies}
            outstanding = [message_id for message_id in outstanding if message_id not in answered]
            remaining = ends - time.monotonic()
            if not outstanding or remaining <= 0:
                break
            self._transport.wait(job_id=self._job_id, message_ids=outstanding, timeout=remaining)
        if outstanding:
            with self._lock:
                for message_id in outstanding:
                    self._pending.pop(message_id, None)
            _log.info("%d of %d replies did not arrive in time", len(outstanding), len(outstanding) + len(received))
        return _in_node_order(received)

    # --- internals --------------------------------------------------------------------------------

    def _check_deadline(self) -> None:
        if self._deadline is not None and time.time() >= self._deadline:
            raise DeadlineExceededError(detail="the job's deadline has passed")

    def _push(self, messages: Iterable[Message], *, wait_until: float | None) -> list[str]:
        """Validate every message first (so a bad one pushes none), then push those for eligible nodes."""
        self._check_deadline()
        messages = list(messages)
        for message in messages:
            if is_reserved_node_id(message.metadata.dst_node_id):
                raise ValueError("a message may not be addressed to a reserved node id")
            # A driver may name its messages (deterministic ids for resumable rounds); others get fresh ids.
            assign_message_id(message, message.metadata.message_id or None)
            stamp_run_id(message, self._run.run_id)
            problems = instruction_problems(message)
            if problems:
                raise ValueError(f"invalid message: {'; '.join(problems)}")
        eligible = set(self._transport.node_ids())
        pushed: list[str] = []
        for message in messages:
            metadata = message.metadata
            if metadata.dst_node_id not in eligible:
                continue
            deadline = metadata.created_at + metadata.ttl
            for limit in (wait_until, self._deadline):
                if limit is not None:
                    deadline = min(deadline, limit)
            with self._lock:
                self._pending[metadata.message_id] = metadata.dst_node_id
            try:
                self._transport.push(
                    job_id=self._job_id,
                    round=server_round(message),
                    node_id=metadata.dst_node_id,
                    message_id=metadata.message_id,
                    payload=message_to_bytes(message),
                    deadline=deadline,
                )
            except NotFoundError:
                # The node left between node_ids() and push(): the same as not eligible.
                with self._lock:
                    self._pending.pop(metadata.message_id, None)
                continue
            pushed.append(metadata.message_id)
        if len(pushed) < len(messages):
            _log.warning("%d message(s) for nodes that are not eligible were not pushed", len(messages) - len(pushed))
        return pushed

    def _accept(self, message_id: str, payload: bytes) -> Message | None:
        """The reply, if it is a valid reply from the expected node for this run; else None (logged)."""
        with self._lock:
            expected_node = self._pending.get(message_id)
        if expected_node is None:
            return None
        try:
            reply = message_from_bytes(payload)
        except InputError:
            _log.warning("dropped a reply that is not a Flower message")
            return None
        metadata = reply.metadata
        if (
            reply_problems(reply)
            or metadata.reply_to_message_id != message_id
            or metadata.src_node_id != expected_node
            or metadata.run_id != self._run.run_id
        ):
            _log.warning("dropped a reply that does not answer its message")
            return None
        with self._lock:
            self._pending.pop(message_id, None)
        return reply


def _in_node_order(replies: Sequence[Message]) -> list[Message]:
    return sorted(replies, key=lambda reply: (reply.metadata.src_node_id, reply.metadata.reply_to_message_id))
