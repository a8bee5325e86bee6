"""The access audit table: one row per authenticated API call (append-only; no updates or deletes).

The trust issue turns this into a hash-chained, signed log; the rows keep the same meaning.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

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


def record(engine: Engine, event: AuditEvent) -> None:
    """Append one event."""
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
    """The newest events first (for the admin and for tests)."""
    a = ACCESS_AUDIT
    stmt = (
        sa.select(
            a.c.token_id,
            a.c.role,
            a.c.action,
            a.c.resource_type,
            a.c.resource_id,
            a.c.status,
            a.c.result_count,
        )
        .order_by(a.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [AuditEvent(*row) for row in conn.execute(stmt)]
