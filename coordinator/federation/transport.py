"""What the coordinator's Flower Grid needs from the node channel: push, pull, wait, and who is there.

The network channel (long-poll over TLS, persistence until acknowledged, reconnects) implements this
protocol; :class:`~coordinator.federation.memory.InMemoryTransport` implements it in-process for tests
and benchmarks. Payloads are opaque bytes (Flower messages serialised by :mod:`common.flower`); the
transport routes them by job, node and message id and never looks inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["Transport"]


class Transport(Protocol):
    """The node channel as the Grid sees it; every method is safe to call from several threads."""

    def node_ids(self) -> list[int]:
        """Flower node ids of the nodes currently eligible for messages (online, enrolled)."""
        ...

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
        """Queue ``payload`` (message ``message_id`` of job ``job_id``) for node ``node_id``.

        ``round`` is the strategy's server round when the message names one. ``deadline`` is a Unix time
        after which nobody waits for the reply: the transport may drop the message or the reply then.
        Raises :class:`~common.errors.NotFoundError` when the channel does not know ``node_id``; the Grid
        then treats the node as not eligible.
        """
        ...

    def pull(self, *, job_id: str, message_ids: Sequence[str]) -> dict[str, bytes]:
        """Replies that have arrived for these messages, keyed by the id of the message each answers.

        A reply is returned at least once; the Grid asks only for replies it has not received yet, so
        the transport may forget a reply once it has returned it.
        """
        ...

    def wait(self, *, job_id: str, message_ids: Sequence[str], timeout: float) -> None:
        """Block until a reply to any of these messages is available to :meth:`pull`, or ``timeout`` s pass.

        Returns at once when one is already available. Implementations block on a condition or event,
        never by sleeping in a polling loop.
        """
        ...
