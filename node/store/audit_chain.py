"""The audit chain's rows: append one entry at a time behind a lock, read them back in order.

Appends are serialised by the head row (``audit_chain_head``, id 1): each append locks it (PostgreSQL
``SELECT ... FOR UPDATE``; on SQLite the store's write transactions are ``BEGIN IMMEDIATE``, one writer
at a time, and writers of one process queue on the engine's lock), reads the last ``seq`` and hash,
inserts the next entry and moves the head, all in one transaction. So sequence numbers have no gaps
and each entry names its true predecessor, however many processes append (the API, the channel, the
CLI). Hashing and signing are the caller's (``node/audit``): this module stores what it is given.

The head row is also a cheap cross-check for verification: an entry deleted from the end leaves the
head pointing past the chain (unless the head was rolled back too, which is what receipts catch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from node.store.db import write_transaction
from node.store.models import AuditChainEntry, AuditChainHead

__all__ = [
    "GENESIS_HASH",
    "ChainRow",
    "append_entries",
    "append_entry",
    "chain_head",
    "iter_entries",
    "latest_of_kind",
    "newest_entries",
    "subject_entries",
]

AUDIT_ENTRY: sa.Table = AuditChainEntry.__table__  # type: ignore[attr-defined]
AUDIT_HEAD: sa.Table = AuditChainHead.__table__  # type: ignore[attr-defined]
GENESIS_HASH = "0" * 64
_HEAD_ID = 1
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One stored entry, as it is in the table (``details`` is canonical JSON text)."""

    seq: int
    at: int
    kind: str
    actor: str
    details: str
    subject: str | None
    subject_ref: str | None
    prev_hash: str
    hash: str
    key_id: str
    signature: str


_FIELDS = tuple(field.name for field in fields(ChainRow))
_COLUMNS = [AUDIT_ENTRY.c[name] for name in _FIELDS]


# Built once: statements with bound parameters compile once and hit SQLAlchemy's cache on every append.
_SELECT_HEAD = sa.select(AUDIT_HEAD.c.seq, AUDIT_HEAD.c.hash).where(AUDIT_HEAD.c.id == _HEAD_ID)
_LOCK_HEAD = _SELECT_HEAD.with_for_update()
_INSERT_ENTRY = AUDIT_ENTRY.insert()
_MOVE_HEAD = (
    AUDIT_HEAD.update()
    .where(AUDIT_HEAD.c.id == _HEAD_ID)
    .values(seq=sa.bindparam("new_seq"), hash=sa.bindparam("new_hash"))
)


def _head(conn: Connection, *, lock: bool) -> tuple[int, str]:
    row = conn.execute(_LOCK_HEAD if lock else _SELECT_HEAD).first()
    if row is None:  # the migration creates the row; a database emptied by hand gets it back
        conn.execute(AUDIT_HEAD.insert().values(id=_HEAD_ID, seq=0, hash=GENESIS_HASH))
        return 0, GENESIS_HASH
    return int(row[0]), str(row[1])


def append_entry(
    engine: Engine, make: Callable[[int, str], ChainRow], *, only_if_empty: bool = False
) -> ChainRow | None:
    """Append ``make(seq, prev_hash)`` as the next entry and return it.

    ``make`` runs inside the transaction, with the head locked, so it sees the true predecessor; it
    must be quick (hash and sign). With ``only_if_empty`` nothing is appended (None) unless the chain
    is empty: how the first entry is written exactly once by whichever process comes first.
    """
    with write_transaction(engine) as conn:
        seq, prev_hash = _head(conn, lock=True)
        if only_if_empty and seq != 0:
            return None
        return _append(conn, make, seq, prev_hash)


def append_entries(engine: Engine, makes: Sequence[Callable[[int, str], ChainRow]]) -> list[ChainRow]:
    """Append one entry per ``make``, in order, in one transaction (one commit for entries that belong together)."""
    rows: list[ChainRow] = []
    with write_transaction(engine) as conn:
        seq, prev_hash = _head(conn, lock=True)
        for make in makes:
            row = _append(conn, make, seq, prev_hash)
            rows.append(row)
            seq, prev_hash = row.seq, row.hash
    return rows


def _append(conn: Connection, make: Callable[[int, str], ChainRow], seq: int, prev_hash: str) -> ChainRow:
    row = make(seq + 1, prev_hash)
    if row.seq != seq + 1 or row.prev_hash != prev_hash:
        raise ValueError("an audit entry must follow the chain's head")
    conn.execute(_INSERT_ENTRY, {name: getattr(row, name) for name in _FIELDS})
    conn.execute(_MOVE_HEAD, {"new_seq": row.seq, "new_hash": row.hash})
    return row


def chain_head(engine: Engine) -> tuple[int, str]:
    """The head row: the last appended ``seq`` and its hash (``(0, GENESIS_HASH)`` for an empty chain)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(AUDIT_HEAD.c.seq, AUDIT_HEAD.c.hash).where(AUDIT_HEAD.c.id == _HEAD_ID)).first()
    return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))


def iter_entries(engine: Engine, *, after_seq: int = 0, kind: str | None = None) -> Iterator[ChainRow]:
    """Every entry after ``after_seq`` in ``seq`` order (read in batches, so memory stays flat)."""
    last = after_seq
    while True:
        stmt = sa.select(*_COLUMNS).where(AUDIT_ENTRY.c.seq > last).order_by(AUDIT_ENTRY.c.seq).limit(_BATCH)
        if kind is not None:
            stmt = stmt.where(AUDIT_ENTRY.c.kind == kind)
        with engine.connect() as conn:
            rows = [ChainRow(*row) for row in conn.execute(stmt)]
        yield from rows
        if len(rows) < _BATCH:
            return
        last = rows[-1].seq


def latest_of_kind(engine: Engine, kind: str) -> ChainRow | None:
    """The newest entry of ``kind``, if any."""
    stmt = sa.select(*_COLUMNS).where(AUDIT_ENTRY.c.kind == kind).order_by(AUDIT_ENTRY.c.seq.desc()).limit(1)
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else ChainRow(*row)


def subject_entries(engine: Engine, subject: str, *, limit: int = 1000) -> list[ChainRow]:
    """The newest entries about one pseudonymised subject, newest first (the hospital's look-up)."""
    stmt = sa.select(*_COLUMNS).where(AUDIT_ENTRY.c.subject == subject).order_by(AUDIT_ENTRY.c.seq.desc()).limit(limit)
    with engine.connect() as conn:
        return [ChainRow(*row) for row in conn.execute(stmt)]


def newest_entries(engine: Engine, *, kinds: Sequence[str] | None = None, limit: int = 1000) -> list[ChainRow]:
    """The newest entries (of ``kinds``, when given), newest first."""
    stmt = sa.select(*_COLUMNS).order_by(AUDIT_ENTRY.c.seq.desc()).limit(limit)
    if kinds is not None:
        stmt = stmt.where(AUDIT_ENTRY.c.kind.in_(list(kinds)))
    with engine.connect() as conn:
        return [ChainRow(*row) for row in conn.execute(stmt)]
