"""The node's release step: its disclosure policy, its secret and its epsilon ledger, applied to a job.

:class:`NodeRelease` is the ``analysis`` app's :class:`~node.federation.apps.analysis.Release`:

* :meth:`~NodeRelease.admit` runs before a job's first answer. When the job is differentially private
  (it asks for DP, or the node's policy requires it), it reserves the job's epsilon and delta in the
  ledger, atomically, under the researcher x study account and the node-wide cap, keyed by the query
  digest (the question, its parameters, cohort and privacy request, **and the data snapshot**; not who
  asked or in which job). A refusal is ``privacy_budget_exceeded``; a repeat of the same digest costs
  nothing and, its noise being seeded by the digest, gets the same answer;
* :meth:`~NodeRelease.release` applies the rules of the analysis (:mod:`.cells`, :mod:`.statistics`);
* :meth:`~NodeRelease.secure_vector` gives a count analysis' vector for secure aggregation.

Which rules: DP when the job asks for it or the policy requires it (the job's request is used when it is
at least as strict as the node's, else the node's; only count, histogram and crosstab can be released
under DP, anything else is refused while the node requires DP); otherwise, with the policy enabled,
suppression and cell-key noise; with the policy disabled, the exact partial. Fail closed: an analysis
without a rule, a cell-key policy without the node's disclosure secret, DP without a ledger, are
refused, never released unprotected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.analytics.secure import max_value_for
from common.analytics.task import PRIVATE_ANALYSES, AnalysisTask
from common.errors import ConflictError, ErrorCode
from common.privacy.cell_key import PTable
from common.privacy.dp import UNIT_RECORD, noise_rng, query_digest
from common.privacy.policy import DisclosurePolicy, DpPolicy
from common.privacy.record_keys import RecordKeyring
from common.privacy.release import Discloser
from node.federation.apps.analysis import Released, ReleaseStep, SecureVector
from node.federation.release.cells import cell_key_partial, cell_sets, check_against, dp_partial, secure_values
from node.federation.release.statistics import kaplan_meier_partial, model_partial, moments_partial, quantiles_partial
from node.privacy.ledger import PrivacyBudgetExceededError, PrivacyLedger

__all__ = ["Admission", "NodeRelease"]

_NONE: dict[str, Any] = {"method": "none", "parameters": {}}


@dataclass(frozen=True, slots=True)
class Admission:
    """A differentially private job's place in the ledger."""

    digest: str
    entry_id: int
    charged: bool


def _not_releasable(hint: str) -> ConflictError:
    return ConflictError(ErrorCode.ANALYSIS_NOT_RELEASABLE, detail="no release rule for this job", hints=[hint])


