"""The decision rule of a lookup: from the variants whose tokens matched, MATCH, POSSIBLE or nothing.

The index knows, for a looked-up record and one indexed record, only which variants' tokens were
equal. Each variant names its features, so the matched variants say which features agree; their
**evidence** is what those features carry together (:func:`common.linkage.features.evidence_bits`:
per field group the strongest agreeing form, summed over groups — agreeing on ``family`` in two
variants counts once).

The rule (:data:`DEFAULT_RULE`):

- **MATCH** when any STRONG variant matched, or when the weak variants that matched agree on features
  worth at least ``match_bits`` (35 bits) together. A weak variant carries less than that alone, so
  this is "at least N weak variants agree", with N counted in evidence rather than in tokens: three
  weak tokens that share a surname and a birth date say less than two about disjoint fields.
- **POSSIBLE** when the evidence is at least ``possible_bits`` (28 bits) but below a MATCH: worth a
  person's look, never an automatic release (the holding node re-checks demographics and consent).
- nothing below that: one weak token alone is a coincidence in a large index.

The weights are the recipe's unless the rule carries calibrated ones (:meth:`MatchRule.calibrated`):
a network whose localities are whole cities or whose family names are few must count agreement on them
as the weaker evidence it is there (:func:`common.linkage.features.calibrated_weights`).

Why these numbers (``benchmarks/README.md``, "Linkage"; tuned on FEBRL 4 only): on FEBRL 4 alone no pair
of different people reaches even 28 bits, so the threshold is set by scale. With FEBRL 4's A file hidden
among a million people drawn from its own frequency tables, 35 bits declares one false MATCH in 5,000
lookups (precision 0.9998) and 28 bits marks 117 false POSSIBLEs; recall stays 0.998 with the national
id and 0.976 without. A plain count of matched weak tokens was measured beside it: N = 4 has the same
recall on FEBRL 4 alone but declares 93 false MATCHes at a million (precision 0.982), because it cannot
tell a token on new fields from one that repeats what another already said.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from common.errors import ErrorCode, InputError
from common.linkage.features import evidence_bits
from common.linkage.tokens import STRONG_BITS, VARIANTS_BY_NAME

__all__ = ["DEFAULT_RULE", "Decision", "LinkResult", "MatchRule", "decide", "evidence", "link_results"]

Ref = TypeVar("Ref", bound=Hashable)


class Decision(StrEnum):
    """What a lookup says about one indexed record."""

    MATCH = "MATCH"
    POSSIBLE = "POSSIBLE"


@dataclass(frozen=True, slots=True)
class MatchRule:
    """Evidence thresholds (bits) of a MATCH and of a POSSIBLE, and the feature weights to count with.

    ``feature_bits`` holds ``(feature, bits)`` pairs that replace the recipe's weights (a calibrated
    network, :func:`common.linkage.features.calibrated_weights`); empty means the recipe's own.
    """

    match_bits: float = STRONG_BITS
    possible_bits: float = 28.0
    feature_bits: tuple[tuple[str, float], ...] = ()

    @classmethod
    def calibrated(cls, weights: Mapping[str, float], **thresholds: float) -> MatchRule:
        """A rule that counts with ``weights`` (and the default thresholds unless given)."""
        return cls(feature_bits=tuple(sorted(weights.items())), **thresholds)

    @property
    def weights(self) -> dict[str, float]:
        """``feature_bits`` as a dict."""
        return dict(self.feature_bits)


DEFAULT_RULE = MatchRule()


def _features(variant_names: Iterable[str]) -> set[str]:
    features: set[str] = set()
    for name in variant_names:
        variant = VARIANTS_BY_NAME.get(name)
        if variant is None:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="unknown linkage token variant")
        features.update(variant.features)
    return features


def evidence(variant_names: Iterable[str], rule: MatchRule = DEFAULT_RULE) -> float:
    """The evidence (bits) of the features that the matched variants agree on together."""
    return evidence_bits(_features(variant_names), rule.weights if rule.feature_bits else None)


def decide(variant_names: Iterable[str], rule: MatchRule = DEFAULT_RULE) -> Decision | None:
    """MATCH, POSSIBLE or ``None`` for one indexed record, given the variants whose tokens matched it.

    With the recipe's weights a STRONG variant alone reaches ``match_bits`` (that is what STRONG
    means), so "any strong token, or weak ones worth as much together" is one comparison. An unknown
    variant name is an InputError (a node on another recipe version), never ignored.
    """
    return _decision(evidence(variant_names, rule), rule)


def _decision(bits: float, rule: MatchRule) -> Decision | None:
    if bits >= rule.match_bits:
        return Decision.MATCH
    if bits >= rule.possible_bits:
        return Decision.POSSIBLE
    return None


@dataclass(frozen=True, slots=True)
class LinkResult(Generic[Ref]):
    """One indexed record a lookup returns: its reference, the decision and the evidence (bits)."""

    ref: Ref
    decision: Decision
    bits: float


def link_results(hits: Iterable[tuple[Ref, str]], rule: MatchRule = DEFAULT_RULE) -> list[LinkResult[Ref]]:
    """Decide every indexed record among ``hits`` (pairs of record reference and matched variant).

    Records that reach neither threshold are left out; the rest come strongest first.
    """
    by_ref: dict[Ref, set[str]] = {}
    for ref, variant in hits:
        by_ref.setdefault(ref, set()).add(variant)
    results: list[LinkResult[Ref]] = []
    for ref, variants in by_ref.items():
        bits = evidence(variants, rule)
        decision = _decision(bits, rule)
        if decision is not None:
            results.append(LinkResult(ref, decision, bits))
    results.sort(key=lambda result: (result.decision is not Decision.MATCH, -result.bits))
    return results
