"""Reading the policy file: the shipped example is valid, and every mistake is a ConfigError with its location."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ConfigError
from node.policy.model import load_policy, load_policy_bytes

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "policy.example.yaml"

MINIMAL = b"""
version: 1
studies:
  s1:
    researchers: [alice]
    jobs:
      count: {approval: auto}
"""


def test_the_shipped_example_is_a_valid_policy() -> None:
    """deploy/policy.example.yaml loads, with its two studies and its hash."""
    loaded = load_policy(EXAMPLE)
    assert sorted(loaded.policy.studies) == ["diabetes-2026", "registry-audit"]
    assert len(loaded.sha256) == 64
    study = loaded.policy.studies["diabetes-2026"]
    assert study.privacy is not None
    assert study.privacy.budget_of("alice").epsilon == 2.0
    assert study.privacy.budget_of("bob").epsilon == 1.0


def test_a_minimal_policy_takes_cautious_defaults() -> None:
    """Unsaid: approval 'person', release 'auto', minimum cell size 10, no node-wide DP cap."""
    unsaid = load_policy_bytes(MINIMAL.replace(b"{approval: auto}", b"{}")).policy.studies["s1"].jobs.count
    assert unsaid is not None
    assert unsaid.approval == "person"
    policy = load_policy_bytes(MINIMAL).policy
    count = policy.studies["s1"].jobs.count
    assert count is not None
    assert (count.approval, count.release) == ("auto", "auto")
    assert policy.studies["s1"].min_cell_size == 10
    assert policy.node.epsilon_cap == 0.0
    assert policy.studies["s1"].jobs.analysis is None


def _problems(text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as raised:
        load_policy_bytes(text.encode())
    return raised.value.hints


@pytest.mark.parametrize(
    ("text", "location"),
    [
        ("version: 2\n", "version"),
        ("version: 1\nstudis: {}\n", "studis"),
        (
            "version: 1\nstudies: {s: {researchers: [a], jobs: {count: {aproval: auto}}}}\n",
            "studies.s.jobs.count.aproval",
        ),
        (
            "version: 1\nstudies: {s: {researchers: [a], jobs: {count: {approval: maybe}}}}\n",
            "studies.s.jobs.count.approval",
        ),
        ("version: 1\nstudies: {s: {researchers: [no], jobs: {}}}\n", "studies.s.researchers[0]"),
        ("version: 1\nstudies: {s: {researchers: [a], min_cell_size: '10', jobs: {}}}\n", "studies.s.min_cell_size"),
        (
            "version: 1\nstudies: {s: {researchers: [a], jobs: {analysis: {analyses: [mean]}}}}\n",
            "studies.s.jobs.analysis.analyses",
        ),
        (
            "version: 1\nstudies: {s: {researchers: [a], jobs: {}, sources: [{view: v}]}}\n",
            "studies.s.sources[0].columns",
        ),
        (
            "version: 1\nstudies: {s: {researchers: [a], jobs: {}, sources: [{view: v, dataset: d, columns: '*'}]}}\n",
            "studies.s.sources[0]",
        ),
        ("version: 1\nnode: {epsilon_cap: 1e-6}\n", "node.epsilon_cap"),
        (
            "version: 1\nstudies: {s: {researchers: [a], jobs: {},"
            " privacy: {epsilon: 1, researchers: {b: {epsilon: 2}}}}}\n",
            "studies.s",
        ),
        ("version: 1\nstudies: {2026: {researchers: [a], jobs: {}}}\n", "studies[2026] (key)"),
    ],
)
def test_each_mistake_is_named_by_its_location(text: str, location: str) -> None:
    """Unknown keys, wrong types (YAML's 'no', numbers as text), unknown analyses, bad sources: one hint each."""
    problems = _problems(text)
    assert any(problem.startswith(location) for problem in problems), problems


def test_duplicate_keys_are_refused_with_their_line() -> None:
    """A study written twice is an error (PyYAML would silently keep the second one)."""
    problems = _problems("version: 1\nstudies:\n  s: {researchers: [a], jobs: {}}\n  s: {researchers: [b], jobs: {}}\n")
    assert problems == ("line 4, column 3: duplicate key 's'",)


def test_yaml_that_does_not_parse_names_its_position() -> None:
    """Broken YAML gives the line and column of the problem."""
    problems = _problems("version: 1\nstudies: [\n")
    assert any(problem.startswith("line ") for problem in problems)


def test_a_policy_that_is_not_a_mapping_is_refused() -> None:
    """A list or a scalar at the top level is not a policy."""
    assert _problems("- a\n- b\n") == ("(top level): mapping",)
