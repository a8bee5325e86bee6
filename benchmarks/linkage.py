"""Linkage quality and token speed on any two CSV files with known true matches.

Builds an index of the linkage tokens of every ``--index`` record (as a node would publish them), looks
up every ``--queries`` record with its query-side probes (as the asking node would), decides each hit
with :func:`common.linkage.matching.decide`, and scores the MATCH decisions against ``--truth``:
recall, precision, F1 (every MATCH counts, not only the best per query). POSSIBLE decisions are
counted separately. ``--map`` maps medfed's demographic fields to CSV columns, so a new data set is
scored without code changes; a field left out of the map (or named in ``--without``) is not used.

Fields: id (required), given, family, birth_date, sex, postcode, street_number, street, street_line
(a whole address line, split into number and street), address_line2, locality, state, national_id,
national_id_system.

Speed: index-side tokens per CPU-second of one core (normalisation, features, HKDF-derived per-variant
keys, HMAC-SHA256), against a same-run baseline of bare HMAC-SHA256 calls over messages of the same
length, one per token: the ratio says what normalisation and the recipe cost above the hashing floor.

Usage (FEBRL 4)::

    python benchmarks/linkage.py --index ../shared/data/febrl/dataset4a.csv \\
        --queries ../shared/data/febrl/dataset4b.csv --truth ../shared/data/febrl/febrl4_true_matches.csv \\
        --map id=rec_id,given=given_name,family=surname,birth_date=date_of_birth,postcode=postcode,\\
street_number=street_number,street=address_1,address_line2=address_2,locality=suburb,state=state,\\
national_id=soc_sec_id [--without national_id] [--sweep]
"""

from __future__ import annotations

import argparse
import csv
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from common.crypto.kdf import hmac_sha256
from common.linkage.demographics import Demographics
from common.linkage.features import FEATURES, calibrated_weights, extract_features, measured_bits
from common.linkage.keys import LinkageKey
from common.linkage.matching import DEFAULT_RULE, Decision, MatchRule, link_results
from common.linkage.normalise import split_street_line
from common.linkage.probes import query_tokens
from common.linkage.tokens import VARIANTS_BY_NAME, Tier, Token, VariantKeys, tokens_for

__all__ = [
    "FIELDS",
    "LinkageScore",
    "TokenIndex",
    "calibrated_rule",
    "evaluate",
    "hits_for",
    "load_records",
    "load_truth",
    "parse_map",
    "score_pairs",
]

#: The field names ``--map`` accepts besides ``id``.
FIELDS = (*(field.name for field in fields(Demographics)), "street_line")
FEBRL_MAP = (
    "id=rec_id,given=given_name,family=surname,birth_date=date_of_birth,postcode=postcode,"
    "street_number=street_number,street=address_1,address_line2=address_2,locality=suburb,state=state,"
    "national_id=soc_sec_id"
)


def parse_map(text: str, *, without: Iterable[str] = ()) -> dict[str, str]:
    """``field=column,...`` as a dict; fields in ``without`` dropped. ``id`` is required."""
    mapping: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        field, _, column = item.partition("=")
        field, column = field.strip(), column.strip()
        if field != "id" and field not in FIELDS:
            raise SystemExit(f"--map: unknown field {field!r}; known: id, {', '.join(FIELDS)}")
        if not column:
            raise SystemExit(f"--map: field {field!r} names no column")
        mapping[field] = column
    if "id" not in mapping:
        raise SystemExit("--map must name the id column (id=...)")
    for field in without:
        mapping.pop(field, None)
    return mapping


def _demographics(row: Mapping[str, str], mapping: Mapping[str, str]) -> Demographics:
    values = {field: (row.get(column) or "").strip() or None for field, column in mapping.items() if field != "id"}
    line = values.pop("street_line", None)
    if line is not None and not values.get("street"):
        number, street = split_street_line(line)
        values.setdefault("street_number", number)
        values["street"] = street
    return Demographics(**values)


