"""Linkage precision at index scale: the index records hidden among a million generated people.

The index of :mod:`benchmarks.linkage` holds 5,000 FEBRL records, which says little about chance
agreement in a national index. Here every ``--index`` record is hidden among ``--people`` generated
people whose fields are drawn independently from the index file's own frequency tables (given and
family names, birth year and day of the year, postcode, street, house number, building, locality and
state, with the file's share of missing values; national ids unique random numbers of the file's
usual length that no index record holds). Every ``--queries`` record is then looked up against the
whole population exactly as in :mod:`benchmarks.linkage`, and MATCH decisions are scored: a generated
person is never a true match, so each one declared is a false positive.

Also reported: the **strong-token collision rate** — the share of people (index records and generated)
who share a STRONG token with a different person, per strong variant and overall — and the count rule
beside the evidence rule. Tokens are computed in ``--workers`` processes, in chunks; only tokens that
some query holds are kept, so memory stays small at any ``--people``.

Usage::

    python -m benchmarks.linkage_scale --people 1000000 [--workers 2] [--index A.csv --queries B.csv
        --truth T.csv --map ...]   (the defaults are FEBRL 4 in ../shared/data/febrl)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if not __package__:  # run as a file (python benchmarks/NAME.py): put the repo root on sys.path
    import _script  # type: ignore[import-not-found]  # noqa: F401  # benchmarks/_script.py

from benchmarks.linkage import (
    FEBRL_MAP,
    LinkageScore,
    load_records,
    load_truth,
    parse_map,
    score_pairs,
)
from common.linkage.demographics import Demographics
from common.linkage.keys import LinkageKey
from common.linkage.matching import DEFAULT_RULE, Decision, MatchRule, link_results
from common.linkage.normalise import parse_date
from common.linkage.probes import query_tokens
from common.linkage.tokens import VARIANTS, VARIANTS_BY_NAME, Tier, VariantKeys, tokens_for

__all__ = ["ScaleResult", "run_scale"]

_FEBRL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "febrl"
_DRAWN_FIELDS = ("given", "family", "postcode", "street_number", "street", "address_line2", "locality", "state")
_STRONG = tuple(variant.name for variant in VARIANTS if variant.tier is Tier.STRONG)
_STRONG_INDEX = {name: i for i, name in enumerate(_STRONG)}


@dataclass(frozen=True, slots=True)
class Tables:
    """Frequency tables of the index file's fields: values and their counts (``None`` is missing)."""

    fields: dict[str, tuple[list[str | None], list[int]]]
    years: tuple[list[int | None], list[int]]
    month_days: tuple[list[tuple[int, int]], list[int]]
    id_length: int | None
    index_ids: frozenset[str]


def _table(values: Sequence[str | None]) -> tuple[list[str | None], list[int]]:
    counts = Counter(values)
    return list(counts), list(counts.values())


def frequency_tables(records: Sequence[tuple[str, Demographics]]) -> Tables:
    """The tables the generated people are drawn from."""
    demographics = [demo for _, demo in records]
    fields = {name: _table([getattr(demo, name) for demo in demographics]) for name in _DRAWN_FIELDS}
    births = [parse_date(demo.birth_date) for demo in demographics]
    year_counts = Counter(birth.year if birth is not None else None for birth in births)
    complete = [(birth.month, birth.day) for birth in births if birth is not None and birth.complete]
    month_days = Counter((month, day) for month, day in complete if month is not None and day is not None)
    ids = [demo.national_id for demo in demographics if demo.national_id]
    lengths = Counter(len(value) for value in ids)
    return Tables(
        fields=fields,
        years=(list(year_counts), list(year_counts.values())),
        month_days=(list(month_days), list(month_days.values())),
        id_length=lengths.most_common(1)[0][0] if lengths else None,
        index_ids=frozenset(ids),
    )


