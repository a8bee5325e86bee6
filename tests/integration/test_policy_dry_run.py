"""The policy dry-run and the real decision agree: `medfed node policy check` prints what `decide` returns.

The table of jobs is ``tests/unit/policy/cases.py`` (allowed, waiting for a person, refused, and why).
The running node's gate (:class:`node.policy.gate.PolicyGate`) decides with the same function, audits
each decision and every change of the policy file, keeps the ledger's budgets in step with the file,
and refuses everything when the file is missing or invalid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from medfed.cli import app as cli
from node.policy.decision import Outcome, Spent, decide
from node.policy.gate import PolicyGate
from node.policy.jobs import job_from_spec, read_job_file
from node.policy.model import load_policy_bytes
from node.privacy.ledger import PrivacyLedger
from tests.integration.conftest import NodeClient
from tests.integration.policy_cli import cli_node_with_policy
from tests.unit.policy.cases import CASES, POLICY, Case, job

runner = CliRunner()
EXIT = {"allow": 0, "refuse": 1, "needs_approval": 2}


def _write(tmp_path: Path, case: Case) -> tuple[Path, Path]:
    policy, job_file = tmp_path / "policy.yaml", tmp_path / "job.yaml"
    policy.write_text(POLICY)
    job_file.write_text(yaml.safe_dump(case.job))
    return policy, job_file


@pytest.mark.parametrize("case", [case for case in CASES if not case.spent], ids=lambda case: case.name)
def test_the_dry_run_prints_exactly_the_decision_of_decide(tmp_path: Path, case: Case) -> None:
    """For every job of the table: CLI --json equals decide(); the exit code is 0 allow, 1 refuse, 2 approval."""
    policy, job_file = _write(tmp_path, case)
    result = runner.invoke(cli, ["node", "policy", "check", str(job_file), "--policy", str(policy), "--json"])
    expected = decide(load_policy_bytes(POLICY.encode()).policy, read_job_file(job_file))
    assert result.exit_code == EXIT[case.outcome], result.stdout
    printed = orjson.loads(result.stdout)
    assert printed["decision"] == expected.as_dict()
    assert (printed["decision"]["outcome"], printed["decision"]["rule"]) == (case.outcome, case.rule)


def test_the_text_output_names_the_decision_and_the_rule(tmp_path: Path) -> None:
    """Without --json the decision, the rule and the reason are printed as lines."""
    policy, job_file = _write(tmp_path, CASES[5])
    result = runner.invoke(cli, ["node", "policy", "check", str(job_file), "--policy", str(policy)])
    assert result.exit_code == 1
    assert "decision: refuse" in result.stdout
    assert "rule: studies.diabetes.researchers" in result.stdout


def test_the_dry_run_on_a_node_counts_what_its_ledger_spent(tmp_path: Path) -> None:
    """With --data-dir the dry-run reads the ledger: 0.8 spent leaves no room for 0.3 of a 1.0 budget."""
    node = cli_node_with_policy(tmp_path)
    assert node.gate.current() is not None  # the load writes the budgets into the ledger
    PrivacyLedger(node.engine).reserve(researcher="bob", study="diabetes", query_digest="q1", epsilon=0.8, delta=0)
    node.engine.dispose()
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump(job("diabetes", "bob", {"kind": "count"}, epsilon=0.3)))
    result = runner.invoke(cli, ["node", "policy", "check", str(job_file), "--json"], env=node.env)
    assert result.exit_code == 1, result.stdout
    assert orjson.loads(result.stdout)["decision"]["rule"] == "studies.diabetes.privacy"


@pytest.mark.parametrize(
    ("policy_text", "job_text"),
    [("version: 1\nstudies: {s: {researchers: [a], jobs: {count: {aproval: auto}}}}\n", None), (None, "study: s\n")],
)
def test_an_invalid_policy_or_job_file_exits_3_with_its_location(
    tmp_path: Path, policy_text: str | None, job_text: str | None
) -> None:
    """A bad policy names the bad key; a job file without a spec says what a job file holds; both exit 3."""
    policy, job_file = _write(tmp_path, CASES[0])
    if policy_text is not None:
        policy.write_text(policy_text)
    if job_text is not None:
        job_file.write_text(job_text)
    result = runner.invoke(cli, ["node", "policy", "check", str(job_file), "--policy", str(policy)])
    assert result.exit_code == 3
    output = result.stdout + result.stderr
    assert ("aproval" in output) if policy_text else ("spec" in output)


def _kinds(engine: sa.Engine) -> list[tuple[str, dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, details FROM audit_entry ORDER BY seq")).all()
    return [(row[0], orjson.loads(row[1])) for row in rows]


def test_the_gate_decides_with_decide_and_audits_decisions_and_policy_changes(node: NodeClient, tmp_path: Path) -> None:
    """Each decision is audited with its rule; a policy edit is audited once; an invalid file refuses all."""
    path = tmp_path / "policy.yaml"
    gate = PolicyGate(node.engine, node.client.app.state.audit_log, path)  # type: ignore[attr-defined]
    count = job_from_spec({"kind": "count"}, job_id="j1", study="diabetes", researcher="alice")
    assert gate.decide_job(count).rule == "policy"  # no file yet: refused
    path.write_text(POLICY)
    decision = gate.decide_job(count)
    assert decision == decide(load_policy_bytes(POLICY.encode()).policy, count, Spent())
    assert decision.outcome is Outcome.ALLOW
    gate.decide_job(count)  # the same file: no new policy.changed entry
    path.write_text(POLICY + "\n# edited: same rules, another file\n")
    gate.decide_job(count)
    path.write_text("version: 1\nstudies: {oops\n")
    refused = gate.decide_job(count)
    assert (refused.outcome, refused.rule) == (Outcome.REFUSE, "policy")
    entries = _kinds(node.engine)
    changes = [details for kind, details in entries if kind == "policy.changed"]
    assert [change["valid"] for change in changes] == [False, True, True, False]
    decisions = [details for kind, details in entries if kind == "policy.decision"]
    assert [d["outcome"] for d in decisions] == ["refuse", "allow", "allow", "allow", "refuse"]
    assert decisions[1]["rule"] == "studies.diabetes.jobs.count.approval"
    assert decisions[1]["policy_sha256"] == changes[1]["sha256"]


def test_loading_the_policy_sets_the_ledger_budgets(node: NodeClient, tmp_path: Path) -> None:
    """The study budgets (with per-researcher overrides) and the node-wide cap land in the epsilon ledger."""
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    gate = PolicyGate(node.engine, node.client.app.state.audit_log, path)  # type: ignore[attr-defined]
    assert gate.current() is not None
    ledger = PrivacyLedger(node.engine)
    alice, bob, cap = ledger.usage("alice", "diabetes"), ledger.usage("bob", "diabetes"), ledger.node_usage()
    assert alice is not None
    assert bob is not None
    assert cap is not None
    assert (alice.budget.epsilon, bob.budget.epsilon, cap.budget.epsilon) == (2.5, 1.0, 3.0)
    assert ledger.usage("carol", "registry") is None  # that study has no privacy budget


def test_the_admin_dry_run_route_agrees_with_decide(node: NodeClient) -> None:
    """POST /admin/v1/policy/check answers decide()'s decision for the policy in force; clinicians are refused."""
    settings = node.client.app.state.settings  # type: ignore[attr-defined]
    settings.policy_path.write_text(POLICY)
    case = CASES[2]
    response = node.client.post("/admin/v1/policy/check", json=case.job, headers=node.admin)
    assert response.status_code == 200, response.text
    expected = decide(
        load_policy_bytes(POLICY.encode()).policy,
        job_from_spec(case.job["spec"], job_id="j-1", study=case.job["study"], researcher=case.job["researcher"]),
    )
    assert response.json()["decision"] == expected.as_dict()
    assert node.client.post("/admin/v1/policy/check", json=case.job, headers=node.clinician).status_code == 403
    policy = node.client.get("/admin/v1/policy", headers=node.admin).json()
    assert (policy["valid"], policy["studies"]) == (True, ["diabetes", "registry"])
