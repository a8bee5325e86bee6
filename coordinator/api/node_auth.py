"""Who is calling: signed node requests on the channel routes, over TLS only.

A node signs every request with its Ed25519 key (:func:`common.crypto.sign_request`: method, raw
request target, SHA-256 of the raw body, timestamp, nonce, key id = node id). :data:`AuthenticatedNode`
is the dependency a channel route takes to get the calling node's :class:`NodeRecord`; it refuses
with 401 and the catalog message, echoing nothing, when

- a header is missing, repeated or malformed, or the timestamp is more than :data:`MAX_SKEW_S` from
  this server's clock;
- the key id names no node, or a revoked one;
- the signature does not verify over what arrived (another key, a changed body, path or method);
- the nonce was seen before for that node (a replay). Nonces are recorded only after the signature
  verified, so strangers cannot fill the table.

Channel routes answer over TLS only (:func:`require_tls`, 403 otherwise): ``medfed coordinator start``
always serves HTTPS, and this check keeps the channel closed should the app ever be mounted behind a
plain-HTTP server. In-process tests use ``TestClient(app, base_url="https://testserver")``.

Nonces are kept ``2 * MAX_SKEW_S`` after they were seen (the window ``verify_request`` asks of a
store that prunes by arrival time) and pruned opportunistically: after a nonce is recorded, at most
once every :data:`PRUNE_EVERY_S` per process, in the request's worker thread. No timer, so an app
without a lifespan (tests, embedding) prunes the same way.

The channel's poll, the one request every node makes all the time, takes :data:`VerifiedNode` instead:
the signature is checked against the node's key as this process last read it (:class:`NodeKeys`; read
from the store when not known yet or when it does not verify), without a database hop, and the route
calls :meth:`VerifiedRequest.confirm` first thing in its own write transaction. That re-reads the node
(still enrolled, with the key that verified) and records the nonce, so a revoked node or a replay is
refused as before and the poll changes nothing: the same checks, one transaction instead of two.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Connection, Engine
from starlette.concurrency import run_in_threadpool

from common.crypto import VerifyKey, refused_request, verify_request
from common.errors import AccessError, ErrorCode, InputError, NotFoundError
from coordinator.store.db import write_transaction
from coordinator.store.nodes import NodeRecord, NodeStatus, get_node
from coordinator.store.nonces import check_and_insert_nonce, prune_nonces

__all__ = [
    "MAX_SKEW_S",
    "NONCE_RETENTION_S",
    "PRUNE_EVERY_S",
    "AuthenticatedNode",
    "NodeKeys",
    "NoncePruner",
    "VerifiedNode",
    "VerifiedRequest",
    "authenticate_node",
    "require_tls",
]

MAX_SKEW_S = 300
NONCE_RETENTION_S = 2 * MAX_SKEW_S
PRUNE_EVERY_S = 60.0


class NoncePruner:
    """Deletes nonces older than :data:`NONCE_RETENTION_S`, at most once per ``every_s`` (thread-safe)."""

    def __init__(self, *, every_s: float = PRUNE_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s = every_s
        self._clock = clock
        self._last: float | None = None
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether :meth:`maybe_prune` would prune now (a cheap look, to spare a worker thread otherwise)."""
        last = self._last
        return last is None or self._clock() - last >= self._every_s

    def maybe_prune(self, engine: Engine) -> int:
        """Prune when the last prune is ``every_s`` old (or there was none); returns how many nonces went."""
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self._every_s:
                return 0
            self._last = now
        return prune_nonces(engine, window_s=NONCE_RETENTION_S)


def require_tls(request: Request) -> None:
    """Refuse (403) a request that did not arrive over TLS."""
    if request.url.scheme != "https":
        raise AccessError(ErrorCode.FORBIDDEN, detail="the channel answers over TLS only")


def _request_target(request: Request) -> str:
    """The raw request target as sent (path and query), the string the node signed."""
    scope = request.scope
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else request.url.path
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def authenticate_node(
    engine: Engine,
    headers: Mapping[str, str],
    *,
    method: str,
    path_and_query: str,
    body: bytes,
    now: int,
    pruner: NoncePruner | None = None,
) -> NodeRecord:
    """The enrolled node that signed this request; AccessError(UNAUTHENTICATED) otherwise.

    Blocking (database look-ups): async callers run it in a worker thread.
    """
    found: dict[str, NodeRecord] = {}
    # One transaction for the key look-up and the nonce: this runs on every channel request.
    with write_transaction(engine) as conn:

        def lookup_key(key_id: str) -> VerifyKey | None:
            enrolled = _enrolled_key(conn, key_id)
            if enrolled is None:
                return None
            found[key_id], key = enrolled
            return key

        def seen_nonce(key_id: str, nonce: str, _timestamp: int) -> bool:
            return check_and_insert_nonce(conn, key_id=key_id, nonce=nonce)

        key_id = verify_request(
            headers,
            method=method,
            path_and_query=path_and_query,
            body=body,
            lookup_key=lookup_key,
            now=now,
            max_skew_s=MAX_SKEW_S,
            seen_nonce=seen_nonce,
        )
    if pruner is not None:
        pruner.maybe_prune(engine)
    return found[key_id]


