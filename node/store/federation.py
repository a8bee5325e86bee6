"""The node's record of its channel replies: a redelivered message is answered from here, never re-run."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from node.store.db import write_transaction
from node.store.models import FederationReply

__all__ = ["get_reply", "keep_reply"]

REPLY = FederationReply.__table__  # type: ignore[attr-defined]
# Built once: both run for every message the node handles, and a statement with bound parameters compiles
# once and hits SQLAlchemy's cache after that.
_KEPT = sa.select(REPLY.c.payload).where(REPLY.c.message_id == sa.bindparam("message_id"))
_KEEP = REPLY.insert()


def get_reply(engine: Engine, message_id: str) -> bytes | None:
    """The reply already given to ``message_id``, if any."""
    with engine.connect() as conn:
        row = conn.execute(_KEPT, {"message_id": message_id}).first()
    return bytes(row[0]) if row is not None else None


def keep_reply(engine: Engine, *, message_id: str, job_id: str | None, payload: bytes, now: int) -> bytes:
    """Keep the reply to ``message_id``; if one was kept meanwhile, that one wins and is returned."""
    with write_transaction(engine) as conn:
        existing = conn.execute(_KEPT, {"message_id": message_id}).first()
        if existing is not None:
            return bytes(existing[0])
        conn.execute(_KEEP, {"message_id": message_id, "job_id": job_id, "payload": payload, "created_at": now})
    return payload
