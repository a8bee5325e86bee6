"""Patient-index lookup latency at scale: p50/p99 of one lookup over 1M and 10M index entries.

An *entry* is one stored token row (``index_token``). The index is filled with synthetic records of
78 tokens each (the family of a FEBRL record with every field; one per recipe variant, so the strong
and weak variants are those of the recipe), published by five nodes. Each token is a random 32-byte
value re-keyed with the coordinator's secret exactly as a publication is, and loaded in bulk (sorted
inserts on SQLite; on PostgreSQL ``COPY`` in record order, a record's rows together as a publication
writes them, then the constraints and indexes the migrations made, built in bulk) — what is measured
is the lookup, not the load.

A lookup is what a node's ``/index/v1/lookup`` does after authentication, through
:meth:`coordinator.index.service.IndexService.lookup`: re-key the 136 probe tokens of a record (its
78 tokens and 58 probe-only tokens that match nothing), fetch the matching rows with their records,
decide MATCH/POSSIBLE per record, and look up the person clusters of the matches. Each lookup asks for
a different, randomly chosen indexed record, from a node that does not hold it; the probes are made
before the clock starts.

Same-run baseline: one seek ``SELECT record_id FROM index_token WHERE token = ?`` for one random stored
token on the same database, over the lookups' own connections (one round trip) — the floor of any
lookup. Lookups and seeks alternate, so both see the same load from other processes, and the line
ends with the load average before and after. The ratio says what the 136 seeks, the join, the
decision and the cluster step cost above one seek.

Usage: python -m benchmarks.index_lookup [--entries 1000000 10000000] [--db sqlite postgres]
       [--lookups 2000] [--workdir DIR] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import sqlalchemy as sa
from psycopg import sql

from common.linkage.rekey import RekeyKey
from common.linkage.tokens import VARIANTS, Tier
from common.locator.index_wire import WireToken
from coordinator.index.service import IndexService
from coordinator.store import index as store
from coordinator.store.db import make_engine
from coordinator.store.migrate import upgrade
from coordinator.store.nodes import register_node

TOKENS_PER_RECORD = 78
PROBE_ONLY_TOKENS = 58
NODES = 5
TARGETS = 4_000
WARM_UP = 200


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def _database(kind: str, workdir: Path, postgres_url: str) -> Iterator[str]:
    if kind == "sqlite":
        path = workdir / f"index-{uuid.uuid4().hex[:8]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for leftover in workdir.glob(path.name + "*"):
                leftover.unlink()
        return
    name = f"medfed_bench_index_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class Synthetic:
    """Records of 78 published tokens each; what is stored is their re-keyed form."""

    def __init__(self, entries: int, rekey: RekeyKey, seed: int) -> None:
        self.records = max(1, entries // TOKENS_PER_RECORD)
        self.variants = VARIANTS[:TOKENS_PER_RECORD]
        self.rekey = rekey
        self.random = random.Random(seed)
        chosen = self.random.sample(range(1, self.records + 1), min(TARGETS, self.records))
        self.targets: dict[int, list[WireToken]] = {record_id: [] for record_id in chosen}

    def rows(self, variant_ids: dict[str, int], *, by_token: bool) -> list[tuple[bytes, int, int]]:
        """Every token row ``(stored token, record id, variant id)``: a record's rows together, as a
        publication writes them, or (``by_token``) sorted by token, for SQLite's token-keyed table."""
        rows: list[tuple[bytes, int, int]] = []
        for record_id in range(1, self.records + 1):
            target = self.targets.get(record_id)
            for variant in self.variants:
                published = self.random.randbytes(32).hex()
                rows.append(
                    (bytes.fromhex(self.rekey.rekey(variant.name, published)), record_id, variant_ids[variant.name])
                )
                if target is not None:
                    target.append(WireToken(variant=variant.name, value=published))
        if by_token:
            rows.sort()
        return rows

    def probe(self, record_id: int) -> list[WireToken]:
        """The record's tokens and probe-only tokens that match nothing, mixed."""
        misses = [
            WireToken(variant=self.random.choice(self.variants).name, value=secrets.token_hex(32))
            for _ in range(PROBE_ONLY_TOKENS)
        ]
        probe = [*self.targets[record_id], *misses]
        self.random.shuffle(probe)
        return probe


