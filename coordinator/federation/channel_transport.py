"""The Grid's :class:`~coordinator.federation.transport.Transport` over the persisted node channel.

A pushed message is stored in ``channel_message`` until the node acknowledges it (so a node that
reconnects, or a coordinator that restarts, loses nothing) and the node's long-poll is woken. Replies
are stored by the channel's reply route, de-duplicated by the message they answer, and read back here.
Round messages carry the round's deadline: undelivered at the deadline, they are dropped (the store
does that when the node next polls) and the node counts as late.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine

from common.errors import NotFoundError
from coordinator.federation.notifier import ChannelNotifier
from coordinator.store import messages, nodes
from coordinator.store.db import now_micros, write_transaction

__all__ = ["ChannelTransport"]


class ChannelTransport:
    """Transport for one coordinator process: its database and its notifier."""

    def __init__(self, engine: Engine, notifier: ChannelNotifier, *, offline_after_s: float) -> None:
        self._engine = engine
        self._notifier = notifier
        self._offline_after_s = offline_after_s

    def node_ids(self) -> list[int]:
        """Flower ids of enrolled nodes heard from within the offline window."""
        now = now_micros()
        return sorted(
            record.flower_node_id
            for record in nodes.list_nodes(self._engine, status=nodes.NodeStatus.ENROLLED)
            if record.is_online(now=now, offline_after_s=self._offline_after_s)
        )

    def push(
        self,
        *,
        job_id: str,
        round: int | None,
        node_id: int,
        message_id: str,
        payload: bytes,
        deadline: float | None,
    ) -> None:
        """Persist the message for the node and wake its long-poll."""
        with write_transaction(self._engine) as conn:
            try:
                record = nodes.get_node_by_flower_id(conn, flower_node_id=node_id)
            except NotFoundError:
                raise NotFoundError(detail="no enrolled node with that Flower id") from None
            messages.enqueue_message(
                conn,
                message_id=message_id,
                node_id=record.id,
                payload=payload,
                job_id=job_id,
                round=round,
                deadline_at=int(deadline * 1_000_000) if deadline is not None else None,
            )
        self._notifier.message_ready(record.id)

    def pull(self, *, job_id: str, message_ids: Sequence[str]) -> dict[str, bytes]:
        """Stored replies to these messages."""
        if not message_ids:
            return {}
        return {
            reply.message_id: reply.payload for reply in messages.fetch_replies(self._engine, message_ids=message_ids)
        }

    def wait(self, *, job_id: str, message_ids: Sequence[str], timeout: float) -> None:
        """Block until a reply of this job arrives (or one is already stored), at most ``timeout`` s."""
        generation = self._notifier.reply_generation(job_id)
        if self.pull(job_id=job_id, message_ids=message_ids):
            return
        self._notifier.wait_for_reply(job_id, after_generation=generation, timeout=timeout)
