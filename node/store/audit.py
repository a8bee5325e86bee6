"""Calls made with a token, as :class:`AuditEvent` rows, read from the node's audit chain.

Since schema revision 0005 every call is an entry of the hash-chained, signed audit log
(``node/audit``, rows in :mod:`node.store.audit_chain`); :func:`read_events` reads those entries back in
this module's older shape, with the local resource reference the chain keeps beside its pseudonym.
:func:`record` writes the pre-chain ``access_audit`` table, which nothing writes any more; it stays as
the baseline of ``benchmarks/audit_append.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from sqlalchemy.engine import Engine

from node.store.audit_chain import newest_entries
from node.store.db import write_transaction
from node.store.models import AccessAudit

__all__ = ["AuditEvent", "read_events", "record"]

ACCESS_AUDIT = AccessAudit.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What one call did."""

    token_id: int
    role: str
    action: str
    resource_type: str | None
    resource_id: str | None
    status: int
    result_count: int | None = None


_CALL_KINDS = ("fhir.access", "api.call")


def record(engine: Engine, event: AuditEvent) -> None:
    """Append one event to the pre-chain table (see the module docstring)."""
    with write_transaction(engine) as conn:
        conn.execute(
            ACCESS_AUDIT.insert().values(
                at=time.time_ns() // 1000,
                token_id=event.token_id,
                role=event.role,
                action=event.action,
                resource_type=event.resource_type,
                resource_id=event.resource_id,
                status=event.status,
                result_count=event.result_count,
            )
        )


def read_events(engine: Engine, *, limit: int = 1000) -> list[AuditEvent]:
    """The newest calls first (for the admin and for tests), from the audit chain."""
    events = []
    for row in newest_entries(engine, kinds=_CALL_KINDS, limit=limit):
        _, token_id, role = row.actor.split(":", 2)
        details = orjson.loads(row.details)
        resource_id = row.subject_ref.split("/", 1)[1] if row.subject_ref else None
        events.append(
            AuditEvent(
                token_id=int(token_id),
                role=role,
                action=details["action"],
                resource_type=details.get("resource_type"),
                resource_id=resource_id,
                status=details["status"],
                result_count=details.get("result_count"),
            )
        )
    return events
