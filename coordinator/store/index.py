"""The patient index's tables: records, their re-keyed tokens, person clusters, opt-out suppression, audit.

What is stored (and nothing else): per record, the node that published it, the node's opaque
reference, the key id its tokens were made under and its person cluster; per token, 32 bytes of
HMAC re-keyed by the coordinator (:mod:`common.linkage.rekey`) and a variant number
(``index_variant``). No name, date, MRN or plain token ever reaches these tables.

**Person clusters.** Records that share a STRONG token are one person; a cluster is a connected
component of that relation, and its id is the smallest record id in it (so merging two clusters is
"take the smaller id", and every component has exactly one id without a counter). Publishing a record
merges the clusters it links; replacing or withdrawing one re-computes the components of the cluster
it left (union-find over the members' strong tokens: clusters are a handful of records).

**Opt-out.** Withdrawing a reference with ``person=True`` removes every record of its cluster (other
nodes' too: the patient is gone from the index everywhere) and keeps that record's strong tokens in
``index_suppression``; a later publication that shares one is not stored, until the opting-out node
publishes its reference again (the patient opted back in), which lifts the suppression.

Callers pass ``db`` as elsewhere in the store: an Engine (own transaction) or a Connection.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from common.errors import ErrorCode, InputError
from coordinator.store.db import Db, insert_ignoring_duplicates, is_sqlite, now_micros, reading, writing
from coordinator.store.models import IndexAudit, IndexRecord, IndexSuppression, IndexToken, IndexVariant

__all__ = [
    "MAX_LOOKUP_VALUES",
    "IndexedToken",
    "PublishOutcome",
    "RecordTokens",
    "TokenHit",
    "VariantRow",
    "ensure_variants",
    "lookup_reader",
    "lookup_tokens",
    "publish_records",
    "read_audit",
    "record_audit",
    "withdraw_records",
]

VARIANT: sa.Table = IndexVariant.__table__  # type: ignore[attr-defined]
RECORD: sa.Table = IndexRecord.__table__  # type: ignore[attr-defined]
TOKEN: sa.Table = IndexToken.__table__  # type: ignore[attr-defined]
SUPPRESSION: sa.Table = IndexSuppression.__table__  # type: ignore[attr-defined]
AUDIT: sa.Table = IndexAudit.__table__  # type: ignore[attr-defined]
# SQLite allows 32766 bound parameters per statement; PostgreSQL 65535. Chunks stay well below both.
_CHUNK = 900
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class VariantRow:
    """A variant's number and tier in this index."""

    id: int
    name: str
    strong: bool


@dataclass(frozen=True, slots=True)
class IndexedToken:
    """One re-keyed token of a record to store: its 32 bytes, variant number and whether it is strong."""

    value: bytes
    variant_id: int
    strong: bool


@dataclass(frozen=True, slots=True)
class RecordTokens:
    """A record to publish: its reference and its whole token family (re-keyed)."""

    ref: str
    tokens: Sequence[IndexedToken]


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """How many records were stored, and how many were kept out by an opt-out elsewhere."""

    stored: int
    suppressed: int


@dataclass(frozen=True, slots=True)
class TokenHit:
    """One stored token that a lookup matched: the record it belongs to and its variant number."""

    record_id: int
    node_id: str
    record_ref: str
    cluster_id: int
    variant_id: int