def load_records(path: Path, mapping: Mapping[str, str]) -> list[tuple[str, Demographics]]:
    """``(record id, Demographics)`` of every row of a CSV file (``", "`` separators allowed)."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        header = reader.fieldnames or []
        missing = [column for column in mapping.values() if column not in header]
        if missing:
            raise SystemExit(f"{path}: no column(s) {', '.join(missing)}")
        return [(row[mapping["id"]].strip(), _demographics(row, mapping)) for row in reader]


def load_truth(path: Path, columns: Sequence[str] | None = None) -> set[tuple[str, str]]:
    """The true (index id, query id) pairs: the first two columns, or the two named."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        header = reader.fieldnames or []
        first, second = columns if columns else header[:2]
        return {(row[first].strip(), row[second].strip()) for row in reader}


class TokenIndex:
    """An in-memory index: token value -> the (record id, variant) that published it."""

    def __init__(self) -> None:
        """An empty index."""
        self._postings: dict[str, list[tuple[str, str]]] = {}
        self.tokens = 0

    def add(self, record_id: str, tokens: Iterable[Token]) -> None:
        """Publish one record's tokens."""
        for token in tokens:
            self._postings.setdefault(token.value_hex, []).append((record_id, token.variant))
            self.tokens += 1

    def lookup(self, tokens: Iterable[Token]) -> list[tuple[str, str]]:
        """``(record id, matched variant)`` for every posting of every token."""
        return [(ref, token.variant) for token in tokens for ref, _ in self._postings.get(token.value_hex, ())]


def hits_for(
    index: TokenIndex, demographics: Demographics, keys: VariantKeys, *, use_probes: bool = True
) -> list[tuple[str, str]]:
    """The index hits of one query record (with its probes unless ``use_probes`` is false)."""
    tokens = query_tokens(demographics, keys) if use_probes else tokens_for(demographics, keys)
    return index.lookup(tokens)


@dataclass(frozen=True, slots=True)
class LinkageScore:
    """Recall, precision and F1 of the MATCH decisions, and the POSSIBLE counts beside them."""

    true_pairs: int
    tp: int
    fp: int
    possible_true: int
    possible_false: int

    @property
    def recall(self) -> float:
        """True pairs found / true pairs."""
        return self.tp / self.true_pairs if self.true_pairs else 0.0

    @property
    def precision(self) -> float:
        """True pairs found / pairs declared MATCH (1.0 when none were declared)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of recall and precision."""
        total = self.recall + self.precision
        return 2 * self.recall * self.precision / total if total else 0.0

    def line(self) -> str:
        """One line for the terminal."""
        return (
            f"recall {self.recall:.4f}  precision {self.precision:.4f}  F1 {self.f1:.4f}  "
            f"(tp {self.tp}, fp {self.fp}, fn {self.true_pairs - self.tp}; "
            f"POSSIBLE {self.possible_true} true, {self.possible_false} false)"
        )


def score_pairs(
    decided: Iterable[tuple[str, str, Decision | None]], truth: set[tuple[str, str]], true_pairs: int
) -> LinkageScore:
    """Score ``(index id, query id, decision)`` triples against the true pairs."""
    tp = fp = possible_true = possible_false = 0
    for index_id, query_id, decision in decided:
        true = (index_id, query_id) in truth
        if decision is Decision.MATCH:
            tp += true
            fp += not true
        elif decision is Decision.POSSIBLE:
            possible_true += true
            possible_false += not true
    return LinkageScore(true_pairs, tp, fp, possible_true, possible_false)


@dataclass
class Evaluation:
    """What :func:`evaluate` measured: the score, per-query hits for re-scoring, and token timing."""

    score: LinkageScore
    hits: dict[str, list[tuple[str, str]]]
    truth: set[tuple[str, str]]
    true_pairs: int
    index_records: int
    index_tokens: int
    index_cpu_s: float


