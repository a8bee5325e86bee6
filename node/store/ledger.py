"""The epsilon ledger's rows: accounts per researcher x study, the node-wide cap, one entry per charged query.

Every function here is one transaction. :func:`reserve` is the one that must be atomic: it locks the
node-wide cap row first (PostgreSQL ``SELECT ... FOR UPDATE``; on SQLite the store's write transactions
are ``BEGIN IMMEDIATE``, which already admits one writer at a time), then the account row, checks both
budgets, charges both and writes the entry, so two reservations that together would overspend cannot
both see the old balance. Locks are always taken cap first, then account, so reservations never
deadlock each other. A query whose digest is already in the ledger for the same researcher and study
is found before anything is charged and costs nothing.

Amounts are integers: epsilon in units of 1e-9 ("nano"), delta in units of 1e-15 ("femto"); the
conversion (rounding costs up, budgets down) lives in :mod:`node.privacy.ledger`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from node.store.db import is_sqlite, write_transaction
from node.store.models import PrivacyAccount, PrivacyLedgerEntry, PrivacyNodeCap

__all__ = [
    "AccountRow",
    "CapRow",
    "EntryRow",
    "ReserveResult",
    "cancel",
    "get_account",
    "get_node_cap",
    "list_entries",
    "record_answer",
    "reserve",
    "set_account_budget",
    "set_node_cap",
]

ACCOUNT = PrivacyAccount.__table__  # type: ignore[attr-defined]
CAP = PrivacyNodeCap.__table__  # type: ignore[attr-defined]
ENTRY = PrivacyLedgerEntry.__table__  # type: ignore[attr-defined]

_CAP_ID = 1
STATE_RESERVED = "reserved"
STATE_RELEASED = "released"

Refusal = Literal["account", "node"]


@dataclass(frozen=True, slots=True)
class AccountRow:
    """An account's budget and spending (integer units)."""

    researcher: str
    study: str
    epsilon_budget_nano: int
    delta_budget_femto: int
    epsilon_spent_nano: int
    delta_spent_femto: int


