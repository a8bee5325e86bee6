"""Whether a message of a federated job may run at this node: the policy's decision, made once per job.

The channel asks :meth:`JobAdmissions.admit` before it runs any message. On a job's first message the
job is read from the envelope (the spec fields policy needs, the submitter as researcher) with
:func:`node.policy.jobs.job_from_spec`, and :meth:`node.policy.gate.PolicyGate.decide_job` decides (and
audits the arrival and the decision, and queues a job that needs a person). The answer is kept per job
id, so later messages cost a dictionary look-up:

- ALLOW: :attr:`Verdict.RUN`;
- REFUSE: :attr:`Verdict.REFUSE` with :attr:`~common.errors.ErrorCode.JOB_REFUSED_BY_POLICY` and the
  deciding rule as a hint (``rule: studies.S.jobs``, a path in the policy file, never a value);
- NEEDS_APPROVAL: :attr:`Verdict.WAIT` while the approval is pending (each call asks the queue again);
  RUN once a person approved it; REFUSE with ``JOB_APPROVAL_REJECTED`` or ``JOB_APPROVAL_TIMED_OUT``.

A spec policy cannot read (a name of the wrong shape) is refused under rule ``job`` and audited as such.
The memory is bounded (:data:`REMEMBERED_JOBS`, least recently used first out); a job forgotten, or one
arriving again after a restart, is decided again — a job that was approved stays approved, because the
approval queue keeps it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from common.errors import ErrorCode, InputError
from node.audit import AuditLog
from node.policy.decision import Outcome
from node.policy.gate import PolicyGate
from node.policy.jobs import job_from_spec
from node.policy.queue import ApprovalState

__all__ = ["REMEMBERED_JOBS", "Admission", "JobAdmissions", "Verdict"]

REMEMBERED_JOBS = 4096


class Verdict(StrEnum):
    """What the channel does with a message of the job."""

    RUN = "run"
    WAIT = "wait"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class Admission:
    """A verdict; for REFUSE (and for a WAIT the node has to answer) the catalog code and public hints."""

    verdict: Verdict
    code: ErrorCode | None = None
    hints: tuple[str, ...] = ()


_RUN = Admission(Verdict.RUN)
_WAIT = Admission(Verdict.WAIT, ErrorCode.JOB_PENDING_APPROVAL, ("approval: pending",))
_AFTER_APPROVAL = {
    ApprovalState.APPROVED: _RUN,
    ApprovalState.PENDING: _WAIT,
    ApprovalState.REJECTED: Admission(Verdict.REFUSE, ErrorCode.JOB_APPROVAL_REJECTED, ("approval: rejected",)),
    ApprovalState.TIMED_OUT: Admission(Verdict.REFUSE, ErrorCode.JOB_APPROVAL_TIMED_OUT, ("approval: timed out",)),
    # Never queued although it needed a person: cannot happen; refuse rather than run.
    ApprovalState.UNKNOWN: Admission(Verdict.REFUSE, ErrorCode.JOB_REFUSED_BY_POLICY, ("rule: approval",)),
}


def _dp_cost(spec: Mapping[str, Any]) -> tuple[Any, Any]:
    """The epsilon and delta an analysis asks for (``privacy.dp``); zero without differential privacy."""
    privacy = spec.get("privacy")
    dp = privacy.get("dp") if isinstance(privacy, Mapping) else None
    if not isinstance(dp, Mapping):
        return 0.0, 0.0
    return dp.get("epsilon", 0.0), dp.get("delta", 0.0) or 0.0


def _spec_of(envelope: Mapping[str, Any]) -> Mapping[str, Any]:
    """The spec fields the envelope carries (a coordinator that sends none: what the envelope itself says)."""
    spec = envelope.get("spec")
    if isinstance(spec, Mapping):
        return spec
    return {"kind": envelope.get("app"), "app": envelope.get("app"), "rounds": envelope.get("rounds")}


class JobAdmissions:
    """The policy's verdict on each job, decided once per job id (thread-safe)."""

    def __init__(self, gate: PolicyGate, audit: AuditLog, *, remembered: int = REMEMBERED_JOBS) -> None:
        self._gate = gate
        self._audit = audit
        self._remembered = remembered
        self._decided: OrderedDict[str, Admission | None] = OrderedDict()  # None: waits for a person
        self._lock = threading.Lock()

    def admit(self, envelope: Mapping[str, Any]) -> Admission:
        """The verdict on the envelope's job (its first message decides; see the module docstring)."""
        job_id = str(envelope.get("job_id"))
        with self._lock:
            known = job_id in self._decided
            admission = self._decided.get(job_id)
            if known:
                self._decided.move_to_end(job_id)
            else:
                # Under the lock: two first messages of one job arriving together are decided once.
                admission = self._decide(job_id, envelope)
                self._remember(job_id, admission)
        if admission is not None:
            return admission
        admission = _AFTER_APPROVAL[self._gate.approval_state(job_id)]
        if admission.verdict is not Verdict.WAIT:
            with self._lock:
                self._remember(job_id, admission)
        return admission

    def _remember(self, job_id: str, admission: Admission | None) -> None:
        self._decided[job_id] = admission
        self._decided.move_to_end(job_id)
        while len(self._decided) > self._remembered:
            self._decided.popitem(last=False)

    def _decide(self, job_id: str, envelope: Mapping[str, Any]) -> Admission | None:
        spec = _spec_of(envelope)
        study, submitter = spec.get("study"), envelope.get("submitter")
        try:
            epsilon, delta = _dp_cost(spec)
            job = job_from_spec(
                spec,
                job_id=job_id,
                study=study if study is None else str(study),
                researcher=str(submitter),
                epsilon=epsilon,
                delta=delta,
            )
        except InputError as exc:
            self._audit.job_arrived(
                job_id=job_id[:200],
                kind="unreadable",
                study=None,
                researcher=None,
                outcome=str(Outcome.REFUSE),
                rule="job",
                reasons=("the job's spec cannot be read by the policy", *exc.hints),
            )
            return Admission(Verdict.REFUSE, ErrorCode.JOB_REFUSED_BY_POLICY, ("rule: job", *exc.hints))
        decision = self._gate.decide_job(job)
        if decision.outcome is Outcome.ALLOW:
            return _RUN
        if decision.outcome is Outcome.NEEDS_APPROVAL:
            return None
        return Admission(Verdict.REFUSE, ErrorCode.JOB_REFUSED_BY_POLICY, (f"rule: {decision.rule}",))
