"""Enrolment and identity on the channel: the CA a node pins, the one-time-code enrolment, ``whoami``.

- ``GET /channel/v1/ca`` (public): the coordinator's CA certificate (PEM) and nothing else. A node
  fetches it before it trusts anything, and checks it against the fingerprint in its enrolment code.
- ``POST /channel/v1/enrol`` (public, authenticated by the one-time code): registers the node's
  Ed25519 and X25519 public keys under the name the code was issued for, and answers with the node's
  ids and the coordinator's public signing key. Using the code and registering the node are one
  transaction: a refusal (unknown, used or expired code, or a node name other than the code's) is a
  401 with the catalog message and changes nothing.
- ``POST /channel/v1/whoami`` (a signed node request): the node id the signature belongs to.

Failed enrolment attempts are limited per client address by :class:`FailureLimiter`, in memory and
per process (enough for one coordinator process; the codes themselves are 256-bit secrets, so this
guards the database and the logs more than the codes). While an address is over the limit, its
attempts are refused with the same 401 without the code being looked at. Behind a reverse proxy every
node shares the proxy's address, so the limit then applies to all of them together.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from common.crypto import SealPublicKey, VerifyKey
from common.errors import AccessError, ConfigError, ErrorCode
from coordinator.api.deps import EngineDep
from coordinator.api.node_auth import AuthenticatedNode, require_tls
from coordinator.identity import CoordinatorIdentity
from coordinator.store.db import write_transaction
from coordinator.store.enrolment import consume_enrolment_code
from coordinator.store.nodes import MAX_NAME_LENGTH, NodeRecord, register_node

__all__ = ["EnrolRequest", "EnrolResponse", "FailureLimiter", "WhoAmI", "router"]

router = APIRouter(prefix="/channel/v1", dependencies=[Depends(require_tls)])
log = logging.getLogger("medfed.coordinator.enrol")

_MAX_CODE_CHARS = 4096
_UNKNOWN_CLIENT = "unknown"


class FailureLimiter:
    """At most ``max_failures`` failed attempts per client address in any ``window_s`` seconds (thread-safe).

    Memory stays bounded: each address keeps at most ``max_failures`` times, and beyond
    ``max_addresses`` addresses the one that failed least recently is forgotten.
    """

    def __init__(
        self,
        *,
        max_failures: int,
        window_s: float,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_failures = max_failures
        self._window_s = window_s
        self._max_addresses = max_addresses
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        while failures and now - failures[0] >= self._window_s:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def blocked(self, address: str) -> bool:
        """True while ``address`` has ``max_failures`` failures within the window."""
        with self._lock:
            failures = self._recent(address, self._clock())
            return failures is not None and len(failures) >= self._max_failures

    def record_failure(self, address: str) -> None:
        """Count a failed attempt from ``address`` now."""
        with self._lock:
            now = self._clock()
            failures = self._recent(address, now) or deque(maxlen=self._max_failures)
            failures.append(now)
            self._failures.pop(address, None)
            self._failures[address] = failures  # most recent last: eviction takes the oldest first
            while len(self._failures) > self._max_addresses:
                del self._failures[next(iter(self._failures))]


class EnrolRequest(BaseModel):
    """What a node sends to enrol: the printed code, the code's node name and its new public keys."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=_MAX_CODE_CHARS)
    node_name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    public_key: str = Field(min_length=1, max_length=64, description="Ed25519, base64url without padding")
    seal_public_key: str = Field(min_length=1, max_length=64, description="X25519, base64url without padding")
    version: str = Field(min_length=1, max_length=64, description="The node's medfed version")


class EnrolResponse(BaseModel):
    """The enrolled node's ids, the coordinator's public signing key and the network-admin public key (base64url;
    the node pins it: it verifies researchers' certificates and revocation lists; None on a coordinator whose
    data directory predates it, whose nodes then run no jobs until it is initialised again and they re-enrol)."""

    node_id: str
    flower_node_id: int
    coordinator_public_key: str
    network_admin_public_key: str | None = None


class WhoAmI(BaseModel):
    """The node a signed request came from."""

    node_id: str


def _identity(request: Request) -> CoordinatorIdentity:
    identity: CoordinatorIdentity | None = getattr(request.app.state, "identity", None)
    if identity is None:
        raise ConfigError(detail="the coordinator has no identity; run medfed coordinator init")
    return identity


def _limiter(request: Request) -> FailureLimiter:
    limiter: FailureLimiter = request.app.state.enrol_limiter
    return limiter


IdentityDep = Annotated[CoordinatorIdentity, Depends(_identity)]
LimiterDep = Annotated[FailureLimiter, Depends(_limiter)]


@router.get("/ca", name="channel.ca")
def get_ca(identity: IdentityDep) -> Response:
    """The coordinator's CA certificate, PEM."""
    return Response(identity.ca_pem, media_type="application/x-pem-file")


def _register(engine: Engine, body: EnrolRequest) -> NodeRecord:
    """Use the code and register the node in one transaction; any refusal rolls both back."""
    with write_transaction(engine) as conn:
        name = consume_enrolment_code(conn, code=body.code)
        if name != body.node_name.strip():
            raise AccessError(ErrorCode.UNAUTHENTICATED, detail="enrolment refused: node name is not the code's")
        return register_node(
            conn,
            name=name,
            public_key=body.public_key,
            seal_public_key=body.seal_public_key,
            version=body.version,
        )


@router.post("/enrol", name="channel.enrol")
def enrol(
    request: Request, body: EnrolRequest, engine: EngineDep, identity: IdentityDep, limiter: LimiterDep
) -> EnrolResponse:
    """Enrol the node the one-time code was issued for, with the public keys it sent."""
    address = request.client.host if request.client is not None else _UNKNOWN_CLIENT
    if limiter.blocked(address):
        raise AccessError(ErrorCode.UNAUTHENTICATED, detail="enrolment refused: too many failed attempts")
    # Keys in their one canonical spelling, and real points: a malformed key is a 400, not a used code.
    public_key = VerifyKey.from_text(body.public_key).to_text()
    seal_public_key = SealPublicKey.from_text(body.seal_public_key).to_text()
    checked = body.model_copy(update={"public_key": public_key, "seal_public_key": seal_public_key})
    try:
        node = _register(engine, checked)
    except AccessError:
        limiter.record_failure(address)
        raise
    log.info("node enrolled")
    return EnrolResponse(
        node_id=node.id,
        flower_node_id=node.flower_node_id,
        coordinator_public_key=identity.signing_key.public_key().to_text(),
        network_admin_public_key=(
            None if identity.network_admin_public_key is None else identity.network_admin_public_key.to_text()
        ),
    )


@router.post("/whoami", name="channel.whoami")
async def whoami(node: AuthenticatedNode) -> WhoAmI:
    """The id of the node whose key signed this request."""
    return WhoAmI(node_id=node.id)
