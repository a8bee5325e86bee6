"""The node's policy as code: the hospital's rules for federated jobs, a dry-run, and the approval/release queues.

- :mod:`~node.policy.model` — the policy file (YAML), read strictly;
- :mod:`~node.policy.decision` — :func:`decide`, the one pure decision function (ALLOW,
  NEEDS_APPROVAL, REFUSE and the rule that made it);
- :mod:`~node.policy.jobs` — a job spec (or a dry-run job file) as policy sees it;
- :mod:`~node.policy.gate` — the policy in force on a running node: reloads, audits, budgets, queues;
- :mod:`~node.policy.admission` — the verdict on each arriving job, once per job, for the channel;
- :mod:`~node.policy.queue` — jobs that wait for a person, results that wait for a steward;
- :mod:`~node.policy.starter` — the permissive starter policy a new node gets;
- :mod:`~node.policy.check` — ``medfed node policy check``: the dry-run.
"""

from node.policy.decision import Decision, Outcome, PolicyJob, Spent, decide
from node.policy.jobs import job_from_spec, read_job_file
from node.policy.model import LoadedPolicy, Policy, load_policy

__all__ = [
    "Decision",
    "LoadedPolicy",
    "Outcome",
    "Policy",
    "PolicyJob",
    "Spent",
    "decide",
    "job_from_spec",
    "load_policy",
    "read_job_file",
]
