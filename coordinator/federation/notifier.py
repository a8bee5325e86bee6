"""Wake-ups between the Grid's worker threads and the channel's long-polls (no polling loops anywhere).

Two directions:
* a message queued for a node (worker thread) wakes that node's waiting long-poll (event loop):
  ``asyncio.Event`` per node, set through ``loop.call_soon_threadsafe``;
* a reply stored (request handler) wakes the Grid waiting for replies of a job (worker thread):
  one ``threading.Condition`` with a per-job generation counter.
"""

from __future__ import annotations

import asyncio
import threading
import time

__all__ = ["ChannelNotifier", "wait_and_clear"]


async def wait_and_clear(event: asyncio.Event, timeout: float) -> None:
    """Return when ``event`` is set or ``timeout`` passes; the event is cleared again either way."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return
    finally:
        event.clear()


class ChannelNotifier:
    """Thread-safe wake-ups for long-polls (async) and reply waiters (threads)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._node_events: dict[str, asyncio.Event] = {}
        self._replies = threading.Condition()
        self._reply_generation: dict[str, int] = {}

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach the web server's event loop (at app start-up)."""
        self._loop = loop

    def _event(self, node_id: str) -> asyncio.Event:
        event = self._node_events.get(node_id)
        if event is None:
            event = self._node_events[node_id] = asyncio.Event()
        return event

    def message_ready(self, node_id: str) -> None:
        """A message was queued for ``node_id``: wake its long-poll. Callable from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(lambda: self._event(node_id).set())

    async def wait_for_message(self, node_id: str, timeout: float) -> None:
        """In the event loop: return when a message is announced for ``node_id`` or ``timeout`` passes."""
        await wait_and_clear(self._event(node_id), timeout)

    def reply_arrived(self, job_id: str) -> None:
        """A reply of ``job_id`` was stored: wake the threads waiting for that job's replies."""
        with self._replies:
            self._reply_generation[job_id] = self._reply_generation.get(job_id, 0) + 1
            self._replies.notify_all()

    def reply_generation(self, job_id: str) -> int:
        """A counter that grows with every reply of ``job_id`` (read before checking the store)."""
        with self._replies:
            return self._reply_generation.get(job_id, 0)

    def wait_for_reply(self, job_id: str, *, after_generation: int, timeout: float) -> None:
        """Block until a reply of ``job_id`` arrives after ``after_generation`` or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._replies:
            while self._reply_generation.get(job_id, 0) == after_generation:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._replies.wait(remaining)
