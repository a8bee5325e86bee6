"""The node's trust in a job: it runs what an authorised researcher signed, not what the coordinator says.

:class:`~node.trust.verifier.JobTrust` checks a job's first message (the signed document, the researcher's
membership certificate under the pinned network-admin key, the study, freshness, replay, revocation, and
that the coordinator's own description of the job matches what was signed), keeps the newest revocation
list (:class:`~node.trust.revocations.RevocationBook`: the researchers and nodes the node no longer
trusts), and :func:`~node.trust.binding.message_problem` checks every message against the signed spec.
:class:`~node.policy.admission.JobAdmissions` asks it before the node's policy decides (``docs/trust.md``).
"""

from node.trust.revocations import RevocationBook
from node.trust.verifier import JobTrust, TrustedJob

__all__ = ["JobTrust", "RevocationBook", "TrustedJob"]
