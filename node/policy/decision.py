"""The policy decision: one pure function from (policy, job, what was spent) to ALLOW, NEEDS_APPROVAL or REFUSE.

:func:`decide` is what the node runs when a job arrives and what ``medfed node policy check`` runs as a
dry-run, so the two cannot disagree. It checks, in this order, and the first rule that refuses decides:

1. the study is in the policy, or a ``"*"`` study is       (rule ``studies``)
2. the researcher is one of the study's researchers, or it admits ``"*"``   (``studies.S.researchers``)
3. the job's kind is allowed for the study                  (``studies.S.jobs``)
4. the analysis / the learning app and its rounds are listed (``studies.S.jobs.analysis.analyses``,
   ``studies.S.jobs.learning.apps``, ``studies.S.jobs.learning.max_rounds``)
5. the source is listed (by name, else by a ``"*"`` of its kind), and every column the job reads
                                                            (``studies.S.sources``,
                                                             ``studies.S.sources[i].columns``)
6. the privacy cost fits what is left of the researcher's budget in the study and of the node-wide cap
                                                            (``studies.S.privacy``, ``node.epsilon_cap``)

Reasons are fixed sentences that quote nothing from the job (its names stay in :meth:`PolicyJob.describe`),
so a decision can go into the audit log and an API answer as it is.

A job that passes all six is ALLOWed or NEEDS_APPROVAL as ``studies.S.jobs.KIND.approval`` says, and
that rule is the one named. The decision also carries what the rest of the node needs: whether results
wait for a steward, the study's minimum cell size, and the timeouts.

Epsilon and delta are compared in the ledger's integer units (1e-9, 1e-15; costs rounded up, budgets
down), so a dry-run never allows what the ledger would refuse for rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Any

from node.policy.model import ANY, Policy, Study

__all__ = ["Decision", "Outcome", "PolicyJob", "Spent", "decide"]

JOB_KINDS = ("count", "analysis", "learning")


class Outcome(StrEnum):
    """What the node does with a job."""

    ALLOW = "allow"
    NEEDS_APPROVAL = "needs_approval"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class PolicyJob:
    """What policy needs to know of a job (see :func:`node.policy.jobs.job_from_spec`).

    ``columns`` None means the job may read every column of its source; ``epsilon``/``delta`` is the
    privacy cost the node would charge for it (0 for a job without differential privacy).
    """

    job_id: str
    study: str
    researcher: str
    kind: str
    app: str
    analysis: str | None = None
    source: tuple[str, str] | None = None
    columns: tuple[str, ...] | None = None
    rounds: int | None = None
    epsilon: float = 0.0
    delta: float = 0.0

    def describe(self) -> dict[str, Any]:
        """The job as plain data (queues, audit entries): names only, no data."""
        return {
            "job_id": self.job_id,
            "study": self.study,
            "researcher": self.researcher,
            "kind": self.kind,
            "app": self.app,
            "analysis": self.analysis,
            "source": None if self.source is None else f"{self.source[0]}:{self.source[1]}",
            "columns": None if self.columns is None else list(self.columns),
            "rounds": self.rounds,
            "epsilon": self.epsilon,
            "delta": self.delta,
        }


@dataclass(frozen=True, slots=True)
class Spent:
    """Privacy already spent: by this researcher in this study, and by everyone on the node."""

    researcher_epsilon: float = 0.0
    researcher_delta: float = 0.0
    node_epsilon: float = 0.0
    node_delta: float = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome, the rule that made it, and why; plus release handling for jobs that may run."""

    outcome: Outcome
    rule: str
    reasons: tuple[str, ...]
    release: str | None = None
    min_cell_size: int | None = None
    approval_timeout_s: float | None = None
    release_timeout_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data, as ``medfed node policy check --json`` prints it."""
        return {
            "outcome": str(self.outcome),
            "rule": self.rule,
            "reasons": list(self.reasons),
            "release": self.release,
            "min_cell_size": self.min_cell_size,
            "approval_timeout_s": self.approval_timeout_s,
            "release_timeout_s": self.release_timeout_s,
        }


def _refuse(rule: str, reason: str) -> Decision:
    return Decision(Outcome.REFUSE, rule, (reason,))


def _units(value: float, scale: int, *, up: bool) -> int:
    scaled = Decimal(repr(float(value))) * scale
    return int(scaled.to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR))


def _fits(cost: float, budget: float, spent: float, scale: int) -> bool:
    return _units(cost, scale, up=True) <= _units(budget, scale, up=False) - _units(spent, scale, up=True)


def _kind_checks(study: Study, prefix: str, job: PolicyJob) -> Decision | None:
    jobs = study.jobs
    allowed = None if jobs.analysis is None else jobs.analysis.analyses
    if job.kind == "analysis" and allowed is not None and allowed != ANY and job.analysis not in allowed:
        return _refuse(f"{prefix}.jobs.analysis.analyses", "the analysis is not one this study allows")
    if job.kind == "learning" and jobs.learning is not None:
        if job.app not in jobs.learning.apps:
            return _refuse(f"{prefix}.jobs.learning.apps", "the learning app is not one this study allows")
        limit = jobs.learning.max_rounds
        if limit is not None and (job.rounds is None or job.rounds > limit):
            return _refuse(f"{prefix}.jobs.learning.max_rounds", f"the job asks for more than {limit} rounds")
    return None


def _source_checks(study: Study, prefix: str, job: PolicyJob) -> Decision | None:
    if job.source is None:
        return None
    keys = [rule.key for rule in study.sources]
    wildcard = (job.source[0], ANY)
    match = job.source if job.source in keys else wildcard if wildcard in keys else None
    for index, rule in enumerate(study.sources):
        if rule.key != match:
            continue
        if rule.columns == "*":
            return None
        if job.columns is None:
            return _refuse(
                f"{prefix}.sources[{index}].columns", "the job reads every column; this source allows only some"
            )
        outside = sorted(set(job.columns) - set(rule.columns))
        if outside:
            return _refuse(
                f"{prefix}.sources[{index}].columns",
                f"{len(outside)} of the job's columns are not allowed for this source",
            )
        return None
    return _refuse(f"{prefix}.sources", "the source is not one this study allows")


def _privacy_checks(policy: Policy, study: Study, prefix: str, job: PolicyJob, spent: Spent) -> Decision | None:
    if job.epsilon <= 0 and job.delta <= 0:
        return None
    if study.privacy is None:
        return _refuse(f"{prefix}.privacy", "this study has no privacy budget; differentially private jobs are refused")
    budget = study.privacy.budget_of(job.researcher)
    rule = f"{prefix}.privacy" + (
        f".researchers.{job.researcher}" if job.researcher in study.privacy.researchers else ""
    )
    if not (
        _fits(job.epsilon, budget.epsilon, spent.researcher_epsilon, 10**9)
        and _fits(job.delta, budget.delta, spent.researcher_delta, 10**15)
    ):
        return _refuse(rule, "the job's privacy cost exceeds what is left of the researcher's budget in this study")
    node = policy.node
    if not (
        _fits(job.epsilon, node.epsilon_cap, spent.node_epsilon, 10**9)
        and _fits(job.delta, node.delta_cap, spent.node_delta, 10**15)
    ):
        return _refuse("node.epsilon_cap", "the job's privacy cost exceeds what is left of the node-wide cap")
    return None


def decide(policy: Policy, job: PolicyJob, spent: Spent | None = None) -> Decision:
    """The decision for ``job`` under ``policy`` (see the module docstring); pure, no I/O."""
    name = job.study if job.study in policy.studies else ANY
    study = policy.studies.get(name)
    if study is None:
        return _refuse("studies", "the job's study is not in this node's policy")
    prefix = f"studies.{name}"
    if job.researcher not in study.researchers and ANY not in study.researchers:
        return _refuse(f"{prefix}.researchers", "the researcher is not one of the study's researchers")
    kind_rule = getattr(study.jobs, job.kind, None) if job.kind in JOB_KINDS else None
    if kind_rule is None:
        return _refuse(f"{prefix}.jobs", "jobs of this kind are not allowed in this study")
    refusal = (
        _kind_checks(study, prefix, job)
        or _source_checks(study, prefix, job)
        or _privacy_checks(policy, study, prefix, job, spent or Spent())
    )
    if refusal is not None:
        return refusal
    auto = kind_rule.approval == "auto"
    return Decision(
        outcome=Outcome.ALLOW if auto else Outcome.NEEDS_APPROVAL,
        rule=f"{prefix}.jobs.{job.kind}.approval",
        reasons=(
            f"{job.kind} jobs in this study are approved automatically"
            if auto
            else f"{job.kind} jobs in this study wait for a person's approval",
        ),
        release=kind_rule.release,
        min_cell_size=study.min_cell_size,
        approval_timeout_s=policy.node.approval_timeout_hours * 3600,
        release_timeout_s=policy.node.release_timeout_hours * 3600,
    )
