"""Whether a message of a federated job may run at this node: its signature, then the policy's decision.

The channel asks :meth:`JobAdmissions.admit` before it runs any message. On a job's first message the
signed job is verified first (:meth:`node.trust.JobTrust.verify`: the researcher's certificate under the
pinned network-admin key, the signature, the study, revocation, freshness, replay, and that the
coordinator's description is the signed one); a job that fails is refused with that check's code
(``job_signature_invalid``, ``researcher_revoked``, ...) and audited as ``job.refused``, and no policy is
asked. A verified job is read from the *signed* spec, the signed study and the certificate's researcher
name with :func:`node.policy.jobs.job_from_spec` — never from the coordinator's hints — and
:meth:`node.policy.gate.PolicyGate.decide_job` decides (and audits the arrival and the decision, and
queues a job that needs a person). The answer is kept per job id, so later messages cost a dictionary
look-up, plus two checks on every message of a verified job: its researcher is not revoked by a list
that arrived since (the job is refused from then on, ``researcher_revoked``) and the message's app and
round fit the signed spec (that message is refused, ``message_outside_spec``; both audited):

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

from common.errors import ErrorCode, InputError, MedfedError
from node.audit import AuditLog
from node.policy.decision import Outcome
from node.policy.gate import PolicyGate
from node.policy.jobs import job_from_spec
from node.policy.queue import ApprovalState
from node.trust import JobTrust, TrustedJob

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


def outside_spec(trusted: TrustedJob, envelope: Mapping[str, Any]) -> tuple[str, ...]:
    """Where the envelope of a message leaves the signed spec (empty: it fits): its app, its allowed message types
    and its round (none, or 1 to the signed bound)."""
    spec = trusted.spec
    problems = [key for key in ("app", "message_types") if envelope.get(key) != spec.get(key)]
    server_round = envelope.get("round")
    if server_round is not None and not trusted.round_allowed(server_round):
        problems.append("round")
    return tuple(f"message.{key}: outside the signed spec" for key in problems)


@dataclass(slots=True)
class _Known:
    """What the node holds on a job: its verdict (None: waits for a person) and, once verified, the signed job."""

    admission: Admission | None
    trusted: TrustedJob | None


class JobAdmissions:
    """The verdict on each job, decided once per job id, and the per-message checks (thread-safe)."""

    def __init__(
        self, gate: PolicyGate, audit: AuditLog, trust: JobTrust, *, remembered: int = REMEMBERED_JOBS
    ) -> None:
        self._gate = gate
        self._audit = audit
        self._trust = trust
        self._remembered = remembered
        self._decided: OrderedDict[str, _Known] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def trust(self) -> JobTrust:
        """The node's signed-job checks (the channel hands it the revocation lists that arrive)."""
        return self._trust

    def trusted(self, job_id: str) -> TrustedJob | None:
        """The verified signed job of ``job_id`` while it is remembered (None: not verified, or forgotten)."""
        with self._lock:
            known = self._decided.get(job_id)
        return None if known is None else known.trusted

    def admit(self, envelope: Mapping[str, Any]) -> Admission:
        """The verdict on the envelope's message (its job's first message decides; see the module docstring)."""
        job_id = str(envelope.get("job_id"))
        with self._lock:
            known = self._decided.get(job_id)
            if known is not None:
                self._decided.move_to_end(job_id)
            else:
                # Under the lock: two first messages of one job arriving together are decided once.
                known = self._decide(job_id, envelope)
                self._remember(job_id, known)
        refusal = self._per_message(job_id, known, envelope)
        if refusal is not None:
            return refusal
        if known.admission is not None:
            return known.admission
        admission = _AFTER_APPROVAL[self._gate.approval_state(job_id)]
        if admission.verdict is not Verdict.WAIT:
            with self._lock:
                self._remember(job_id, _Known(admission, known.trusted))
        return admission

    def refuse_message(self, job_id: str, message_id: str, hints: tuple[str, ...]) -> Admission:
        """Audit that one message of a verified job asked for something its signed spec does not allow (found by
        the channel once the message is read), and the refusal to answer it with."""
        return self._refuse_one(job_id, message_id, ErrorCode.MESSAGE_OUTSIDE_SPEC, hints)

    def refuse_revoked_peer(self, job_id: str, message_id: str) -> Admission:
        """Audit that one message of a verified job asked this node to mask for a secure round that a revoked
        node takes part in (found by the channel once the message is read), and the refusal to answer it with.

        Only that message is refused: a coordinator that runs the round again without the node gets an answer.
        """
        hints = ("secure_aggregation.participants: a revoked node",)
        return self._refuse_one(job_id, message_id, ErrorCode.NODE_REVOKED, hints)

    def _refuse_one(self, job_id: str, message_id: str, code: ErrorCode, hints: tuple[str, ...]) -> Admission:
        trusted = self.trusted(job_id)
        self._audit.job_refused(
            job_id=job_id[:200],
            code=str(code),
            hints=hints,
            researcher=None if trusted is None else trusted.researcher,
            study=None if trusted is None else trusted.study,
            message_id=message_id[:200],
        )
        return Admission(Verdict.REFUSE, code, hints)

    def _per_message(self, job_id: str, known: _Known, envelope: Mapping[str, Any]) -> Admission | None:
        trusted = known.trusted
        if trusted is None or (known.admission is not None and known.admission.verdict is Verdict.REFUSE):
            return None
        if self._trust.revoked(trusted.membership):
            refusal = Admission(Verdict.REFUSE, ErrorCode.RESEARCHER_REVOKED, ("revocations",))
            self._audit.job_refused(
                job_id=job_id[:200],
                code=str(refusal.code),
                hints=refusal.hints,
                researcher=trusted.researcher,
                study=trusted.study,
            )
            with self._lock:
                self._remember(job_id, _Known(refusal, trusted))
            return refusal
        hints = outside_spec(trusted, envelope)
        if hints:
            return self.refuse_message(job_id, str(envelope.get("id")), hints)
        return None

    def _remember(self, job_id: str, known: _Known) -> None:
        self._decided[job_id] = known
        self._decided.move_to_end(job_id)
        while len(self._decided) > self._remembered:
            self._decided.popitem(last=False)

    def _decide(self, job_id: str, envelope: Mapping[str, Any]) -> _Known:
        try:
            trusted = self._trust.verify(job_id[:200], envelope)
        except MedfedError as exc:
            self._audit.job_refused(job_id=job_id[:200], code=str(exc.code), hints=exc.hints)
            return _Known(Admission(Verdict.REFUSE, exc.code, exc.hints), None)
        return _Known(self._decide_policy(job_id, trusted), trusted)

    def _decide_policy(self, job_id: str, trusted: TrustedJob) -> Admission | None:
        spec = trusted.spec
        try:
            epsilon, delta = _dp_cost(spec)
            job = job_from_spec(
                spec,
                job_id=job_id,
                study=trusted.study,
                researcher=trusted.researcher,
                epsilon=epsilon,
                delta=delta,
            )
        except InputError as exc:
            self._audit.job_arrived(
                job_id=job_id[:200],
                kind="unreadable",
                study=trusted.study,
                researcher=trusted.researcher,
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