def generate_people(tables: Tables, start: int, count: int, seed: int) -> list[Demographics]:
    """``count`` people (numbers ``start``..) drawn from ``tables``; the same arguments give the same people."""
    rng = random.Random(seed * 1_000_003 + start)
    columns = {name: rng.choices(values, counts, k=count) for name, (values, counts) in tables.fields.items()}
    years = rng.choices(*tables.years, k=count)
    month_days = rng.choices(*tables.month_days, k=count)
    ids: list[str | None] = [None] * count
    if tables.id_length is not None:
        low, high = 10 ** (tables.id_length - 1), 10**tables.id_length
        # Unique ids without a global draw: n -> n * m + seed (mod span) is a bijection because m is not
        # divisible by 2, 3 or 5, the only prime factors of span = 9 * 10^(length - 1).
        span = high - low
        for i in range(count):
            value = str(low + ((start + i) * 7_919_317 + seed) % span)
            ids[i] = value if value not in tables.index_ids else None
    people = []
    for i in range(count):
        year = years[i]
        birth = None if year is None else f"{year:04d}{month_days[i][0]:02d}{month_days[i][1]:02d}"
        people.append(
            Demographics(
                birth_date=birth,
                national_id=ids[i],
                **{name: columns[name][i] for name in _DRAWN_FIELDS},
            )
        )
    return people


# Worker state, set in the parent before the pool forks.
_STATE: dict[str, object] = {}


def _token_prefix(value_hex: str) -> int:
    return int(value_hex[:16], 16) - (1 << 63)  # first 64 bits as a signed int64