def evaluate(
    index_records: Sequence[tuple[str, Demographics]],
    query_records: Sequence[tuple[str, Demographics]],
    truth: set[tuple[str, str]],
    *,
    key: LinkageKey | None = None,
    rule: MatchRule = DEFAULT_RULE,
    use_probes: bool = True,
) -> Evaluation:
    """Index ``index_records``, look up every query record, score the decisions against ``truth``."""
    keys = VariantKeys(key or LinkageKey.generate())
    index = TokenIndex()
    started = time.process_time()
    for record_id, demographics in index_records:
        index.add(record_id, tokens_for(demographics, keys))
    index_cpu = time.process_time() - started
    index_ids = {record_id for record_id, _ in index_records}
    query_ids = {record_id for record_id, _ in query_records}
    truth = {pair for pair in truth if pair[0] in index_ids and pair[1] in query_ids}
    hits = {
        query_id: hits_for(index, demographics, keys, use_probes=use_probes) for query_id, demographics in query_records
    }
    return Evaluation(
        score=_score(hits, truth, rule),
        hits=hits,
        truth=truth,
        true_pairs=len(truth),
        index_records=len(index_records),
        index_tokens=index.tokens,
        index_cpu_s=index_cpu,
    )


def _score(hits: Mapping[str, list[tuple[str, str]]], truth: set[tuple[str, str]], rule: MatchRule) -> LinkageScore:
    decided = (
        (result.ref, query_id, result.decision)
        for query_id, query_hits in hits.items()
        for result in link_results(query_hits, rule)
    )
    return score_pairs(decided, truth, len(truth))


def _count_rule_score(hits: Mapping[str, list[tuple[str, str]]], truth: set[tuple[str, str]], n: int) -> LinkageScore:
    """The plain count rule, for comparison: MATCH on a strong token or on n or more weak variants."""
    decided = []
    for query_id, query_hits in hits.items():
        by_ref: dict[str, set[str]] = {}
        for ref, variant in query_hits:
            by_ref.setdefault(ref, set()).add(variant)
        for ref, variants in by_ref.items():
            strong = any(VARIANTS_BY_NAME[name].tier is Tier.STRONG for name in variants)
            decision = Decision.MATCH if strong or len(variants) >= n else None
            decided.append((ref, query_id, decision))
    return score_pairs(decided, truth, len(truth))


def calibrated_rule(index_records: Sequence[tuple[str, Demographics]], rule: MatchRule = DEFAULT_RULE) -> MatchRule:
    """``rule`` counting with the recipe's weights lowered to those measured on ``index_records``."""
    weights = calibrated_weights(measured_bits(extract_features(demographics) for _, demographics in index_records))
    return replace(rule, feature_bits=tuple(sorted(weights.items())))


def _hmac_baseline(tokens: int, message_length: int) -> float:
    """Bare HMAC-SHA256 calls per CPU-second over ``tokens`` messages of ``message_length`` bytes."""
    key = secrets.token_bytes(32)
    messages = [secrets.token_bytes(message_length) for _ in range(min(tokens, 1000))]
    started = time.process_time()
    for i in range(tokens):
        hmac_sha256(key, messages[i % len(messages)])
    return tokens / (time.process_time() - started)


def _sweep(evaluation: Evaluation) -> None:
    print("\nrule sweep (MATCH decisions; each line is the whole run re-decided):")
    for bits in (28, 30, 32, 33, 34, 35, 36, 38, 40):
        score = _score(evaluation.hits, evaluation.truth, replace(DEFAULT_RULE, match_bits=bits))
        print(f"  evidence >= {bits:>2} bits: {score.line()}")
    for n in (2, 3, 4, 5, 6, 8, 10):
        score = _count_rule_score(evaluation.hits, evaluation.truth, n)
        print(f"  count rule N = {n:>2}:     {score.line()}")


