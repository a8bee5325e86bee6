"""What the node remembers about signed jobs: the documents it accepted, and the newest revocation list.

A signed job document is accepted once: :func:`remember_job` records its digest under the job id that
brought it, and answers with the other job id when the same document arrives under a second one. Rows
older than the freshness window are deleted as new ones come in (a document that old is refused as
stale anyway). The revocation list is one row, replaced only by a list with a serial at least as high.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from node.store.db import write_transaction
from node.store.models import TrustRevocations, TrustSeenJob

__all__ = ["kept_serial", "load_revocations", "remember_job", "save_revocations"]

SEEN: sa.Table = TrustSeenJob.__table__  # type: ignore[attr-defined]
REVOCATIONS: sa.Table = TrustRevocations.__table__  # type: ignore[attr-defined]
_ROW = 1
# Built once: remember_job runs for every job's first message, and a statement with bound parameters
# compiles once and hits SQLAlchemy's cache after that.
_FORGET = SEEN.delete().where(SEEN.c.issued_at < sa.bindparam("forget_before"))
_SEEN_BY = sa.select(SEEN.c.job_id).where(SEEN.c.digest == sa.bindparam("digest"))
_REMEMBER = SEEN.insert()


def remember_job(engine: Engine, *, digest: str, job_id: str, issued_at: int, forget_before: int) -> str | None:
    """Record that ``job_id`` brought the signed document ``digest`` (times in epoch microseconds).

    None when the document is new or already this job's; the other job's id when another job brought it.
    Documents signed before ``forget_before`` are forgotten in the same transaction.
    """
    with write_transaction(engine) as conn:
        conn.execute(_FORGET, {"forget_before": forget_before})
        row = conn.execute(_SEEN_BY, {"digest": digest}).first()
        if row is not None:
            return None if row[0] == job_id else str(row[0])
        conn.execute(_REMEMBER, {"digest": digest, "job_id": job_id, "issued_at": issued_at})
    return None


def load_revocations(engine: Engine) -> dict[str, Any] | None:
    """The newest revocation list the node kept (None: none yet)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(REVOCATIONS.c.document).where(REVOCATIONS.c.id == _ROW)).first()
    return None if row is None else dict(orjson.loads(row[0]))


def kept_serial(engine: Engine) -> int | None:
    """The serial of the revocation list the node kept (None: none yet): one indexed read, to see whether
    another part of the node took a newer list."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(REVOCATIONS.c.serial).where(REVOCATIONS.c.id == _ROW)).first()
    return None if row is None else int(row[0])


def save_revocations(engine: Engine, *, serial: int, document: dict[str, Any], now: int) -> bool:
    """Keep ``document`` unless the node holds a list with a higher serial; whether it was kept."""
    text = orjson.dumps(document).decode()
    with write_transaction(engine) as conn:
        row = conn.execute(sa.select(REVOCATIONS.c.serial).where(REVOCATIONS.c.id == _ROW)).first()
        if row is None:
            conn.execute(REVOCATIONS.insert().values(id=_ROW, serial=serial, document=text, received_at=now))
            return True
        if int(row[0]) > serial:
            return False
        conn.execute(
            REVOCATIONS.update().where(REVOCATIONS.c.id == _ROW).values(serial=serial, document=text, received_at=now)
        )
    return True
