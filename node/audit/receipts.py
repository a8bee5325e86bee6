"""Chain-head receipts from this node: made on demand, and sent to the coordinator at a fixed interval.

:func:`chain_head_receipt` signs ``{node, seq, hash, time, audit_key}`` of the chain's head with the
node's identity key (format in :mod:`common.audit_receipt`). The channel attaches one to every job
result; :class:`ReceiptSender` posts one to ``/channel/v1/receipts`` every ``interval_s`` (started by
``medfed node start`` on enrolled nodes). A receipt held outside the node is what makes truncation
and rollback detectable (``medfed node audit verify --against RECEIPT``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from sqlalchemy.engine import Engine

from common.audit_receipt import Receipt, sign_receipt
from common.errors import InternalError, MedfedError
from node.audit.entries import AuditKind
from node.store import audit_chain as store

if TYPE_CHECKING:
    from node.identity import NodeIdentity

__all__ = ["RECEIPTS_PATH", "ReceiptLink", "ReceiptSender", "chain_audit_key", "chain_head_receipt"]

RECEIPTS_PATH = "/channel/v1/receipts"
log = logging.getLogger("medfed.node.audit")


class ReceiptLink(Protocol):
    """What the sender needs of the node's signed, pinned client to the coordinator."""

    def post_json(self, path: str, body: Any, *, timeout: float | None = None) -> Any:
        """POST a JSON body, return the answer; MedfedError on failure."""
        ...

    def close(self) -> None:
        """Release the connections."""
        ...


def chain_audit_key(engine: Engine) -> str:
    """The audit key (base64url public key) that signs the chain now: the newest start or rotation entry's."""
    newest = max(
        (
            row
            for kind in (AuditKind.STARTED, AuditKind.KEY_ROTATED)
            if (row := store.latest_of_kind(engine, str(kind))) is not None
        ),
        key=lambda row: row.seq,
        default=None,
    )
    if newest is None:
        raise InternalError(detail="the audit chain has no first entry; open the audit log first")
    key = orjson.loads(newest.details).get("public_key")
    if not isinstance(key, str):
        raise InternalError(detail="the audit chain's key entry names no key")
    return key


def chain_head_receipt(engine: Engine, identity: NodeIdentity, *, now: int | None = None) -> dict[str, Any]:
    """A receipt for the chain's head, signed with the node's identity key (a JSON object)."""
    seq, digest = store.chain_head(engine)
    receipt = Receipt(
        node=str(identity.node_id),
        seq=seq,
        hash=digest,
        time=time.time_ns() // 1000 if now is None else now,
        audit_key=chain_audit_key(engine),
    )
    return sign_receipt(identity.signing_key, receipt)


class ReceiptSender:
    """Posts a chain-head receipt every ``interval_s`` until :meth:`stop` (one daemon thread).

    The first receipt goes out at once. A failure is logged (its code only) and the next interval
    tries again; receipts are idempotent, so a lost one costs nothing but time.
    """

    def __init__(
        self,
        engine: Engine,
        identity: NodeIdentity,
        link: ReceiptLink,
        *,
        interval_s: float,
        make: Callable[[Engine, NodeIdentity], Mapping[str, Any]] = chain_head_receipt,
    ) -> None:
        self._engine = engine
        self._identity = identity
        self._link = link
        self._interval_s = interval_s
        self._make = make
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="medfed-audit-receipts", daemon=True)
        self.sent = 0

    def start(self) -> ReceiptSender:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    def send_once(self) -> bool:
        """Post one receipt now; True when the coordinator accepted it."""
        try:
            self._link.post_json(RECEIPTS_PATH, dict(self._make(self._engine, self._identity)))
        except MedfedError as exc:
            log.warning("a chain-head receipt was not delivered", extra={"fields": {"code": str(exc.code)}})
            return False
        self.sent += 1
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.send_once()
            self._stop.wait(self._interval_s)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and close the link."""
        self._stop.set()
        if self._thread.ident is not None:  # started (a sender used only through send_once never is)
            self._thread.join(timeout)
        self._link.close()
