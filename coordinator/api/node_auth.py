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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from common.crypto import VerifyKey, verify_request
from common.errors import AccessError, ErrorCode, InputError, NotFoundError
from coordinator.store.db import write_transaction
from coordinator.store.nodes import NodeRecord, NodeStatus, get_node
from coordinator.store.nonces import check_and_insert_nonce, prune_nonces

__all__ = [
    "MAX_SKEW_S",
    "NONCE_RETENTION_S",
    "PRUNE_EVERY_S",
    "AuthenticatedNode",
    "NoncePruner",
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
            try:
                node = get_node(conn, node_id=key_id)
            except NotFoundError:
                return None
            if node.status is not NodeStatus.ENROLLED:
                return None
            try:
                key = VerifyKey.from_text(node.public_key)
            except InputError:  # pragma: no cover - register_node stores only 32-byte keys
                return None
            found[key_id] = node
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
