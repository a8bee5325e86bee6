"""Peers' keys as this node trusts them: fetched from the coordinator, verified against the pinned key.

The network-admin key is the coordinator key the node pinned at enrolment
(:attr:`node.identity.NodeIdentity.coordinator_public_key`). Only certificates that verify are cached
(for :data:`CACHE_S`), so a key refused once is fetched and checked again on the next exchange, and a
node never seals to, or believes a signature of, a key the network admin did not certify.

A certified node that the node's newest revocation list names — by its id or its key's fingerprint — is
refused ``node_revoked`` on every exchange, cached certificate or not (:class:`~node.trust.RevocationBook`,
read fresh from the node's database, where the channel keeps each list it takes): the node neither answers
it nor sends it anything, even while a coordinator still relays for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from common.crypto import VerifyKey
from common.errors import AccessError, ErrorCode, NotFoundError
from common.locator.certificates import CertifiedNode, verify_certificate
from node.locator.relay import CoordinatorLink, fetch_certificate
from node.trust.revocations import RevocationBook

__all__ = ["CACHE_S", "CertificateBook"]

CACHE_S = 60.0


class CertificateBook:
    """Verified peer keys by node id (thread-safe)."""

    def __init__(
        self,
        link: CoordinatorLink,
        admin_key: VerifyKey,
        *,
        cache_s: float = CACHE_S,
        clock: Callable[[], float] = time.monotonic,
        revocations: RevocationBook | None = None,
    ) -> None:
        self._link = link
        self._revocations = revocations
        self._admin_key = admin_key
        self._cache_s = cache_s
        self._clock = clock
        self._verified: dict[str, tuple[float, CertifiedNode]] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Drop every cached certificate (the next exchange fetches and checks each one again)."""
        with self._lock:
            self._verified.clear()

    def certified(self, node_id: str) -> CertifiedNode:
        """The node's certified keys; AccessError(KEY_NOT_CERTIFIED) when its certificate does not verify,
        AccessError(NODE_REVOKED) when the newest revocation list names the node or its key."""
        revocations = None if self._revocations is None else self._revocations.current()
        if revocations is not None and revocations.node_revoked(node_id=node_id):
            raise AccessError(ErrorCode.NODE_REVOKED, detail="the node is on the revocation list")
        node = self._certified(node_id)
        if revocations is not None and revocations.node_revoked(key_id=node.verify_key.fingerprint()):
            raise AccessError(ErrorCode.NODE_REVOKED, detail="the node's key is on the revocation list")
        return node

    def _certified(self, node_id: str) -> CertifiedNode:
        now = self._clock()
        with self._lock:
            cached = self._verified.get(node_id)
            if cached is not None and now - cached[0] < self._cache_s:
                return cached[1]
        try:
            certificate = fetch_certificate(self._link, node_id)
        except NotFoundError:
            raise AccessError(
                ErrorCode.KEY_NOT_CERTIFIED, detail="the coordinator has no certificate for the node"
            ) from None
        node = verify_certificate(certificate, self._admin_key, node_id=node_id)
        with self._lock:
            self._verified[node_id] = (now, node)
        return node