def _load(engine: sa.Engine, data: Synthetic) -> float:
    """Nodes, variants, records and token rows, in bulk; seconds taken."""
    started = time.perf_counter()
    nodes = [
        register_node(engine, name=f"Bench Site {i}", public_key=secrets.token_urlsafe(32)[:43]).id
        for i in range(NODES)
    ]
    recipe = {v.name: v.tier is Tier.STRONG for v in VARIANTS}
    variant_ids = {name: row.id for name, row in store.ensure_variants(engine, recipe).items()}
    rows = data.rows(variant_ids, by_token=engine.dialect.name == "sqlite")
    records = [(i, nodes[i % NODES], f"ref{i:012d}", i, "bench", 0) for i in range(1, data.records + 1)]
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("BEGIN")
            cursor.executemany(
                "INSERT INTO index_record (id, node_id, record_ref, cluster_id, key_id, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                records,
            )
            cursor.execute("DROP INDEX ix_index_token_record")
            cursor.executemany("INSERT INTO index_token (token, record_id, variant_id) VALUES (?, ?, ?)", rows)
            cursor.execute("CREATE INDEX ix_index_token_record ON index_token (record_id)")
            cursor.execute("COMMIT")
            cursor.execute("ANALYZE")
        finally:
            raw.close()
    else:
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url) as conn:
            # The table's constraints and indexes as the migrations made them, dropped for the load and
            # made again after it (a bulk build instead of 10M inserts into each).
            constraints = conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = 'index_token'::regclass ORDER BY contype DESC"
            ).fetchall()
            indexes = conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'index_token'"
                " AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'index_token'::regclass)"
            ).fetchall()
            for name, _ in constraints:
                conn.execute(sql.SQL("ALTER TABLE index_token DROP CONSTRAINT {}").format(sql.Identifier(name)))
            for name, _ in indexes:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            with conn.cursor().copy(
                "COPY index_record (id, node_id, record_ref, cluster_id, key_id, updated_at) FROM STDIN"
            ) as copy:
                for record in records:
                    copy.write_row(record)
            with conn.cursor().copy("COPY index_token (token, record_id, variant_id) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.execute("SET maintenance_work_mem = '1GB'")
            for name, definition in constraints:
                conn.execute(
                    sql.SQL("ALTER TABLE index_token ADD CONSTRAINT {} {}").format(
                        sql.Identifier(name), sql.SQL(definition)
                    )
                )
            for _, definition in indexes:
                conn.execute(sql.SQL(definition))
            conn.commit()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE index_token")
            conn.execute("VACUUM ANALYZE index_record")
    return time.perf_counter() - started


def _timed(call: Callable[[], object], repeat: int) -> list[float]:
    times: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _size(engine: sa.Engine, url: str) -> str:
    if engine.dialect.name == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        return f"{sum(p.stat().st_size for p in path.parent.glob(path.name + '*')) / 2**20:,.0f} MiB"
    with engine.connect() as conn:
        size = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
    return f"{int(size) / 2**20:,.0f} MiB"


def run(kind: str, entries: int, lookups: int, workdir: Path, postgres_url: str) -> None:
    """Build one index and print its lookup figures."""
    rekey = RekeyKey(secrets.token_bytes(32))
    data = Synthetic(entries, rekey, seed=entries)
    with _database(kind, workdir, postgres_url) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            load_s = _load(engine, data)
            service = IndexService(engine, rekey)
            reader = store.lookup_reader(engine)
            with engine.connect() as conn:
                nodes = list(conn.execute(sa.text("SELECT id FROM node ORDER BY id")).scalars())
                stored = conn.execute(sa.text("SELECT count(*) FROM index_token")).scalar_one()
                sample = list(conn.execute(sa.text("SELECT token FROM index_token LIMIT 20000")).scalars())
            targets = list(data.targets)
            data.random.shuffle(targets)
            # The probes are made before the clock starts: a lookup is what the coordinator does with them.
            probes = [
                (record_id, nodes[(record_id + 1) % NODES], data.probe(record_id))  # never the holder
                for record_id in itertools.islice(itertools.cycle(targets), WARM_UP + lookups)
            ]
            turn = iter(probes)

            def lookup() -> None:
                record_id, asker, probe = next(turn)
                hits = service.lookup(asker, probe)
                if not any(hit.ref == f"ref{record_id:012d}" and hit.decision == "MATCH" for hit in hits):
                    raise SystemExit("a lookup did not find its record")

            seek = sa.text("SELECT record_id FROM index_token WHERE token = :token")

            def baseline() -> None:
                with reader.connect() as conn:
                    conn.execute(seek, {"token": data.random.choice(sample)}).all()

            for _ in range(WARM_UP):
                lookup()
                baseline()
            measured: list[float] = []
            floor: list[float] = []
            loads = [os.getloadavg()[0]]
            for _ in range(lookups):  # interleaved, so that both see the same load from other processes
                measured.extend(_timed(lookup, 1))
                floor.extend(_timed(baseline, 1))
            loads.append(os.getloadavg()[0])
            p50, p99 = statistics.median(measured), _percentile(measured, 0.99)
            b50, b99 = statistics.median(floor), _percentile(floor, 0.99)
            print(
                f"{kind:8} {int(stored):>11,} entries ({data.records:,} records, {_size(engine, url)}, "
                f"loaded in {load_s:.0f} s): lookup p50 {p50:.2f} ms p99 {p99:.2f} ms | "
                f"baseline seek p50 {b50:.3f} ms p99 {b99:.3f} ms | ratio p50 {p50 / b50:.0f}x p99 {p99 / b99:.0f}x"
                f" | load average {min(loads):.1f}-{max(loads):.1f}",
                flush=True,
            )
            service.close()
            if reader is not engine:
                reader.dispose()
        finally:
            engine.dispose()


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        for entries in args.entries:
            for kind in args.db:
                run(kind, entries, args.lookups, Path(workdir), args.postgres_url)


if __name__ == "__main__":
    main()
