"""decide(): a table of jobs allowed, waiting for a person, and refused, each with the rule that decided it."""

from __future__ import annotations

import pytest

from node.policy.decision import Outcome, Spent, decide
from node.policy.jobs import job_from_spec
from node.policy.model import load_policy_bytes
from tests.unit.policy.cases import CASES, POLICY, Case

LOADED = load_policy_bytes(POLICY.encode())


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_job_gets_its_outcome_and_rule(case: Case) -> None:
    """The decision and the deciding rule are the ones the table names."""
    document = case.job
    job = job_from_spec(
        document["spec"],
        job_id=document["job_id"],
        study=document["study"],
        researcher=document["researcher"],
        epsilon=document.get("epsilon", 0.0),
    )
    decision = decide(LOADED.policy, job, Spent(**case.spent))
    assert (str(decision.outcome), decision.rule) == (case.outcome, case.rule), decision.reasons
    assert decision.reasons


def test_a_job_that_may_run_carries_release_and_cell_size() -> None:
    """An allowed analysis says results wait for a steward, with the study's minimum cell size and timeouts."""
    job = job_from_spec(CASES[1].job["spec"], job_id="j", study="diabetes", researcher="bob")
    decision = decide(LOADED.policy, job)
    assert decision.outcome is Outcome.ALLOW
    assert (decision.release, decision.min_cell_size) == ("steward", 10)
    assert (decision.approval_timeout_s, decision.release_timeout_s) == (3600, 7200)


def test_a_refusal_carries_no_release_handling() -> None:
    """A refused job has no release mode or cell size: nothing of it runs."""
    job = job_from_spec({"kind": "count"}, job_id="j", study="nope", researcher="bob")
    decision = decide(LOADED.policy, job)
    assert (decision.release, decision.min_cell_size) == (None, None)


def test_the_table_covers_every_outcome_and_every_rule_family() -> None:
    """Allowed, waiting and refused jobs are all in the table, refused for each kind of reason."""
    outcomes = {case.outcome for case in CASES}
    assert outcomes == {"allow", "needs_approval", "refuse"}
    refused_by = {case.rule.split(".")[-1] for case in CASES if case.outcome == "refuse"}
    assert {"studies", "researchers", "jobs", "analyses", "sources", "columns", "max_rounds", "privacy"} <= refused_by
