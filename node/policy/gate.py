"""The policy in force on a running node: read from the hospital's file, re-read when it changes, applied to jobs.

:class:`PolicyGate` is what the channel calls when a job arrives (:meth:`PolicyGate.decide_job`, once per
job) and before it runs a job that waited for a person (:meth:`PolicyGate.approval_state`):

- the file is re-read when its size or modification time changes, so a hospital's edit applies to the
  next job without a restart. A change of content (SHA-256 differs from the last ``policy.changed``
  entry of the audit chain) is audited, valid or not;
- fail closed: with no policy file, or an invalid one, every job is refused (rule ``policy``), and the
  problem is logged with its locations; the node never falls back to an older or a default policy;
- on each valid load, the study budgets and the node-wide cap are written into the epsilon ledger
  (:class:`node.privacy.ledger.PrivacyLedger`), so the file is the one place budgets are set;
- every decision is audited with the job's arrival (``job.received`` then ``policy.decision``: outcome,
  rule, reasons, the policy's hash; one transaction), and a job
  that needs a person is queued (:func:`node.policy.queue.request_approval`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy.engine import Engine

from common.errors import ConfigError
from node.audit import AuditKind, AuditLog
from node.policy import queue
from node.policy.decision import Decision, Outcome, PolicyJob, Spent, decide
from node.policy.jobs import NO_STUDY
from node.policy.model import LoadedPolicy, load_policy_bytes
from node.privacy.ledger import Budget, PrivacyLedger
from node.store import audit_chain

__all__ = ["PolicyGate", "apply_budgets"]

log = logging.getLogger("medfed.node.policy")


@dataclass(frozen=True, slots=True)
class _Seen:
    stamp: tuple[int, int] | None  # (mtime_ns, size); None: no file
    loaded: LoadedPolicy | None
    problem: str | None


def apply_budgets(loaded: LoadedPolicy, ledger: PrivacyLedger) -> None:
    """Write the policy's budgets into the ledger: each study researcher's, and the node-wide cap."""
    policy = loaded.policy
    ledger.set_node_cap(Budget(policy.node.epsilon_cap, policy.node.delta_cap))
    for study_id, study in policy.studies.items():
        if study.privacy is None:
            continue
        for researcher in study.researchers:
            amount = study.privacy.budget_of(researcher)
            ledger.set_budget(researcher, study_id, Budget(amount.epsilon, amount.delta))


class PolicyGate:
    """The node's policy file, kept current, and the decisions made with it (thread-safe)."""

    def __init__(self, engine: Engine, audit: AuditLog, path: Path) -> None:
        self._engine = engine
        self._audit = audit
        self._path = Path(path)
        self._ledger = PrivacyLedger(engine)
        self._lock = threading.Lock()
        self._seen: _Seen | None = None

    @property
    def path(self) -> Path:
        """The policy file."""
        return self._path

    def current(self) -> LoadedPolicy | None:
        """The policy in force (re-read if the file changed); None when it is missing or invalid."""
        with self._lock:
            stamp = self._stamp()
            if self._seen is None or self._seen.stamp != stamp:
                self._seen = self._load(stamp)
            return self._seen.loaded

    def problem(self) -> str | None:
        """Why there is no policy in force (None when there is one)."""
        self.current()
        return None if self._seen is None else self._seen.problem

    def _stamp(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self._path)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def _load(self, stamp: tuple[int, int] | None) -> _Seen:
        if stamp is None:
            self._audit_change(None, valid=False, studies=0)
            log.warning("no policy file: the policy refuses every job", extra={"fields": {"path": str(self._path)}})
            return _Seen(stamp, None, "there is no policy file")
        try:
            raw = self._path.read_bytes()
        except OSError as exc:
            return _Seen(stamp, None, f"the policy file cannot be read ({type(exc).__name__})")
        try:
            loaded = load_policy_bytes(raw, origin=str(self._path))
        except ConfigError as exc:
            self._audit_change(hashlib.sha256(raw).hexdigest(), valid=False, studies=0)
            log.error(
                "the policy file is invalid: the policy refuses every job",
                extra={"fields": {"path": str(self._path), "problems": list(exc.hints)}},
            )
            return _Seen(stamp, None, "the policy file is invalid")
        self._audit_change(loaded.sha256, valid=True, studies=len(loaded.policy.studies))
        apply_budgets(loaded, self._ledger)
        return _Seen(stamp, loaded, None)

    def _audit_change(self, sha256: str | None, *, valid: bool, studies: int) -> None:
        digest = sha256 or ""  # "" stands for "no file"
        last = audit_chain.latest_of_kind(self._engine, str(AuditKind.POLICY_CHANGED))
        previous = None if last is None else orjson.loads(last.details).get("sha256")
        if last is not None and previous == digest:
            return
        self._audit.policy_changed(sha256=digest, previous=previous, valid=valid, studies=studies)

    def spent(self, job: PolicyJob) -> Spent:
        """What the ledger says was spent by the job's researcher in its study, and on the whole node."""
        account = self._ledger.usage(job.researcher, job.study)
        node = self._ledger.node_usage()
        return Spent(
            researcher_epsilon=0.0 if account is None else account.spent.epsilon,
            researcher_delta=0.0 if account is None else account.spent.delta,
            node_epsilon=0.0 if node is None else node.spent.epsilon,
            node_delta=0.0 if node is None else node.spent.delta,
        )

    def evaluate(self, job: PolicyJob) -> Decision:
        """The decision for ``job`` now, without recording it (the dry-run of a running node)."""
        return self._evaluate(job, self.current())

    def _evaluate(self, job: PolicyJob, loaded: LoadedPolicy | None) -> Decision:
        if loaded is None:
            return Decision(Outcome.REFUSE, "policy", (self.problem() or "there is no policy in force",))
        # The ledger is read only for a job that costs privacy: nothing else depends on what was spent.
        costs_privacy = job.epsilon > 0 or job.delta > 0
        return decide(loaded.policy, job, self.spent(job) if costs_privacy else None)

    def decide_job(self, job: PolicyJob) -> Decision:
        """Decide on an arriving job, audit its arrival and the decision, and queue it when it needs a person.

        Called once per job, on the path of its first message: the two audit entries are one transaction.
        """
        loaded = self.current()
        decision = self._evaluate(job, loaded)
        self._audit.job_arrived(
            job_id=job.job_id,
            kind=job.kind,
            study=None if job.study == NO_STUDY else job.study,
            researcher=job.researcher,
            outcome=str(decision.outcome),
            rule=decision.rule,
            reasons=decision.reasons,
            policy_sha256=None if loaded is None else loaded.sha256,
        )
        if decision.outcome is Outcome.NEEDS_APPROVAL:
            queue.request_approval(self._engine, self._audit, job, decision)
        return decision

    def approval_state(self, job_id: str) -> queue.ApprovalState:
        """Is job ``job_id`` approved, pending, rejected or timed out (UNKNOWN: it never needed a person)?"""
        return queue.approval_state(self._engine, self._audit, job_id)