def _chunks(values: Sequence[T], size: int = _CHUNK) -> Iterable[list[T]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


# ------------------------------------------------------------------------------------------ variants


def ensure_variants(db: Db, variants: Mapping[str, bool]) -> dict[str, VariantRow]:
    """Number every variant of ``variants`` (name -> strong) that has no number yet; all rows by name."""
    with writing(db) as conn:
        known = {row.name: row for row in _variants(conn)}
        missing = [name for name in variants if name not in known]
        for name in missing:
            insert_ignoring_duplicates(conn, VARIANT, {"name": name, "tier": "strong" if variants[name] else "weak"})
        return {row.name: row for row in _variants(conn)} if missing else known


def _variants(conn: Connection) -> list[VariantRow]:
    return [
        VariantRow(int(row.id), row.name, row.tier == "strong")
        for row in conn.execute(sa.select(VARIANT.c.id, VARIANT.c.name, VARIANT.c.tier))
    ]


# ------------------------------------------------------------------------------------------ publish


def publish_records(
    db: Db, *, node_id: str, key_id: str, records: Sequence[RecordTokens], now: int | None = None
) -> PublishOutcome:
    """Add or replace each record's tokens (one transaction), merging the person clusters they link."""
    at = now_micros() if now is None else now
    stored = suppressed = 0
    with writing(db) as conn:
        for record in records:
            # The node publishes this reference again: an opt-out it withdrew earlier is over.
            conn.execute(
                SUPPRESSION.delete().where(SUPPRESSION.c.node_id == node_id, SUPPRESSION.c.record_ref == record.ref)
            )
            strong = sorted({token.value for token in record.tokens if token.strong})
            if strong and _suppressed(conn, strong):
                _remove_record(conn, node_id=node_id, ref=record.ref)
                suppressed += 1
                continue
            _store_record(conn, node_id=node_id, key_id=key_id, record=record, strong=strong, at=at)
            stored += 1
    return PublishOutcome(stored=stored, suppressed=suppressed)


def _suppressed(conn: Connection, strong: Sequence[bytes]) -> bool:
    for chunk in _chunks(strong):
        found = conn.execute(sa.select(SUPPRESSION.c.token).where(SUPPRESSION.c.token.in_(chunk)).limit(1)).first()
        if found is not None:
            return True
    return False


def _store_record(
    conn: Connection, *, node_id: str, key_id: str, record: RecordTokens, strong: Sequence[bytes], at: int
) -> None:
    existing = conn.execute(
        sa.select(RECORD.c.id, RECORD.c.cluster_id).where(
            RECORD.c.node_id == node_id, RECORD.c.record_ref == record.ref
        )
    ).first()
    if existing is None:
        inserted = conn.execute(
            RECORD.insert()
            .values(node_id=node_id, record_ref=record.ref, cluster_id=0, key_id=key_id, updated_at=at)
            .returning(RECORD.c.id)
        )
        record_id = int(inserted.scalar_one())
        conn.execute(RECORD.update().where(RECORD.c.id == record_id).values(cluster_id=record_id))
        old_cluster = None
    else:
        record_id, old_cluster = int(existing.id), int(existing.cluster_id)
        conn.execute(TOKEN.delete().where(TOKEN.c.record_id == record_id))
        conn.execute(RECORD.update().where(RECORD.c.id == record_id).values(key_id=key_id, updated_at=at))
    unique = {token.value: token for token in record.tokens}
    conn.execute(
        TOKEN.insert(),
        [{"token": t.value, "record_id": record_id, "variant_id": t.variant_id} for t in unique.values()],
    )
    if old_cluster is not None:
        _recluster(conn, old_cluster)  # the record's new tokens may no longer link it to its old cluster
    _merge_linked(conn, record_id, strong)


def _merge_linked(conn: Connection, record_id: int, strong: Sequence[bytes]) -> None:
    """Merge the record's cluster with every cluster that shares one of its strong tokens."""
    clusters: set[int] = set()
    for chunk in _chunks(strong):
        query = (
            sa.select(RECORD.c.cluster_id)
            .select_from(TOKEN.join(RECORD, RECORD.c.id == TOKEN.c.record_id))
            .where(TOKEN.c.token.in_(chunk))
            .distinct()
        )
        clusters.update(int(value) for value in conn.execute(query).scalars())
    own = conn.execute(sa.select(RECORD.c.cluster_id).where(RECORD.c.id == record_id)).scalar_one()
    clusters.add(int(own))
    if len(clusters) > 1:
        target = min(clusters)
        conn.execute(
            RECORD.update().where(RECORD.c.cluster_id.in_(sorted(clusters - {target}))).values(cluster_id=target)
        )


def _recluster(conn: Connection, cluster_id: int) -> None:
    """Re-compute the components of one cluster from its members' strong tokens (ids: smallest member)."""
    members = [int(m) for m in conn.execute(sa.select(RECORD.c.id).where(RECORD.c.cluster_id == cluster_id)).scalars()]
    if not members:
        return
    parent = {member: member for member in members}

    def find(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    strong_ids = [int(v) for v in conn.execute(sa.select(VARIANT.c.id).where(VARIANT.c.tier == "strong")).scalars()]
    first_holder: dict[bytes, int] = {}
    query = sa.select(TOKEN.c.token, TOKEN.c.record_id).where(
        TOKEN.c.record_id.in_(members), TOKEN.c.variant_id.in_(strong_ids)
    )
    for token, record_id in conn.execute(query):
        holder = first_holder.setdefault(bytes(token), int(record_id))
        a, b = find(holder), find(int(record_id))
        if a != b:
            parent[max(a, b)] = min(a, b)
    by_root: dict[int, list[int]] = {}
    for member in members:
        by_root.setdefault(find(member), []).append(member)
    for component in by_root.values():
        new_id = min(component)
        if new_id != cluster_id:
            conn.execute(RECORD.update().where(RECORD.c.id.in_(component)).values(cluster_id=new_id))


# ----------------------------------------------------------------------------------------- withdraw


def _remove_record(conn: Connection, *, node_id: str, ref: str) -> int | None:
    """Delete one record and its tokens; its old cluster id, or None when there was no such record."""
    row = conn.execute(
        sa.select(RECORD.c.id, RECORD.c.cluster_id).where(RECORD.c.node_id == node_id, RECORD.c.record_ref == ref)
    ).first()
    if row is None:
        return None
    conn.execute(TOKEN.delete().where(TOKEN.c.record_id == row.id))
    conn.execute(RECORD.delete().where(RECORD.c.id == row.id))
    return int(row.cluster_id)


def withdraw_records(
    db: Db, *, node_id: str, refs: Collection[str], person: bool = False, now: int | None = None
) -> int:
    """Remove the node's records ``refs``; with ``person``, their whole clusters, and suppress the person.

    Returns how many index records were removed (other nodes' included with ``person``). A reference
    the index does not hold is skipped; with ``person`` it is still noted, so nothing is missed when
    the withdrawal overtakes the publication.
    """
    at = now_micros() if now is None else now
    removed = 0
    with writing(db) as conn:
        for ref in dict.fromkeys(refs):
            if person:
                removed += _withdraw_person(conn, node_id=node_id, ref=ref, at=at)
                continue
            cluster = _remove_record(conn, node_id=node_id, ref=ref)
            if cluster is not None:
                removed += 1
                _recluster(conn, cluster)
    return removed


def _withdraw_person(conn: Connection, *, node_id: str, ref: str, at: int) -> int:
    row = conn.execute(
        sa.select(RECORD.c.id, RECORD.c.cluster_id).where(RECORD.c.node_id == node_id, RECORD.c.record_ref == ref)
    ).first()
    if row is None:
        return 0
    strong = sa.select(VARIANT.c.id).where(VARIANT.c.tier == "strong")
    tokens = conn.execute(
        sa.select(TOKEN.c.token).where(TOKEN.c.record_id == row.id, TOKEN.c.variant_id.in_(strong))
    ).scalars()
    for token in tokens:
        insert_ignoring_duplicates(
            conn, SUPPRESSION, {"token": bytes(token), "node_id": node_id, "record_ref": ref, "created_at": at}
        )
    members = [
        int(m) for m in conn.execute(sa.select(RECORD.c.id).where(RECORD.c.cluster_id == row.cluster_id)).scalars()
    ]
    for chunk in _chunks(members):
        conn.execute(TOKEN.delete().where(TOKEN.c.record_id.in_(chunk)))
        conn.execute(RECORD.delete().where(RECORD.c.id.in_(chunk)))
    return len(members)


# ------------------------------------------------------------------------------------------- lookup


# One statement per lookup: the records the tokens hit, and the other records of the hit records'
# clusters (variant -1), so the person-cluster step costs no second round trip.
_LOOKUP_SQL = (
    "WITH hit AS ("
    " SELECT r.id, r.node_id, r.record_ref, r.cluster_id, t.variant_id"
    " FROM index_token t JOIN index_record r ON r.id = t.record_id"
    " WHERE {tokens} AND r.node_id <> {node})"
    " SELECT id, node_id, record_ref, cluster_id, variant_id FROM hit"
    " UNION ALL"
    " SELECT r.id, r.node_id, r.record_ref, r.cluster_id, -1 FROM index_record r"
    " WHERE r.cluster_id IN (SELECT cluster_id FROM hit) AND r.node_id <> {node}"
    " AND r.id NOT IN (SELECT id FROM hit)"
)
# PostgreSQL: the tokens travel as one text parameter of comma-separated hex and become a bytea[] in
# the server — one string to send, instead of an array the driver would encode element by element.
# They are found through the hash index (a bitmap scan: one bucket page per token) and grouped by
# record before the join, so each hit record is read once and comes back as one row with its
# variants; cluster mates come back with no variants.
_PG_LOOKUP = (
    "WITH hit AS ("
    " SELECT r.id, r.node_id, r.record_ref, r.cluster_id, t.variants"
    " FROM (SELECT record_id, array_agg(variant_id) AS variants FROM index_token"
    " WHERE token = ANY(ARRAY(SELECT decode(unnest(string_to_array(%(tokens)s, ',')), 'hex')))"
    " GROUP BY record_id) t"
    " JOIN index_record r ON r.id = t.record_id WHERE r.node_id <> %(node)s)"
    " SELECT id, node_id, record_ref, cluster_id, variants FROM hit"
    " UNION ALL"
    " SELECT r.id, r.node_id, r.record_ref, r.cluster_id, NULL FROM index_record r"
    " WHERE r.cluster_id IN (SELECT cluster_id FROM hit) AND r.node_id <> %(node)s"
    " AND r.id NOT IN (SELECT id FROM hit)"
)
#: Most tokens one lookup statement takes.
MAX_LOOKUP_VALUES = _CHUNK


def lookup_reader(engine: Engine) -> Engine:
    """The engine lookups should run on: for PostgreSQL, one of its own that makes a lookup one round trip.

    Its connections are in autocommit (no ``BEGIN`` before the statement, no ``ROLLBACK`` when the
    connection goes back to the pool) and are not pinged on checkout; a connection the server dropped
    fails the lookup's statement instead, and :func:`lookup_tokens` retries once on a fresh connection
    (a lookup only reads). SQLite has no round trips to save: its engine is returned as it is.
    """
    if is_sqlite(engine):
        return engine
    return sa.create_engine(engine.url, pool_pre_ping=False, isolation_level="AUTOCOMMIT")


def lookup_tokens(db: Db, *, tokens: Collection[bytes], exclude_node: str) -> tuple[list[TokenHit], list[TokenHit]]:
    """The stored tokens among ``tokens`` held by nodes other than ``exclude_node``, and their records' cluster mates.

    Returns ``(hits, mates)``: a hit per matching stored token (with its record); a mate per other record
    (not ``exclude_node``'s) in a hit record's cluster, with ``variant_id`` -1. The lookup's hot path, so
    it is one prepared statement in the driver's own parameter style: PostgreSQL gets the tokens as one
    ``bytea[]`` (``= ANY``, the hash index), SQLite as ``IN (?, ...)`` (seeks in the token-keyed table);
    both then seek ``index_record``'s key and its cluster index.
    """
    values = sorted(set(tokens))
    if len(values) > MAX_LOOKUP_VALUES:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="too many tokens for one lookup")
    if not values:
        return [], []
    try:
        found = _lookup(db, values, exclude_node)
    except sa.exc.DBAPIError as exc:
        if isinstance(db, Connection) or not exc.connection_invalidated:
            raise
        found = _lookup(db, values, exclude_node)  # the pool has let its stale connections go
    return [hit for hit in found if hit.variant_id >= 0], [hit for hit in found if hit.variant_id < 0]


def _lookup(db: Db, values: list[bytes], exclude_node: str) -> list[TokenHit]:
    with reading(db) as conn:
        if is_sqlite(conn):
            statement = _LOOKUP_SQL.format(tokens=f"t.token IN ({', '.join('?' * len(values))})", node="?")
            rows = conn.exec_driver_sql(statement, (*values, exclude_node, exclude_node))
            return [TokenHit(int(r[0]), r[1], r[2], int(r[3]), int(r[4])) for r in rows]
        parameters = {"tokens": ",".join(v.hex() for v in values), "node": exclude_node}
        found: list[TokenHit] = []
        for record_id, node_id, ref, cluster_id, variants in conn.exec_driver_sql(_PG_LOOKUP, parameters):
            if variants is None:
                found.append(TokenHit(int(record_id), node_id, ref, int(cluster_id), -1))
            else:
                found.extend(TokenHit(int(record_id), node_id, ref, int(cluster_id), int(v)) for v in variants)
        return found


# -------------------------------------------------------------------------------------------- audit


def record_audit(
    db: Db, *, node_id: str, action: str, items: int, hits: int | None, status: int, now: int | None = None
) -> None:
    """Append one audit row: who asked, what, how many items and hits (no token, no reference)."""
    with writing(db) as conn:
        conn.execute(
            AUDIT.insert().values(
                at=now_micros() if now is None else now,
                node_id=node_id,
                action=action,
                items=items,
                hits=hits,
                status=status,
            )
        )


def read_audit(db: Db, *, node_id: str | None = None, limit: int = 1000) -> list[dict[str, object]]:
    """The newest audit rows first (for the console and tests)."""
    query = sa.select(AUDIT).order_by(AUDIT.c.id.desc()).limit(limit)
    if node_id is not None:
        query = query.where(AUDIT.c.node_id == node_id)
    with reading(db) as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
