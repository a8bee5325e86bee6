"""An in-process :class:`~coordinator.federation.transport.Transport` for tests, benchmarks and the demo.

Each node is an *endpoint*: a callable that takes a serialised instruction and the job id and returns
the serialised reply (in tests, a node's ``ClientAppHost.handle`` bound to the jobs that node accepted;
the coordinator package cannot import the node package, so the caller does the binding). Every node has
its own worker threads, so nodes work concurrently and one node can serve two jobs at once. Replies wait
in memory until pulled; :meth:`InMemoryTransport.wait` blocks on a condition variable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Protocol, Self

from common.errors import NotFoundError

__all__ = ["Endpoint", "InMemoryTransport"]

_log = logging.getLogger(__name__)


class Endpoint(Protocol):
    """A node as the in-memory transport sees it."""

    def __call__(self, payload: bytes, *, job_id: str) -> bytes:
        """The serialised reply to one serialised instruction of job ``job_id``."""
        ...


class InMemoryTransport:
    """Delivers messages to in-process endpoints on per-node worker threads; thread-safe."""

    def __init__(self, endpoints: Mapping[int, Endpoint], *, workers_per_node: int = 2) -> None:
        if workers_per_node < 1:
            raise ValueError("workers_per_node must be at least 1")
        self._endpoints = dict(endpoints)
        self._online = set(self._endpoints)
        self._workers = {
            node_id: ThreadPoolExecutor(max_workers=workers_per_node, thread_name_prefix="medfed-node")
            for node_id in self._endpoints
        }
        self._replies: dict[tuple[str, str], bytes] = {}
        self._arrived = threading.Condition()
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting messages and wait for the deliveries under way."""
        with self._arrived:
            self._closed = True
        for workers in self._workers.values():
            workers.shutdown(wait=True, cancel_futures=True)

    def set_online(self, node_id: int, online: bool) -> None:
        """Make a node eligible or not (a node that went away stays reachable for messages already queued)."""
        if node_id not in self._endpoints:
            raise NotFoundError(detail="no such node endpoint")
        with self._arrived:
            if online:
                self._online.add(node_id)
            else:
                self._online.discard(node_id)

    # --- Transport --------------------------------------------------------------------------------

    def node_ids(self) -> list[int]:
        """The online nodes, ascending."""
        with self._arrived:
            return sorted(self._online)

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
        """Hand the message to the node's workers; raise ``NotFoundError`` for an unknown node."""
        workers = self._workers.get(node_id)
        if workers is None:
            raise NotFoundError(detail="no such node endpoint")
        with self._arrived:
            if self._closed:
                raise RuntimeError("the transport is closed")
        workers.submit(self._deliver, self._endpoints[node_id], job_id, message_id, payload, deadline)

    def pull(self, *, job_id: str, message_ids: Sequence[str]) -> dict[str, bytes]:
        """Take the replies that have arrived for these messages (each is returned once)."""
        with self._arrived:
            found: dict[str, bytes] = {}
            for message_id in message_ids:
                reply = self._replies.pop((job_id, message_id), None)
                if reply is not None:
                    found[message_id] = reply
            return found

    def wait(self, *, job_id: str, message_ids: Sequence[str], timeout: float) -> None:
        """Block until a reply to one of these messages is waiting, or ``timeout`` s pass."""
        keys = [(job_id, message_id) for message_id in message_ids]
        with self._arrived:
            self._arrived.wait_for(lambda: any(key in self._replies for key in keys), timeout=max(0.0, timeout))

    # --- internals --------------------------------------------------------------------------------

    def _deliver(
        self, endpoint: Endpoint, job_id: str, message_id: str, payload: bytes, deadline: float | None
    ) -> None:
        if deadline is not None and time.time() > deadline:
            return  # nobody waits for this reply any more
        try:
            reply = endpoint(payload, job_id=job_id)
        except Exception as exc:
            # A node-side exception means there is no reply; the Grid's wait ends at its timeout.
            _log.warning("a node endpoint raised %s; no reply", type(exc).__name__)
            return
        with self._arrived:
            if deadline is not None and time.time() > deadline:
                return
            self._replies[(job_id, message_id)] = reply
            self._arrived.notify_all()
