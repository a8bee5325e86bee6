"""What researchers, the network admin and the nodes agree on so that a node need not trust the coordinator.

Three signed documents, each ``{"body": {...}, "signature": base64url}`` where the signature is Ed25519
over the RFC 8785 canonical JSON of the body (:func:`common.crypto.canonical_json`), and the body names
its own ``type`` so that no document can be passed off as another:

- :mod:`~common.trust.membership` — a researcher's membership certificate, signed by the network-admin
  key: their name, public key, studies and validity;
- :mod:`~common.trust.jobs` — a job spec signed by a researcher: the spec, the study, the researcher's
  key id, when it was signed and a random nonce;
- :mod:`~common.trust.revocations` — the network-admin's revocation list of researchers and nodes,
  numbered by a serial that only grows.

Nodes pin the network-admin public key at enrolment, so a certificate or a revocation list is believed
only when that key signed it, and a job only when the key in a valid certificate did. The design, the
threat model and the checks a node makes are in ``docs/trust.md``.
"""

from common.trust.documents import open_document, sign_document
from common.trust.jobs import SignedJob, read_signed_job, sign_job
from common.trust.membership import Membership, issue_membership, verify_membership
from common.trust.revocations import Revocations, RevokedNode, sign_revocations, verify_revocations

__all__ = [
    "Membership",
    "Revocations",
    "RevokedNode",
    "SignedJob",
    "issue_membership",
    "open_document",
    "read_signed_job",
    "sign_document",
    "sign_job",
    "sign_revocations",
    "verify_membership",
    "verify_revocations",
]
