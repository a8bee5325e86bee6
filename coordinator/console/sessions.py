"""Console sessions: a random id in a cookie, mapped in memory to the principal that logged in.

The cookie never holds the API token: a stolen cookie dies with its session (logout, idle or
absolute expiry, a coordinator restart), while the token stays with its owner. Ids are 256 bits
from :mod:`secrets` and kept only as their SHA-256, so the table itself holds nothing replayable.
Memory stays bounded: expired sessions are pruned on every login, and beyond ``max_sessions``
the session closest to its expiry is ended.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from coordinator.store.tokens import Principal

__all__ = ["SessionStore"]


@dataclass(slots=True)
class _Session:
    principal: Principal
    expires_at: float  # absolute: at most ``ttl_s`` after login
    idle_until: float  # sliding: ``idle_s`` after the last request


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Logged-in console sessions (thread-safe)."""

    def __init__(
        self,
        *,
        ttl_s: float = 8 * 3600.0,
        idle_s: float = 30 * 60.0,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self._idle_s = idle_s
        self._max_sessions = max_sessions
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def create(self, principal: Principal) -> str:
        """Start a session for ``principal``; returns its id (for the cookie only)."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._prune(now)
            while len(self._sessions) >= self._max_sessions:
                oldest = min(self._sessions, key=lambda key: self._sessions[key].expires_at)
                del self._sessions[oldest]
            self._sessions[_key(session_id)] = _Session(
                principal=principal, expires_at=now + self.ttl_s, idle_until=now + self._idle_s
            )
        return session_id

    def get(self, session_id: str | None) -> Principal | None:
        """The principal of a live session (and the session's idle time restarts); None otherwise."""
        if not session_id or len(session_id) > 100:
            return None
        key = _key(session_id)
        now = self._clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now >= session.expires_at or now >= session.idle_until:
                del self._sessions[key]
                return None
            session.idle_until = now + self._idle_s
            return session.principal

    def end(self, session_id: str | None) -> None:
        """End a session; nothing happens for an unknown one."""
        if session_id:
            with self._lock:
                self._sessions.pop(_key(session_id), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _prune(self, now: float) -> None:
        expired = [k for k, s in self._sessions.items() if now >= s.expires_at or now >= s.idle_until]
        for key in expired:
            del self._sessions[key]
