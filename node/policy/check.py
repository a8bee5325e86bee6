"""``medfed node policy check JOB.yaml``: the policy's decision on a job, without running anything.

The dry-run reads the policy file (the one in force, or a candidate given with ``--policy``) and a job
file (:func:`node.policy.jobs.read_job_file`), and calls :func:`node.policy.decision.decide`, the very
function the node calls when a job arrives. With an initialised node it also reads what the epsilon
ledger says was spent, as the node would; nothing is written, not even an audit entry.

Exit codes (documented in ``medfed node policy check --help``):

- 0: the job would be allowed;
- 1: it would be refused;
- 2: it would wait for a person's approval;
- 3: the policy or the job file is invalid (the CLI's configuration-error code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.policy.decision import Decision, Outcome, PolicyJob, Spent, decide
from node.policy.jobs import read_job_file
from node.policy.model import load_policy

__all__ = ["EXIT_CODES", "as_json", "dry_run", "render"]

EXIT_CODES = {Outcome.ALLOW: 0, Outcome.REFUSE: 1, Outcome.NEEDS_APPROVAL: 2}


def dry_run(policy_path: Path, job_path: Path, *, spent: Spent | None = None) -> tuple[PolicyJob, Decision]:
    """The job in ``job_path`` and the decision ``policy_path`` makes on it; ConfigError for a bad file."""
    loaded = load_policy(policy_path)
    job = read_job_file(job_path)
    return job, decide(loaded.policy, job, spent)


def render(job: PolicyJob, decision: Decision) -> str:
    """The decision as the terminal shows it."""
    lines = [f"decision: {decision.outcome}", f"rule: {decision.rule}"]
    lines += [f"reason: {reason}" for reason in decision.reasons]
    if decision.outcome is not Outcome.REFUSE:
        lines.append(f"results: {'wait for a steward' if decision.release == 'steward' else 'released automatically'}")
        lines.append(f"minimum cell size: {decision.min_cell_size}")
    lines.append(f"job: {job.kind} by {job.researcher} in study {job.study}")
    return "\n".join(lines)


def as_json(job: PolicyJob, decision: Decision) -> dict[str, Any]:
    """The decision and the job, as ``--json`` prints them."""
    return {"decision": decision.as_dict(), "job": job.describe()}