def _feature_report(index_records: Sequence[tuple[str, Demographics]]) -> None:
    """Measured chance agreement (bits) of each feature in the index file, beside the recipe's weights."""
    measured = measured_bits(extract_features(demographics) for _, demographics in index_records)
    print("\nfeature weights (bits): recipe vs measured on the index file (unbiased collision estimate)")
    for name, feature in FEATURES.items():
        if name in measured:
            print(f"  {name:<18} recipe {feature.bits:5.1f}   measured {measured[name]:5.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, help="CSV of the records the index holds")
    parser.add_argument("--queries", type=Path, required=True, help="CSV of the records looked up")
    parser.add_argument("--truth", type=Path, required=True, help="CSV of true (index id, query id) pairs")
    parser.add_argument("--map", default=FEBRL_MAP, help="field=column,... (default: FEBRL's columns)")
    parser.add_argument("--query-map", default=None, help="a different map for --queries (default: --map)")
    parser.add_argument("--truth-columns", default=None, help="index-id,query-id columns of --truth")
    parser.add_argument("--without", default="", help="comma-separated fields to leave out, e.g. national_id")
    parser.add_argument("--match-bits", type=float, default=DEFAULT_RULE.match_bits)
    parser.add_argument("--possible-bits", type=float, default=DEFAULT_RULE.possible_bits)
    parser.add_argument("--no-probes", action="store_true", help="look up the record as written only")
    parser.add_argument(
        "--calibrate", action="store_true", help="lower feature weights to those measured on the index file"
    )
    parser.add_argument("--sweep", action="store_true", help="also print other thresholds and the count rule")
    parser.add_argument("--features", action="store_true", help="also print measured feature weights")
    args = parser.parse_args()

    without = [name.strip() for name in args.without.split(",") if name.strip()]
    index_map = parse_map(args.map, without=without)
    query_map = parse_map(args.query_map, without=without) if args.query_map else index_map
    index_records = load_records(args.index, index_map)
    query_records = load_records(args.queries, query_map)
    truth_columns = args.truth_columns.split(",") if args.truth_columns else None
    truth = load_truth(args.truth, truth_columns)
    rule = MatchRule(match_bits=args.match_bits, possible_bits=args.possible_bits)
    if args.calibrate:
        rule = calibrated_rule(index_records, rule)

    wall = time.perf_counter()
    evaluation = evaluate(index_records, query_records, truth, rule=rule, use_probes=not args.no_probes)
    wall = time.perf_counter() - wall
    used = ", ".join(field for field in index_map if field != "id")
    print(f"fields: {used}")
    print(
        f"index {evaluation.index_records:,} records, queries {len(query_records):,}, "
        f"true pairs {evaluation.true_pairs:,}; rule: MATCH >= {rule.match_bits:g} bits, "
        f"POSSIBLE >= {rule.possible_bits:g}; probes {'off' if args.no_probes else 'on'}; "
        f"weights: {'calibrated on the index file' if rule.feature_bits else 'the recipe'}"
    )
    print(f"MATCH: {evaluation.score.line()}")
    per_record = evaluation.index_tokens / max(evaluation.index_records, 1)
    rate = evaluation.index_tokens / evaluation.index_cpu_s if evaluation.index_cpu_s else float("inf")
    baseline = _hmac_baseline(evaluation.index_tokens, 48)
    print(
        f"tokens: {per_record:.1f} per index record; {rate:,.0f} tokens per CPU-second (one core), "
        f"{evaluation.index_records / evaluation.index_cpu_s:,.0f} records/s; bare HMAC-SHA256 baseline "
        f"{baseline:,.0f}/s, ratio {rate / baseline:.2f}; whole run {wall:.1f} s wall"
    )
    if args.sweep:
        _sweep(evaluation)
    if args.features:
        _feature_report(index_records)


if __name__ == "__main__":
    main()
