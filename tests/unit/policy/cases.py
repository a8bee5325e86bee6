"""A table of jobs and what the example-like policy below decides for each, and why (shared with the CLI test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

POLICY = """
version: 1
node:
  epsilon_cap: 3.0
  approval_timeout_hours: 1
  release_timeout_hours: 2
studies:
  diabetes:
    researchers: [alice, bob]
    min_cell_size: 10
    sources:
      - {view: patient_demographics, columns: [gender, birth_date]}
      - {dataset: heart, columns: "*"}
    jobs:
      count: {approval: auto, release: auto}
      analysis: {approval: auto, release: steward, analyses: [histogram, moments]}
      learning: {approval: person, apps: [fedavg_mlp], max_rounds: 50}
    privacy:
      epsilon: 1.0
      researchers: {alice: {epsilon: 2.5}}
  registry:
    researchers: [carol]
    jobs:
      count: {approval: person, release: steward}
"""


@dataclass(frozen=True)
class Case:
    """One job (as a dry-run job file holds it), the expected outcome and deciding rule."""

    name: str
    job: dict[str, Any]
    outcome: str
    rule: str
    spent: dict[str, float] = field(default_factory=dict)


def job(study: str, researcher: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A job file's content."""
    return {"job_id": "j-1", "study": study, "researcher": researcher, "spec": spec, **extra}


HIST = {"kind": "analysis", "analysis": "histogram", "source": {"view": "patient_demographics"}, "columns": ["gender"]}
FEDAVG = {"kind": "fedavg_mlp", "rounds": 10}

CASES = [
    Case(
        "a count in the study is allowed",
        job("diabetes", "alice", {"kind": "count"}),
        "allow",
        "studies.diabetes.jobs.count.approval",
    ),
    Case(
        "an allowed analysis on allowed columns",
        job("diabetes", "bob", HIST),
        "allow",
        "studies.diabetes.jobs.analysis.approval",
    ),
    Case(
        "learning waits for a person",
        job("diabetes", "alice", FEDAVG),
        "needs_approval",
        "studies.diabetes.jobs.learning.approval",
    ),
    Case(
        "a count in the registry waits for a person",
        job("registry", "carol", {"kind": "count"}),
        "needs_approval",
        "studies.registry.jobs.count.approval",
    ),
    Case("an unknown study is refused", job("oncology", "alice", {"kind": "count"}), "refuse", "studies"),
    Case(
        "a researcher outside the study is refused",
        job("diabetes", "carol", {"kind": "count"}),
        "refuse",
        "studies.diabetes.researchers",
    ),
    Case(
        "a kind the study does not list is refused", job("registry", "carol", HIST), "refuse", "studies.registry.jobs"
    ),
    Case(
        "an analysis not listed is refused",
        job("diabetes", "alice", {**HIST, "analysis": "glm"}),
        "refuse",
        "studies.diabetes.jobs.analysis.analyses",
    ),
    Case(
        "a source not listed is refused",
        job("diabetes", "alice", {**HIST, "source": {"view": "conditions"}}),
        "refuse",
        "studies.diabetes.sources",
    ),
    Case(
        "a column not allowed is refused",
        job("diabetes", "alice", {**HIST, "columns": ["gender", "race_code"]}),
        "refuse",
        "studies.diabetes.sources[0].columns",
    ),
    Case(
        "every column of a restricted source is refused",
        job("diabetes", "alice", {**HIST, "columns": None}),
        "refuse",
        "studies.diabetes.sources[0].columns",
    ),
    Case(
        "every column of an open dataset is allowed",
        job("diabetes", "alice", {**HIST, "source": {"dataset": "heart"}, "columns": None}),
        "allow",
        "studies.diabetes.jobs.analysis.approval",
    ),
    Case(
        "too many learning rounds are refused",
        job("diabetes", "alice", {**FEDAVG, "rounds": 80}),
        "refuse",
        "studies.diabetes.jobs.learning.max_rounds",
    ),
    Case(
        "epsilon within the researcher's budget is allowed",
        job("diabetes", "bob", HIST, epsilon=1.0),
        "allow",
        "studies.diabetes.jobs.analysis.approval",
    ),
    Case(
        "epsilon over the study budget is refused",
        job("diabetes", "bob", HIST, epsilon=1.5),
        "refuse",
        "studies.diabetes.privacy",
    ),
    Case(
        "a per-researcher budget is its own rule",
        job("diabetes", "alice", HIST, epsilon=2.6),
        "refuse",
        "studies.diabetes.privacy.researchers.alice",
    ),
    Case(
        "what was spent counts against the budget",
        job("diabetes", "bob", HIST, epsilon=0.3),
        "refuse",
        "studies.diabetes.privacy",
        {"researcher_epsilon": 0.8},
    ),
    Case(
        "a cost that uses up the budget exactly fits (1.0 - 0.8 < 0.2 in floats)",
        job("diabetes", "bob", HIST, epsilon=0.2),
        "allow",
        "studies.diabetes.jobs.analysis.approval",
        {"researcher_epsilon": 0.8},
    ),
    Case(
        "the node-wide cap is checked after the study budget",
        job("diabetes", "alice", HIST, epsilon=1.0),
        "refuse",
        "node.epsilon_cap",
        {"node_epsilon": 2.5},
    ),
    Case(
        "a DP job in a study without a budget is refused",
        job("registry", "carol", {"kind": "count"}, epsilon=0.1),
        "refuse",
        "studies.registry.privacy",
    ),
]
