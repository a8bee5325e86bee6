"""Wake-ups for relay long-polls: a message queued for a node wakes the poll waiting for that kind of message.

Both sides run in the web server's event loop (the relay routes are async), so one ``asyncio.Event``
per ``(node, kind, correlation)`` is enough. A poll *arms* its event before it looks at the store and
waits on it only if it found nothing, so a message queued between the look and the wait is never
missed: its wake-up sets the armed event, and the wait returns at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from coordinator.federation.notifier import wait_and_clear

__all__ = ["RelayNotifier"]

Key = tuple[str, str, str | None]


class RelayNotifier:
    """Events keyed by (receiving node, kind, correlation or ``None`` for any)."""

    def __init__(self) -> None:
        self._events: dict[Key, asyncio.Event] = {}
        self._armed: dict[Key, int] = {}

    def queued(self, node_id: str, kind: str, correlation: str) -> None:
        """A message was queued: wake whoever waits for it (by correlation, or for any of its kind)."""
        for key in ((node_id, kind, correlation), (node_id, kind, None)):
            event = self._events.get(key)
            if event is not None:
                event.set()

    @asynccontextmanager
    async def armed(self, node_id: str, kind: str, correlation: str | None) -> AsyncIterator[asyncio.Event]:
        """An event that is set by any message queued for this key while the context is open."""
        key = (node_id, kind, correlation)
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = asyncio.Event()
        self._armed[key] = self._armed.get(key, 0) + 1
        try:
            yield event
        finally:
            self._armed[key] -= 1
            if not self._armed[key]:
                del self._armed[key]
                del self._events[key]

    @staticmethod
    async def wait(event: asyncio.Event, timeout: float) -> None:
        """Return when ``event`` is set or ``timeout`` passes; the event is cleared again."""
        await wait_and_clear(event, timeout)