class NodeRelease:
    """The release step of one node (see the module docstring)."""

    def __init__(
        self, policy: DisclosurePolicy, *, secret: bytes | None = None, ledger: PrivacyLedger | None = None
    ) -> None:
        """Bind the policy to the node's disclosure secret and ledger (either may be missing: fail closed)."""
        self.policy = policy
        self._secret = secret
        self._keyring = None if secret is None else RecordKeyring(secret)
        self._ledger = ledger
        needs_key = policy.p_table is not None
        self._discloser = None if needs_key and self._keyring is None else Discloser(policy, self._keyring)

    def __repr__(self) -> str:
        return f"NodeRelease({self.policy!r})"

    # --- differential privacy ---------------------------------------------------------------------

    def dp_for(self, task: AnalysisTask) -> DpPolicy | None:
        """The DP mechanism a job is released under, or None (see the module docstring)."""
        asked = None if task.privacy is None or task.privacy.dp is None else task.privacy.dp
        required = self.policy.dp if self.policy.enabled else None
        if asked is not None and (
            required is None or (asked.epsilon <= required.epsilon and asked.delta <= required.delta)
        ):
            return DpPolicy(mechanism=asked.mechanism, epsilon=asked.epsilon, delta=asked.delta)
        if required is not None and task.analysis not in PRIVATE_ANALYSES:
            raise _not_releasable(f"dp: this node releases only differentially private {', '.join(PRIVATE_ANALYSES)}")
        return required

    @staticmethod
    def digest(task: AnalysisTask, snapshot: str, dp: DpPolicy) -> str:
        """The query digest a DP job is charged and seeded by: the question and the data snapshot."""
        return query_digest(
            {
                "query": task.query(),
                "snapshot": snapshot,
                "dp": {"mechanism": dp.mechanism, "epsilon": dp.epsilon, "delta": dp.delta},
                "unit": UNIT_RECORD,
            }
        )

    def admit(self, task: AnalysisTask, snapshot: str) -> Admission | None:
        """Reserve a DP job's epsilon before its first answer; None when the job spends none."""
        dp = self.dp_for(task)
        if dp is None:
            return None
        privacy = task.privacy
        if self._ledger is None or self._secret is None:
            raise PrivacyBudgetExceededError(
                detail="no ledger or disclosure secret at this node",
                hints=["privacy: this node has no epsilon ledger or no disclosure secret for DP noise"],
            )
        if privacy is None or privacy.study is None or privacy.researcher is None:
            raise PrivacyBudgetExceededError(
                detail="a DP job without a study or researcher", hints=["study: DP is charged to a named study"]
            )
        digest = self.digest(task, snapshot, dp)
        reservation = self._ledger.reserve(
            researcher=privacy.researcher,
            study=privacy.study,
            query_digest=digest,
            epsilon=dp.epsilon,
            delta=dp.delta,
            job_id=privacy.job,
        )
        return Admission(digest, reservation.entry_id, reservation.charged)

    def _dp_rng(self, step: ReleaseStep, dp: DpPolicy) -> tuple[Any, str]:
        admission = step.admission if isinstance(step.admission, Admission) else self.admit(step.task, step.snapshot)
        if admission is None or self._secret is None:  # pragma: no cover - admit refuses first
            raise _not_releasable("dp: not admitted")
        return noise_rng(self._secret, admission.digest), admission.digest

    def _answered(self, step: ReleaseStep) -> None:
        if isinstance(step.admission, Admission) and self._ledger is not None:
            job = step.task.privacy.job if step.task.privacy is not None else None
            self._ledger.record_answer(step.admission.entry_id, f"job:{job or step.admission.digest}")

    # --- release ----------------------------------------------------------------------------------

    def _require_discloser(self) -> Discloser:
        if self._discloser is None:
            raise _not_releasable("disclosure: this node has no disclosure secret for cell-key noise")
        return self._discloser

    def release(self, step: ReleaseStep) -> Released:
        """The step's partial as it may leave this node."""
        task, partial = step.task, step.partial or {}
        dp = self.dp_for(task)
        if dp is not None:
            sets = cell_sets(task, step.rows)
            check_against(sets, partial)
            rng, digest = self._dp_rng(step, dp)
            released, metadata = dp_partial(sets, dp, rng)
            metadata["parameters"]["query_digest"] = digest
            self._answered(step)
            return Released(released, metadata)
        if not self.policy.enabled:
            return Released(partial, dict(_NONE))
        discloser = self._require_discloser()
        analysis = task.analysis
        if analysis in PRIVATE_ANALYSES:
            sets = cell_sets(task, step.rows)
            check_against(sets, partial)
            released, metadata = cell_key_partial(sets, discloser)
        elif analysis == "moments":
            released, metadata = moments_partial(task, step.rows, partial, discloser)
        elif analysis == "quantiles":
            released, metadata = quantiles_partial(task, step.rows, step.request, discloser)
        elif analysis == "kaplan_meier":
            released, metadata = kaplan_meier_partial(task, step.rows, discloser)
        elif analysis in ("glm", "cox"):
            released, metadata = model_partial(task, partial, self.policy.min_cell)
        else:
            raise _not_releasable(f"analysis: no release rule for {analysis} with disclosure control on")
        return Released(released, metadata)

    def secure_vector(self, step: ReleaseStep) -> SecureVector:
        """The node's vector for secure aggregation, perturbed by its rules, with what it declares."""
        task = step.task
        if task.analysis not in PRIVATE_ANALYSES:
            raise _not_releasable(f"secure_aggregation: not for {task.analysis}")
        sets = cell_sets(task, step.rows)
        dp = self.dp_for(task)
        noise = 0
        if dp is not None:
            rng, digest = self._dp_rng(step, dp)
            values, dp_metadata = secure_values(sets, dp=(dp, rng), p_table=None, keyring=None)
            metadata = dict(dp_metadata or _NONE)
            metadata["parameters"] = {**metadata.get("parameters", {}), "query_digest": digest}
            min_cell = 1
            self._answered(step)
        elif self.policy.enabled:
            discloser = self._require_discloser()
            p_table = None
            if self.policy.cell_key:
                noise = self.policy.max_noise
                p_table = PTable(max_noise=noise, min_cell=1)
            values, _ = secure_values(sets, dp=None, p_table=p_table, keyring=self._keyring)
            metadata = discloser.metadata(
                secure_aggregation="every entry perturbed before masking (smallest released value 1); "
                "suppression applied to the totals by the coordinator with this node's min_cell",
            )
            if p_table is not None:
                metadata["parameters"]["cell_key"] = p_table.parameters()
            min_cell = self.policy.min_cell
        else:
            values, _ = secure_values(sets, dp=None, p_table=None, keyring=None)
            metadata, min_cell = dict(_NONE), 1
        max_value = max_value_for(step.source_rows, noise)
        values = [min(max(0, v), max_value) for v in values]
        metadata = {**metadata, "secure_aggregation": True}
        return SecureVector(values, max_value, min_cell, metadata)
