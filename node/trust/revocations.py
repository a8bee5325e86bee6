"""The newest revocation list this node verified: which researchers and which nodes it no longer trusts.

Lists arrive with the channel's poll and heartbeat answers (:meth:`RevocationBook.accept`); a list is
believed only when the network-admin key pinned at enrolment signed it and its serial is not below the one
held, and it is kept in the node's database (``trust_revocations``) before it is held, so a restart keeps it.

Everything at the node that trusts a researcher or another node asks a book: the signed-job checks
(:class:`~node.trust.JobTrust`, whose book the channel feeds), the channel's secure-aggregation check, and
the record locator's peer certificates. The locator runs beside the channel in the node process, and also
alone (``medfed node locate``), so it reads through :meth:`RevocationBook.current`, which picks up a list
that another book of the same database kept (one indexed read of the list's serial per call).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from sqlalchemy.engine import Engine

from common.crypto import VerifyKey
from common.errors import MedfedError
from common.trust import Revocations, verify_revocations
from node.store import trust as store

__all__ = ["RevocationBook"]

log = logging.getLogger("medfed.node.trust")


class RevocationBook:
    """The newest verified revocation list, held in memory and kept in the node's database (thread-safe)."""

    def __init__(self, engine: Engine, admin_key: VerifyKey | None, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._admin_key = admin_key
        self._clock = clock
        self._lock = threading.Lock()
        self._held = self._load()

    def _load(self) -> Revocations | None:
        document = store.load_revocations(self._engine)
        if document is None or self._admin_key is None:
            return None
        try:
            return verify_revocations(document, self._admin_key)
        except MedfedError:  # kept by an earlier enrolment under another key: start without
            log.warning("the kept revocation list does not verify; ignoring it")
            return None

    @property
    def serial(self) -> int:
        """The serial of the list held (0: none)."""
        with self._lock:
            return 0 if self._held is None else self._held.serial

    def held(self) -> Revocations | None:
        """The list held in memory (None: none yet)."""
        with self._lock:
            return self._held

    def current(self) -> Revocations | None:
        """The newest list the node kept, from any book of this database (None: none yet)."""
        kept = store.kept_serial(self._engine)
        with self._lock:
            held = self._held
        if kept is None or (held is not None and kept <= held.serial):
            return held
        loaded = self._load()
        with self._lock:
            if loaded is not None and (self._held is None or loaded.serial > self._held.serial):
                self._held = loaded
            return self._held

    def accept(self, document: object) -> bool:
        """Hold ``document`` if the pinned key signed it and its serial is not below the held one; whether it
        changed what the node holds. Anything else is logged (code only) and ignored."""
        if document is None or self._admin_key is None:
            return False
        body = document.get("body") if isinstance(document, Mapping) else None
        if isinstance(body, Mapping) and body.get("serial") == self.serial:
            return False  # the list held (every heartbeat brings it again): nothing to verify
        try:
            revocations = verify_revocations(document, self._admin_key)
        except MedfedError as exc:
            log.warning("ignored a revocation list that does not verify", extra={"fields": {"code": str(exc.code)}})
            return False
        with self._lock:
            held = self._held
            if held is not None and revocations.serial <= held.serial:
                if revocations.serial < held.serial:
                    log.warning("ignored an older revocation list", extra={"fields": {"serial": revocations.serial}})
                return False
            assert isinstance(document, Mapping)
            if not store.save_revocations(
                self._engine, serial=revocations.serial, document=dict(document), now=int(self._clock() * 1e6)
            ):
                return False
            self._held = revocations
        log.info("holding a new revocation list", extra={"fields": {"serial": revocations.serial}})
        return True

    def node_revoked(
        self,
        *,
        node_id: str | None = None,
        key_id: str | None = None,
        flower_node_id: int | None = None,
        fresh: bool = False,
    ) -> bool:
        """Whether the list names the node (by id, key fingerprint or Flower node id); ``fresh``: read the newest
        list kept in the database first (for a book that is not the one the channel feeds)."""
        held = self.current() if fresh else self.held()
        return held is not None and held.node_revoked(node_id=node_id, key_id=key_id, flower_node_id=flower_node_id)