def _enrolled_key(db: Engine | Connection, node_id: str) -> tuple[NodeRecord, VerifyKey] | None:
    """The node and the key its requests verify with; None when there is no such node or it is not enrolled."""
    try:
        node = get_node(db, node_id=node_id)
    except NotFoundError:
        return None
    if node.status is not NodeStatus.ENROLLED:
        return None
    try:
        return node, VerifyKey.from_text(node.public_key)
    except InputError:  # pragma: no cover - register_node stores only 32-byte keys
        return None


async def _authenticated_node(request: Request) -> NodeRecord:
    require_tls(request)
    body = await request.body()  # cached by Starlette: the route's body model reads the same bytes
    engine: Engine = request.app.state.engine
    pruner: NoncePruner | None = getattr(request.app.state, "nonce_pruner", None)
    node = await run_in_threadpool(
        authenticate_node,
        engine,
        request.headers,
        method=request.method,
        path_and_query=_request_target(request),
        body=body,
        now=int(time.time()),
        pruner=pruner,
    )
    return node


AuthenticatedNode = Annotated[NodeRecord, Depends(_authenticated_node)]


class NodeKeys:
    """The nodes' public keys as this process last read them (thread-safe): a hint for verifying a signature
    without a database hop, never the last word — :meth:`VerifiedRequest.confirm` checks the stored key."""

    def __init__(self) -> None:
        self._keys: dict[str, VerifyKey] = {}
        self._lock = threading.Lock()

    def cached(self, node_id: str) -> VerifyKey | None:
        """The key last read for ``node_id`` (None: not read yet)."""
        with self._lock:
            return self._keys.get(node_id)

    def read(self, engine: Engine, node_id: str) -> VerifyKey | None:
        """Read the enrolled node's key from the store and keep it (None, and forgotten: no such enrolled node)."""
        enrolled = _enrolled_key(engine, node_id)
        key = None if enrolled is None else enrolled[1]
        with self._lock:
            if key is None:
                self._keys.pop(node_id, None)
            else:
                self._keys[node_id] = key
        return key


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """A node request whose signature verified with ``key``; :meth:`confirm` finishes the checks."""

    node_id: str
    key: VerifyKey
    nonce: str

    def confirm(self, conn: Connection) -> NodeRecord:
        """In the caller's write transaction: the node is still enrolled under the key that verified, and the
        nonce is recorded as new; AccessError(UNAUTHENTICATED) otherwise (the caller's transaction rolls back)."""
        enrolled = _enrolled_key(conn, self.node_id)
        if enrolled is None or enrolled[0].public_key != self.key.to_text():
            raise refused_request("unknown key id")
        if check_and_insert_nonce(conn, key_id=self.node_id, nonce=self.nonce):
            raise refused_request("nonce was used before (replay)")
        return enrolled[0]


async def _verified_request(request: Request) -> VerifiedRequest:
    require_tls(request)
    body = await request.body()
    engine: Engine = request.app.state.engine
    keys: NodeKeys = request.app.state.node_keys
    asked: list[str] = []
    used: list[VerifyKey | None] = []
    nonces: list[str] = []

    def verify(lookup_key: Callable[[str], VerifyKey | None]) -> str:
        def remember(key_id: str) -> VerifyKey | None:
            asked.append(key_id)
            used.append(lookup_key(key_id))
            return used[-1]

        def note_nonce(_key_id: str, nonce: str, _timestamp: int) -> bool:
            nonces.append(nonce)
            return False  # recorded by VerifiedRequest.confirm, in the route's transaction

        return verify_request(
            request.headers,
            method=request.method,
            path_and_query=_request_target(request),
            body=body,
            lookup_key=remember,
            now=int(time.time()),
            max_skew_s=MAX_SKEW_S,
            seen_nonce=note_nonce,
        )

    try:
        key_id = verify(keys.cached)
    except AccessError:
        if not asked:  # refused before any key was needed: malformed, or out of its time window
            raise
        # Not read yet, or the node's key changed since: read it and verify once more.
        fresh = await run_in_threadpool(keys.read, engine, asked[-1])
        key_id = verify(lambda _key_id: fresh)
    pruner: NoncePruner | None = getattr(request.app.state, "nonce_pruner", None)
    if pruner is not None and pruner.due():
        await run_in_threadpool(pruner.maybe_prune, engine)
    key = used[-1]
    assert key is not None  # the signature verified with it
    return VerifiedRequest(node_id=key_id, key=key, nonce=nonces[-1])


VerifiedNode = Annotated[VerifiedRequest, Depends(_verified_request)]
