"""The lookup decision rule: strong tokens, weak tokens adding up, POSSIBLE, calibrated weights."""

from __future__ import annotations

import pytest

from common.errors import InputError
from common.linkage.features import FEATURES, calibrated_weights, measured_bits
from common.linkage.matching import DEFAULT_RULE, Decision, MatchRule, decide, evidence, link_results


def test_a_strong_variant_alone_is_a_match() -> None:
    """National id with birth date decides a MATCH by itself."""
    assert decide(["birth_date+national_id"]) is Decision.MATCH


def test_one_weak_variant_alone_is_nothing() -> None:
    """A single weak token (names and postcode) is a coincidence in a large index."""
    assert decide(["given+family+postcode"]) is None


def test_weak_variants_on_disjoint_fields_add_up_to_a_match() -> None:
    """Names with birth date, plus birth date with postcode, agree on enough fields together."""
    variants = ["given+family+birth_date", "birth_date+postcode"]
    assert evidence(variants) >= DEFAULT_RULE.match_bits
    assert decide(variants) is Decision.MATCH


def test_weak_variants_repeating_the_same_fields_do_not_add_up() -> None:
    """Exact and phonetic forms of one name count once: many tokens on the same fields stay weak."""
    variants = ["given+family+postcode", "given_phonetic+family+postcode", "given+family_phonetic+postcode"]
    assert evidence(variants) == evidence(["given+family+postcode"])
    assert decide(variants) is None


def test_evidence_between_the_thresholds_is_possible() -> None:
    """Names and birth date alone (about 30 bits) are POSSIBLE: a person should look."""
    assert DEFAULT_RULE.possible_bits <= evidence(["given+family+birth_date"]) < DEFAULT_RULE.match_bits
    assert decide(["given+family+birth_date"]) is Decision.POSSIBLE


def test_an_unknown_variant_is_an_input_error() -> None:
    """A variant name of another recipe is refused, never ignored."""
    with pytest.raises(InputError):
        decide(["given+favourite_colour"])


def test_link_results_group_hits_by_record_and_sort_matches_first() -> None:
    """Hits are grouped per indexed record; MATCHes come before POSSIBLEs; unlinked records are left out."""
    hits = [
        ("weak", "given+family+birth_date"),
        ("strong", "birth_date+national_id"),
        ("noise", "given+family+postcode"),
        ("strong", "given+family+birth_date"),
    ]
    results = link_results(hits)
    assert [(result.ref, result.decision) for result in results] == [
        ("strong", Decision.MATCH),
        ("weak", Decision.POSSIBLE),
    ]


def test_calibrated_weights_are_never_above_the_recipe() -> None:
    """Calibration lowers a weight to what was measured and never raises one."""
    weights = calibrated_weights({"locality": 3.0, "family": 40.0})
    assert weights["locality"] == 3.0
    assert weights["family"] == FEATURES["family"].bits
    assert weights["birth_date"] == FEATURES["birth_date"].bits


def test_a_calibrated_rule_stops_coarse_fields_from_deciding() -> None:
    """With localities and streets measured as coarse, an address-only agreement is no longer a MATCH."""
    variants = ["given+locality+street", "family+locality+street", "postcode+locality+street"]
    assert decide(variants) is Decision.MATCH
    coarse = MatchRule.calibrated(calibrated_weights({"locality": 3.0, "street": 3.3, "family": 4.2}))
    assert decide(variants, coarse) is None


def test_measured_bits_estimate_chance_agreement_without_small_sample_bias() -> None:
    """Two equally common values are 1 bit; all-distinct values give no estimate."""
    records = [{"state": "a"}] * 50 + [{"state": "b"}] * 50
    assert measured_bits(records)["state"] == pytest.approx(-1 * __import__("math").log2(98 / 198), abs=1e-3)
    assert "national_id" not in measured_bits([{"national_id": str(i)} for i in range(100)])