@dataclass
class _Strong:
    """Strong tokens of many people: 64-bit prefixes, the variant (index in ``_STRONG``) and the owner."""

    values: list[np.ndarray]
    variants: list[np.ndarray]
    owners: list[np.ndarray]

    def add(self, values: list[int], variants: list[int], owners: list[int]) -> None:
        self.values.append(np.array(values, dtype=np.int64))
        self.variants.append(np.array(variants, dtype=np.int8))
        self.owners.append(np.array(owners, dtype=np.int64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.values:
            return np.array([], np.int64), np.array([], np.int8), np.array([], np.int64)
        return np.concatenate(self.values), np.concatenate(self.variants), np.concatenate(self.owners)


_ChunkResult = tuple[list[tuple[int, int, str]], list[int], list[int], list[int], float, int]


def _tokens_of(
    number: int,
    person: Demographics,
    keys: VariantKeys,
    query_map: dict[str, list[int]],
    out: tuple[list[tuple[int, int, str]], list[int], list[int], list[int]],
) -> int:
    """Add one person's query hits and strong tokens to ``out``; the number of tokens computed."""
    hits, values, variants, owners = out
    tokens = tokens_for(person, keys)
    for token in tokens:
        for query in query_map.get(token.value_hex, ()):
            hits.append((query, number, token.variant))
        if token.tier is Tier.STRONG:
            values.append(_token_prefix(token.value_hex))
            variants.append(_STRONG_INDEX[token.variant])
            owners.append(number)
    return len(tokens)


def _chunk(args: tuple[int, int]) -> _ChunkResult:
    """Tokens of one chunk of generated people: hits on query tokens, strong tokens, CPU time, count."""
    start, count = args
    tables: Tables = _STATE["tables"]  # type: ignore[assignment]
    keys: VariantKeys = _STATE["keys"]  # type: ignore[assignment]
    query_map: dict[str, list[int]] = _STATE["query_map"]  # type: ignore[assignment]
    seed: int = _STATE["seed"]  # type: ignore[assignment]
    people = generate_people(tables, start, count, seed)
    out: tuple[list[tuple[int, int, str]], list[int], list[int], list[int]] = ([], [], [], [])
    started = time.process_time()
    produced = sum(_tokens_of(start + offset, person, keys, query_map, out) for offset, person in enumerate(people))
    cpu = time.process_time() - started
    return (*out, cpu, produced)


@dataclass
class ScaleResult:
    """What one scale run measured."""

    people: int
    index_records: int
    with_id: LinkageScore
    without_id: LinkageScore
    count_rule: LinkageScore
    count_n: int
    false_from_generated: int
    strong_collision_people: int
    strong_people: int
    strong_collisions_by_variant: dict[str, tuple[int, int]]
    tokens_per_cpu_second: float
    candidates_per_query: float

    @property
    def strong_collision_rate(self) -> float:
        """Share of people with a strong token who share one with a different person."""
        return self.strong_collision_people / self.strong_people if self.strong_people else 0.0


def _colliding_owners(values: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """The people holding a token value that a different person also holds."""
    if values.size == 0:
        return np.array([], dtype=np.int64)
    order = np.lexsort((owners, values))
    values, owners = values[order], owners[order]
    same_value = values[1:] == values[:-1]
    other_owner = owners[1:] != owners[:-1]
    # A value shared within a run of equal values by two owners marks the whole run.
    run_start = np.concatenate(([True], ~same_value))
    run_id = np.cumsum(run_start) - 1
    run_has_two = np.zeros(int(run_id[-1]) + 1, dtype=bool)
    np.logical_or.at(run_has_two, run_id[1:][same_value & other_owner], True)
    shared = run_has_two[run_id]
    return np.unique(owners[shared])


def run_scale(
    index_records: Sequence[tuple[str, Demographics]],
    query_records: Sequence[tuple[str, Demographics]],
    truth: set[tuple[str, str]],
    *,
    people: int,
    seed: int = 1,
    workers: int = 1,
    chunk: int = 20_000,
    rule: MatchRule = DEFAULT_RULE,
    count_n: int = 4,
    progress: bool = False,
) -> ScaleResult:
    """Hide ``index_records`` among ``people`` generated people and score every query's lookup."""
    keys = VariantKeys(LinkageKey.generate())
    tables = frequency_tables(index_records)
    query_ids = [query_id for query_id, _ in query_records]
    query_map: dict[str, list[int]] = {}
    for number, (_, demographics) in enumerate(query_records):
        for token in query_tokens(demographics, keys):
            query_map.setdefault(token.value_hex, []).append(number)

    # Person numbers: generated people 0..people-1, index records from ``people`` on.
    out: tuple[list[tuple[int, int, str]], list[int], list[int], list[int]] = ([], [], [], [])
    index_numbers = {people + offset: record_id for offset, (record_id, _) in enumerate(index_records)}
    started = time.process_time()
    produced = sum(
        _tokens_of(people + offset, demographics, keys, query_map, out)
        for offset, (_, demographics) in enumerate(index_records)
    )
    cpu = time.process_time() - started
    hits = out[0]
    strong = _Strong([], [], [])
    strong.add(out[1], out[2], out[3])

    _STATE.update(tables=tables, keys=keys, query_map=query_map, seed=seed)
    chunks = [(start, min(chunk, people - start)) for start in range(0, people, chunk)]
    wall = time.perf_counter()
    try:
        pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
        results: Iterable[_ChunkResult] = pool.imap_unordered(_chunk, chunks) if pool else map(_chunk, chunks)
        for done, (chunk_hits, chunk_values, chunk_variants, chunk_owners, chunk_cpu, chunk_tokens) in enumerate(
            results, 1
        ):
            hits.extend(chunk_hits)
            strong.add(chunk_values, chunk_variants, chunk_owners)
            cpu += chunk_cpu
            produced += chunk_tokens
            if progress:
                print(
                    f"  {done}/{len(chunks)} chunks of generated people, {time.perf_counter() - wall:.0f} s", flush=True
                )
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        _STATE.clear()

    by_query: dict[int, list[tuple[int, str]]] = {}
    for query, number, variant in hits:
        by_query.setdefault(query, []).append((number, variant))
    index_ids = set(index_numbers.values())
    query_id_set = set(query_ids)
    truth = {pair for pair in truth if pair[0] in index_ids and pair[1] in query_id_set}

    def ref(number: int) -> str:
        return index_numbers.get(number, f"generated-{number}")

    def decisions(*, with_id: bool) -> list[tuple[str, str, Decision | None]]:
        decided: list[tuple[str, str, Decision | None]] = []
        for query, query_hits in by_query.items():
            kept = [
                (number, variant)
                for number, variant in query_hits
                if with_id or "national_id" not in VARIANTS_BY_NAME[variant].features
            ]
            decided.extend((ref(result.ref), query_ids[query], result.decision) for result in link_results(kept, rule))
        return decided

    with_id_decisions = decisions(with_id=True)
    false_generated = sum(
        1
        for index_id, _, decision in with_id_decisions
        if decision is Decision.MATCH and index_id.startswith("generated-")
    )
    count_decisions = []
    for query, query_hits in by_query.items():
        by_ref: dict[int, set[str]] = {}
        for number, variant in query_hits:
            by_ref.setdefault(number, set()).add(variant)
        for number, variants in by_ref.items():
            strong_hit = any(VARIANTS_BY_NAME[name].tier is Tier.STRONG for name in variants)
            match = strong_hit or len(variants) >= count_n
            count_decisions.append((ref(number), query_ids[query], Decision.MATCH if match else None))

    strong_values, strong_variants, strong_owners = strong.arrays()
    by_variant: dict[str, tuple[int, int]] = {}
    colliding: list[np.ndarray] = []
    for name, position in _STRONG_INDEX.items():
        mask = strong_variants == position
        owners_of_variant = _colliding_owners(strong_values[mask], strong_owners[mask])
        colliding.append(owners_of_variant)
        by_variant[name] = (int(owners_of_variant.size), int(np.unique(strong_owners[mask]).size))
    colliding_people = np.unique(np.concatenate(colliding)) if colliding else np.array([], np.int64)
    return ScaleResult(
        people=people,
        index_records=len(index_records),
        with_id=score_pairs(with_id_decisions, truth, len(truth)),
        without_id=score_pairs(decisions(with_id=False), truth, len(truth)),
        count_rule=score_pairs(count_decisions, truth, len(truth)),
        count_n=count_n,
        false_from_generated=false_generated,
        strong_collision_people=int(colliding_people.size),
        strong_people=int(np.unique(strong_owners).size),
        strong_collisions_by_variant=by_variant,
        tokens_per_cpu_second=produced / cpu if cpu else 0.0,
        candidates_per_query=len({(query, number) for query, number, _ in hits}) / max(len(query_records), 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=_FEBRL / "dataset4a.csv")
    parser.add_argument("--queries", type=Path, default=_FEBRL / "dataset4b.csv")
    parser.add_argument("--truth", type=Path, default=_FEBRL / "febrl4_true_matches.csv")
    parser.add_argument("--map", default=FEBRL_MAP, help="field=column,... as in benchmarks/linkage.py")
    parser.add_argument("--people", type=int, default=1_000_000, help="generated people to hide the index among")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--chunk", type=int, default=20_000)
    parser.add_argument("--count-n", type=int, default=4, help="N of the count rule printed for comparison")
    args = parser.parse_args()

    mapping = parse_map(args.map)
    index_records = load_records(args.index, mapping)
    query_records = load_records(args.queries, mapping)
    truth = load_truth(args.truth)
    wall = time.perf_counter()
    result = run_scale(
        index_records,
        query_records,
        truth,
        people=args.people,
        seed=args.seed,
        workers=args.workers,
        chunk=args.chunk,
        count_n=args.count_n,
        progress=True,
    )
    wall = time.perf_counter() - wall
    print(
        f"index: {result.index_records:,} records hidden among {result.people:,} generated people; "
        f"{len(query_records):,} queries; rule MATCH >= {DEFAULT_RULE.match_bits:g} bits"
    )
    print(f"all fields:          {result.with_id.line()}")
    print(f"  of the false MATCHes, {result.false_from_generated} are generated people")
    print(f"without national_id: {result.without_id.line()}")
    print(f"count rule N = {result.count_n} (all fields): {result.count_rule.line()}")
    print(
        f"strong-token collisions: {result.strong_collision_people:,} of {result.strong_people:,} people "
        f"({result.strong_collision_rate:.2e}) share a strong token with a different person"
    )
    for name, (colliding, holders) in result.strong_collisions_by_variant.items():
        rate = colliding / holders if holders else 0.0
        print(f"  {name:<36} {colliding:>7,} of {holders:>9,} ({rate:.2e})")
    print(
        f"index hits per lookup (candidates): {result.candidates_per_query:.2f}; "
        f"tokens {result.tokens_per_cpu_second:,.0f} per CPU-second per core; {wall:.0f} s wall"
    )


if __name__ == "__main__":
    main()
