"""The permissive starter policy ``medfed node init`` writes for a new node, so a fresh network runs jobs.

It allows every built-in job kind (count, every analysis, the learning apps) for any study and any
researcher, approved automatically, reading any view or dataset, with results released after the
automatic disclosure checks. Differential-privacy jobs are refused until the hospital names a study with
a budget. Its header says so and points to ``deploy/policy.example.yaml``.

It is written only when a node is created (:func:`node.runtime.init_node` on an empty database) and no
policy file exists: a hospital that deletes its policy later gets what deletion means — every job refused
— not this file back.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from node.policy.jobs import LEARNING_APPS

__all__ = ["starter_policy", "write_starter_policy"]

log = logging.getLogger("medfed.node.policy")

_HEADER = """\
# policy.yaml — the PERMISSIVE STARTER POLICY written by `medfed node init`.
#
# It allows every built-in job kind (count, every analysis, federated learning) for ANY study and ANY
# researcher, approved automatically, on any view or dataset; results leave after the automatic
# disclosure checks (disclosure.yaml). Differentially private jobs are refused until a named study
# here has a privacy budget.
#
# Restrict it before real data arrive: deploy/policy.example.yaml is a commented example with named
# studies, researchers, sources and columns, approval by a person and release by a steward. The node
# re-reads this file when it changes and records every change in its audit log; deleting it refuses
# every job. Dry-run a job against it: medfed node policy check job.yaml
"""


def starter_policy() -> str:
    """The starter policy's text (valid for :func:`node.policy.model.load_policy_bytes`)."""
    apps = ", ".join(sorted(LEARNING_APPS))
    return (
        _HEADER
        + f"""
version: 1
studies:
  "*":                       # every study, and jobs that name none
    researchers: ["*"]       # every researcher
    sources:
      - {{view: "*", columns: "*"}}
      - {{dataset: "*", columns: "*"}}
    jobs:
      count: {{approval: auto, release: auto}}
      analysis: {{approval: auto, release: auto, analyses: "*"}}
      learning: {{approval: auto, release: auto, apps: [{apps}]}}
"""
    )


def write_starter_policy(path: Path) -> bool:
    """Write the starter policy at ``path`` unless a file is there (True: written). Owner-only permissions."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(starter_policy())
    log.warning("wrote the permissive starter policy; restrict it (see deploy/policy.example.yaml)")
    return True
