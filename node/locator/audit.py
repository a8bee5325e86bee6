"""The record locator's audit at the node: one row per exchange and side, in ``locator_audit``.

Node A writes a row when it asks (``asked``) and one when the answer arrives (``released``,
``refused``, ``no_answer``, ``failed``); node B writes one per request it answered. Rows name the
peer node, the purpose of use, the local patient id (this node's own record; it never leaves the
node), the outcome with a reason code and how many records were released. When the node's hash-chained
audit log is available (``chain``), B's answers are also appended there as record-locator releases.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from node.store.db import write_transaction
from node.store.models import LocatorAudit

__all__ = ["AuditChain", "LocatorAuditLog", "LocatorEvent", "read_locator_audit"]

LOCATOR_AUDIT = LocatorAudit.__table__  # type: ignore[attr-defined]
log = logging.getLogger("medfed.node.locator")


class AuditChain(Protocol):
    """The slice of the node's hash-chained audit log the locator writes to."""

    def record_released(self, *, record_ref: str, to_node: str, outcome: str, actor: str = ...) -> object:
        """Append a record-locator release (or refusal) to another node."""
        ...


@dataclass(frozen=True, slots=True)
class LocatorEvent:
    """One audited step of an exchange."""

    direction: str  # outbound | inbound
    request_id: str
    peer_node: str | None
    purpose: str
    outcome: str
    patient_id: str | None = None
    reason: str | None = None
    record_count: int | None = None
    token_id: int | None = None


class LocatorAuditLog:
    """Writes :class:`LocatorEvent` rows (and inbound answers to the audit chain, when there is one)."""

    def __init__(self, engine: Engine, chain: AuditChain | None = None) -> None:
        self._engine = engine
        self._chain = chain

    def record(self, event: LocatorEvent) -> None:
        """Append one row."""
        with write_transaction(self._engine) as conn:
            conn.execute(
                LOCATOR_AUDIT.insert().values(
                    at=time.time_ns() // 1000,
                    direction=event.direction,
                    request_id=event.request_id,
                    peer_node=event.peer_node,
                    purpose=event.purpose,
                    patient_id=event.patient_id,
                    outcome=event.outcome,
                    reason=event.reason,
                    record_count=event.record_count,
                    token_id=event.token_id,
                )
            )
        if self._chain is not None and event.direction == "inbound" and event.peer_node is not None:
            try:
                self._chain.record_released(
                    record_ref=f"Patient/{event.patient_id}" if event.patient_id else f"request/{event.request_id}",
                    to_node=event.peer_node,
                    outcome=event.outcome if event.reason is None else f"{event.outcome}:{event.reason}",
                )
            except Exception:  # the locator's own row is written; the chain reports its own failures
                log.exception("could not append a record-locator event to the audit chain")


def read_locator_audit(engine: Engine, *, limit: int = 1000) -> list[LocatorEvent]:
    """The newest rows first (for the admin and for tests)."""
    c = LOCATOR_AUDIT.c
    query = (
        sa.select(
            c.direction,
            c.request_id,
            c.peer_node,
            c.purpose,
            c.outcome,
            c.patient_id,
            c.reason,
            c.record_count,
            c.token_id,
        )
        .order_by(c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [LocatorEvent(*row) for row in conn.execute(query)]