@dataclass(frozen=True, slots=True)
class CapRow:
    """The node-wide cap and what all accounts together have spent (integer units)."""

    epsilon_cap_nano: int
    delta_cap_femto: int
    epsilon_spent_nano: int
    delta_spent_femto: int


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One ledger entry."""

    id: int
    researcher: str
    study: str
    query_digest: str
    job_id: str | None
    unit: str
    epsilon_nano: int
    delta_femto: int
    state: str
    answer_ref: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class ReserveResult:
    """What :func:`reserve` did: charged a new entry, found the query already charged, or refused."""

    entry_id: int | None
    charged: bool
    answer_ref: str | None
    refused: Refusal | None


def _now() -> int:
    return time.time_ns() // 1000


def _upsert(engine: Engine, table: sa.Table, keys: dict[str, Any], values: dict[str, Any]) -> None:
    insert = (sqlite.insert if is_sqlite(engine) else postgresql.insert)(table)
    statement = insert.values(**keys, **values).on_conflict_do_update(index_elements=list(keys), set_=values)
    with write_transaction(engine) as conn:
        conn.execute(statement)


def set_account_budget(
    engine: Engine, *, researcher: str, study: str, epsilon_budget_nano: int, delta_budget_femto: int
) -> None:
    """Create the account or change its budget; what it has spent stays."""
    _upsert(
        engine,
        ACCOUNT,
        {"researcher": researcher, "study": study},
        {"epsilon_budget_nano": epsilon_budget_nano, "delta_budget_femto": delta_budget_femto, "updated_at": _now()},
    )


def set_node_cap(engine: Engine, *, epsilon_cap_nano: int, delta_cap_femto: int) -> None:
    """Create the node-wide cap or change it; what has been spent stays."""
    _upsert(
        engine,
        CAP,
        {"id": _CAP_ID},
        {"epsilon_cap_nano": epsilon_cap_nano, "delta_cap_femto": delta_cap_femto, "updated_at": _now()},
    )


def get_account(engine: Engine, *, researcher: str, study: str) -> AccountRow | None:
    """The account, if it exists."""
    a = ACCOUNT
    statement = sa.select(
        a.c.researcher,
        a.c.study,
        a.c.epsilon_budget_nano,
        a.c.delta_budget_femto,
        a.c.epsilon_spent_nano,
        a.c.delta_spent_femto,
    ).where(a.c.researcher == researcher, a.c.study == study)
    with engine.connect() as conn:
        row = conn.execute(statement).first()
    return AccountRow(*row) if row is not None else None


def get_node_cap(engine: Engine) -> CapRow | None:
    """The node-wide cap, if it was set."""
    with engine.connect() as conn:
        row = _cap_row(conn, lock=False)
    return row


def _cap_row(conn: Connection, *, lock: bool) -> CapRow | None:
    c = CAP
    statement = sa.select(c.c.epsilon_cap_nano, c.c.delta_cap_femto, c.c.epsilon_spent_nano, c.c.delta_spent_femto)
    statement = statement.where(c.c.id == _CAP_ID)
    if lock:
        statement = statement.with_for_update()
    row = conn.execute(statement).first()
    return CapRow(*row) if row is not None else None


def _entry_columns() -> list[sa.ColumnElement[Any]]:
    e = ENTRY
    return [
        e.c.id,
        e.c.researcher,
        e.c.study,
        e.c.query_digest,
        e.c.job_id,
        e.c.unit,
        e.c.epsilon_nano,
        e.c.delta_femto,
        e.c.state,
        e.c.answer_ref,
        e.c.created_at,
    ]


def reserve(
    engine: Engine,
    *,
    researcher: str,
    study: str,
    query_digest: str,
    job_id: str | None,
    unit: str,
    epsilon_nano: int,
    delta_femto: int,
) -> ReserveResult:
    """Charge a query to its account and the node-wide cap, atomically, or refuse it (see module docstring)."""
    a, e = ACCOUNT, ENTRY
    now = _now()
    with write_transaction(engine) as conn:
        cap = _cap_row(conn, lock=True)
        existing = conn.execute(
            sa.select(e.c.id, e.c.answer_ref).where(
                e.c.researcher == researcher, e.c.study == study, e.c.query_digest == query_digest
            )
        ).first()
        if existing is not None:
            return ReserveResult(int(existing[0]), charged=False, answer_ref=existing[1], refused=None)
        account_row = conn.execute(
            sa.select(a.c.epsilon_budget_nano, a.c.delta_budget_femto, a.c.epsilon_spent_nano, a.c.delta_spent_femto)
            .where(a.c.researcher == researcher, a.c.study == study)
            .with_for_update()
        ).first()
        if account_row is None:
            return ReserveResult(None, charged=False, answer_ref=None, refused="account")
        eps_budget, delta_budget, eps_spent, delta_spent = (int(v) for v in account_row)
        if eps_spent + epsilon_nano > eps_budget or delta_spent + delta_femto > delta_budget:
            return ReserveResult(None, charged=False, answer_ref=None, refused="account")
        if (
            cap is None
            or cap.epsilon_spent_nano + epsilon_nano > cap.epsilon_cap_nano
            or cap.delta_spent_femto + delta_femto > cap.delta_cap_femto
        ):
            return ReserveResult(None, charged=False, answer_ref=None, refused="node")
        conn.execute(
            a.update()
            .where(a.c.researcher == researcher, a.c.study == study)
            .values(
                epsilon_spent_nano=a.c.epsilon_spent_nano + epsilon_nano,
                delta_spent_femto=a.c.delta_spent_femto + delta_femto,
                updated_at=now,
            )
        )
        conn.execute(
            CAP.update()
            .where(CAP.c.id == _CAP_ID)
            .values(
                epsilon_spent_nano=CAP.c.epsilon_spent_nano + epsilon_nano,
                delta_spent_femto=CAP.c.delta_spent_femto + delta_femto,
                updated_at=now,
            )
        )
        entry_id = conn.execute(
            e.insert()
            .values(
                researcher=researcher,
                study=study,
                query_digest=query_digest,
                job_id=job_id,
                unit=unit,
                epsilon_nano=epsilon_nano,
                delta_femto=delta_femto,
                state=STATE_RESERVED,
                answer_ref=None,
                created_at=now,
                updated_at=now,
            )
            .returning(e.c.id)
        ).scalar_one()
    return ReserveResult(int(entry_id), charged=True, answer_ref=None, refused=None)


def record_answer(engine: Engine, *, entry_id: int, answer_ref: str) -> bool:
    """Mark the entry released with the reference of its answer (the first reference stays); False if absent."""
    e = ENTRY
    with write_transaction(engine) as conn:
        row = conn.execute(sa.select(e.c.answer_ref).where(e.c.id == entry_id).with_for_update()).first()
        if row is None:
            return False
        conn.execute(
            e.update()
            .where(e.c.id == entry_id)
            .values(state=STATE_RELEASED, answer_ref=row[0] or answer_ref, updated_at=_now())
        )
    return True


def cancel(engine: Engine, *, entry_id: int) -> bool:
    """Refund and delete a reservation whose answer was never released; False if it was released or is absent."""
    a, e = ACCOUNT, ENTRY
    with write_transaction(engine) as conn:
        _cap_row(conn, lock=True)
        row = conn.execute(
            sa.select(e.c.researcher, e.c.study, e.c.epsilon_nano, e.c.delta_femto, e.c.state)
            .where(e.c.id == entry_id)
            .with_for_update()
        ).first()
        if row is None or row[4] != STATE_RESERVED:
            return False
        researcher, study, epsilon_nano, delta_femto = row[0], row[1], int(row[2]), int(row[3])
        now = _now()
        conn.execute(
            a.update()
            .where(a.c.researcher == researcher, a.c.study == study)
            .values(
                epsilon_spent_nano=a.c.epsilon_spent_nano - epsilon_nano,
                delta_spent_femto=a.c.delta_spent_femto - delta_femto,
                updated_at=now,
            )
        )
        conn.execute(
            CAP.update()
            .where(CAP.c.id == _CAP_ID)
            .values(
                epsilon_spent_nano=CAP.c.epsilon_spent_nano - epsilon_nano,
                delta_spent_femto=CAP.c.delta_spent_femto - delta_femto,
                updated_at=now,
            )
        )
        conn.execute(e.delete().where(e.c.id == entry_id))
    return True


def list_entries(engine: Engine, *, researcher: str | None = None, study: str | None = None) -> list[EntryRow]:
    """Ledger entries, oldest first, optionally for one researcher and/or study."""
    e = ENTRY
    statement = sa.select(*_entry_columns()).order_by(e.c.id)
    if researcher is not None:
        statement = statement.where(e.c.researcher == researcher)
    if study is not None:
        statement = statement.where(e.c.study == study)
    with engine.connect() as conn:
        return [EntryRow(*row) for row in conn.execute(statement)]
