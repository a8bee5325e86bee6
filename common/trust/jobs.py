"""A job spec signed by a researcher: what a node runs, in the researcher's own words.

Body (``type: medfed.job.v1``)::

    {"spec": {...the job spec in its normal form...}, "study": "diabetes-2026",
     "key_id": "sha256:<hex of the researcher's public key>", "issued_at": 1790000000,
     "nonce": "<128 random bits, base64url>"}

The spec is signed in the normal form the coordinator stores (every default filled in), so that a node
can compare each message against it field by field. ``issued_at`` (unix seconds) bounds how long a
signed job may be used; the nonce makes two submissions of the same spec two different documents, and
:attr:`SignedJob.digest` (SHA-256 of the canonical body) is what a node remembers to refuse the same
signed document under a second job id.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.crypto import SigningKey, VerifyKey, b64url_encode, canonical_json, sha256
from common.errors import AccessError, ErrorCode, InputError
from common.trust.documents import sign_document, signed_body
from common.trust.membership import check_name

__all__ = ["DEFAULT_MAX_AGE_S", "DEFAULT_MAX_SKEW_S", "JOB_TYPE", "SignedJob", "read_signed_job", "sign_job"]

JOB_TYPE = "medfed.job.v1"
#: How old a signed job may be when it is submitted or first reaches a node (nodes configure their own).
DEFAULT_MAX_AGE_S = 24 * 3600.0
#: How far in the future a signed job may be dated (the signer's clock running ahead).
DEFAULT_MAX_SKEW_S = 300.0
_KEYS = frozenset({"type", "spec", "study", "key_id", "issued_at", "nonce"})
_NONCE_BYTES = 16


@dataclass(frozen=True, slots=True)
class SignedJob:
    """A signed job read from its document (its signature not yet checked: :meth:`verify`)."""

    spec: dict[str, Any]
    study: str
    key_id: str
    issued_at: int
    nonce: str
    body: dict[str, Any]
    signature: bytes

    @property
    def digest(self) -> str:
        """Hex SHA-256 of the canonical body: the same for every copy of this signed document."""
        return sha256(canonical_json(self.body)).hex()

    def verify(self, key: VerifyKey) -> None:
        """Return if ``key`` signed this job and is the key it names; AccessError(JOB_SIGNATURE_INVALID) otherwise."""
        if key.fingerprint() != self.key_id:
            raise AccessError(
                ErrorCode.JOB_SIGNATURE_INVALID, detail="the job names another key", hints=("signed_job.key_id",)
            )
        try:
            key.verify(canonical_json(self.body), self.signature)
        except InputError:  # not signable JSON (e.g. NaN); its hints would name submitted keys: none of them
            raise AccessError(
                ErrorCode.JOB_SIGNATURE_INVALID,
                detail="the signed job is not canonical JSON",
                hints=("signed_job.body",),
            ) from None
        except AccessError:
            raise AccessError(
                ErrorCode.JOB_SIGNATURE_INVALID,
                detail="the job signature does not verify",
                hints=("signed_job.signature",),
            ) from None

    def check_fresh(self, *, now: float, max_age_s: float, max_skew_s: float) -> None:
        """Return if the job was signed within ``max_age_s`` before ``now`` (and at most ``max_skew_s`` after);
        AccessError(JOB_STALE) otherwise."""
        if self.issued_at < now - max_age_s or self.issued_at > now + max_skew_s:
            raise AccessError(ErrorCode.JOB_STALE, detail="the job was signed outside the freshness window")


def sign_job(
    key: SigningKey,
    spec: Mapping[str, Any],
    *,
    study: str,
    issued_at: int | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """The signed job document of ``spec`` (in its normal form) for ``study``; InputError for a bad study name
    or a spec that is not JSON."""
    body = {
        "spec": dict(spec),
        "study": check_name(study, "study"),
        "key_id": key.public_key().fingerprint(),
        "issued_at": int(time.time()) if issued_at is None else int(issued_at),
        "nonce": nonce or b64url_encode(secrets.token_bytes(_NONCE_BYTES)),
    }
    canonical_json(body)  # a spec that cannot be signed fails here, with its location
    return sign_document(key, JOB_TYPE, body)


def read_signed_job(document: object) -> SignedJob:
    """The signed job in ``document`` (shape only); AccessError(JOB_NOT_SIGNED) for none, (JOB_SIGNATURE_INVALID)
    for a malformed one."""
    if document is None:
        raise AccessError(ErrorCode.JOB_NOT_SIGNED, detail="no signed job", hints=("signed_job: missing",))
    body, signature = signed_body(document, JOB_TYPE, ErrorCode.JOB_SIGNATURE_INVALID)
    spec, issued_at, nonce, key_id = body.get("spec"), body.get("issued_at"), body.get("nonce"), body.get("key_id")
    try:
        if set(body) != _KEYS or not isinstance(spec, Mapping):
            raise InputError(detail="signed job keys")
        if isinstance(issued_at, bool) or not isinstance(issued_at, int):
            raise InputError(detail="signed job time")
        if not isinstance(nonce, str) or not 16 <= len(nonce) <= 64 or not isinstance(key_id, str) or len(key_id) > 80:
            raise InputError(detail="signed job nonce or key id")
        study = check_name(body.get("study"), "study")
    except InputError:
        raise AccessError(
            ErrorCode.JOB_SIGNATURE_INVALID, detail="the signed job is malformed", hints=("signed_job: shape",)
        ) from None
    return SignedJob(
        spec=dict(spec),
        study=study,
        key_id=key_id,
        issued_at=issued_at,
        nonce=nonce,
        body=body,
        signature=signature,
    )
