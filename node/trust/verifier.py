"""Verifying a job's signed document at the node, before its policy decides (see ``docs/trust.md``).

A job's first message brings, beside the coordinator's description of the job (``app``, ``message_types``,
``rounds``, ``spec``, ``submitter`` — hints only), the document its researcher signed (``signed_job``) and
the researcher's membership certificate (``membership``). :meth:`JobTrust.verify` accepts the job only
when, in this order:

1. the node pinned a network-admin key at enrolment (else ``trust_not_configured``);
2. there is a signed document (``job_not_signed``) of the right shape (``job_signature_invalid``);
3. the certificate verifies under the pinned key and is valid now (``researcher_unknown``);
4. the certificate's key signed the document (``job_signature_invalid``);
5. the signed study is one of the certificate's (``researcher_not_in_study``);
6. the researcher (by name or key) is not on the newest revocation list (``researcher_revoked``);
7. the coordinator's description matches the signed spec, and the spec names no other study
   (``job_spec_altered``);
8. it was signed within ``max_age_s`` before now and at most ``max_skew_s`` after (``job_stale``);
9. the same signed document never came under another job id (``job_replayed``; kept in the node's
   database for the freshness window).

The job the policy decides on is then built from the signed spec, the signed study and the
certificate's researcher name; nothing of the coordinator's hints reaches it. Revocation lists arrive with
poll and heartbeat answers (:meth:`JobTrust.accept_revocations`); a list is believed only when the pinned
key signed it and its serial is not below the one held, and it is checked again for every message of a
running job (:meth:`JobTrust.revoked`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from common.crypto import VerifyKey
from common.errors import AccessError, ErrorCode
from common.trust import Membership, SignedJob, read_signed_job, verify_membership
from common.trust.jobs import DEFAULT_MAX_AGE_S, DEFAULT_MAX_SKEW_S
from node.store import trust as store
from node.trust.revocations import RevocationBook

__all__ = ["JobTrust", "TrustedJob"]

# The coordinator's description of a job that must equal the signed spec's (envelope key -> spec key).
_HINTS = (("app", "app"), ("message_types", "message_types"), ("rounds", "rounds"))


@dataclass(frozen=True, slots=True)
class TrustedJob:
    """A job whose signed document verified: what the node runs and decides on."""

    job_id: str
    signed: SignedJob
    membership: Membership

    @property
    def spec(self) -> dict[str, Any]:
        """The spec as the researcher signed it."""
        return self.signed.spec

    @property
    def researcher(self) -> str:
        """The researcher's name, from the network-admin's certificate."""
        return self.membership.researcher

    @property
    def study(self) -> str:
        """The study the researcher signed the job for."""
        return self.signed.study

    def round_allowed(self, server_round: object) -> bool:
        """Whether a message may name round ``server_round``: 1 to the signed bound (the job's rounds for
        learning, its steps for an analysis, else 1)."""
        if isinstance(server_round, bool) or not isinstance(server_round, int):
            return False
        bound = 1
        for key in ("rounds", "max_rounds"):
            value = self.spec.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                bound = value
                break
        return 1 <= server_round <= bound


def _refuse(code: ErrorCode, detail: str, hint: str) -> AccessError:
    return AccessError(code, detail=detail, hints=(hint,))


class JobTrust:
    """The node's checks of signed jobs and its newest revocation list (thread-safe)."""

    def __init__(
        self,
        engine: Engine,
        admin_key: VerifyKey | None,
        *,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        max_skew_s: float = DEFAULT_MAX_SKEW_S,
        clock: Callable[[], float] = time.time,
        revocations: RevocationBook | None = None,
    ) -> None:
        self._engine = engine
        self._admin_key = admin_key
        self._max_age_s = max_age_s
        self._max_skew_s = max_skew_s
        self._clock = clock
        self._revocations = revocations if revocations is not None else RevocationBook(engine, admin_key, clock=clock)

    @property
    def revocations(self) -> RevocationBook:
        """The newest revocation list held (the channel feeds it; the node's other peer checks read it)."""
        return self._revocations

    @property
    def revocation_serial(self) -> int:
        """The serial of the newest revocation list held (0: none)."""
        return self._revocations.serial

    def accept_revocations(self, document: object) -> bool:
        """Hold ``document`` if the pinned key signed it and its serial is not below the held one (see
        :meth:`RevocationBook.accept`); whether it changed what the node holds."""
        return self._revocations.accept(document)

    def revoked(self, membership: Membership) -> bool:
        """Whether the newest list held revokes the researcher of ``membership``."""
        held = self._revocations.held()
        return held is not None and held.revoked(researcher=membership.researcher, key_id=membership.key_id)

    def verify(self, job_id: str, envelope: Mapping[str, Any]) -> TrustedJob:
        """The job of ``envelope`` if it passes every check of the module docstring; AccessError with the code of
        the first that fails (hints are locations, never values)."""
        if self._admin_key is None:
            raise _refuse(ErrorCode.TRUST_NOT_CONFIGURED, "no network-admin key pinned", "identity: re-enrol")
        signed = read_signed_job(envelope.get("signed_job"))
        now = self._clock()
        if envelope.get("membership") is None:
            raise _refuse(ErrorCode.RESEARCHER_UNKNOWN, "no membership certificate", "membership: missing")
        membership = verify_membership(envelope.get("membership"), self._admin_key, now=now, skew_s=self._max_skew_s)
        signed.verify(membership.public_key)
        if signed.study not in membership.studies:
            raise _refuse(ErrorCode.RESEARCHER_NOT_IN_STUDY, "the study is not in the certificate", "study")
        if self.revoked(membership):
            raise _refuse(ErrorCode.RESEARCHER_REVOKED, "the researcher is revoked", "revocations")
        self._check_hints(envelope, signed, membership)
        signed.check_fresh(now=now, max_age_s=self._max_age_s, max_skew_s=self._max_skew_s)
        other = store.remember_job(
            self._engine,
            digest=signed.digest,
            job_id=job_id,
            issued_at=signed.issued_at * 1_000_000,
            forget_before=int((now - self._max_age_s - self._max_skew_s) * 1e6),
        )
        if other is not None:
            raise _refuse(ErrorCode.JOB_REPLAYED, "the signed job came under another job id", "signed_job: used")
        return TrustedJob(job_id=job_id, signed=signed, membership=membership)

    @staticmethod
    def _check_hints(envelope: Mapping[str, Any], signed: SignedJob, membership: Membership) -> None:
        """The coordinator's description of the job must be the signed one (a mismatch: it altered the job)."""
        spec = signed.spec
        altered = [key for key, spec_key in _HINTS if key in envelope and envelope[key] != spec.get(spec_key)]
        hinted = envelope.get("spec")
        if isinstance(hinted, Mapping):
            altered += [f"spec.{key}" for key, value in hinted.items() if spec.get(str(key)) != value]
        elif hinted is not None:
            altered.append("spec")
        if envelope.get("submitter") not in (None, membership.researcher):
            altered.append("submitter")
        if spec.get("study") not in (None, signed.study):
            altered.append("spec.study")
        if altered:
            raise AccessError(
                ErrorCode.JOB_SPEC_ALTERED,
                detail="the coordinator's description differs from the signed spec",
                hints=tuple(f"{name}: not as signed" for name in altered[:10]),
            )
