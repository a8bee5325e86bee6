"""Linkage of generated Chinese records: traditional/simplified, full-width, pinyin and resident-ID variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.linkage import calibrated_rule, evaluate, load_records, load_truth, parse_map
from benchmarks.linkage_chinese import CHINESE_MAP, write_sites

pytestmark = pytest.mark.slow


def test_chinese_records_link_across_scripts_with_calibrated_weights(tmp_path: Path) -> None:
    """With weights calibrated on hospital A's records, B's records link at precision >= 0.995, recall >= 0.85."""
    a_path, b_path, truth_path = write_sites(tmp_path, people_a=3000, people_b=1500, overlap=0.7, seed=5)
    mapping = parse_map(CHINESE_MAP)
    index, queries = load_records(a_path, mapping), load_records(b_path, mapping)
    truth = load_truth(truth_path)
    score = evaluate(index, queries, truth, rule=calibrated_rule(index)).score
    assert score.true_pairs == 1050
    assert score.precision >= 0.995
    assert score.recall >= 0.85
