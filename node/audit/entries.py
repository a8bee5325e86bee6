"""What an audit entry is, and exactly which bytes are hashed and signed.

An entry is ``(seq, at, kind, actor, details, subject, prev_hash)`` plus its ``hash`` and ``signature``:

- ``hash`` = hex SHA-256 of the RFC 8785 canonical JSON of
  ``{"v": 1, "seq", "at", "kind", "actor", "details", "subject", "prev"}`` — ``prev`` is the previous
  entry's hash (:data:`~node.store.audit_chain.GENESIS_HASH` for the first), so changing, removing or
  moving any entry breaks every link after it;
- ``signature`` = Ed25519 over :data:`ENTRY_CONTEXT` + the 32 raw hash bytes, by the node's audit key
  (``key_id`` is that key's fingerprint), so nobody without the key can rebuild a consistent chain.

``details`` is a small JSON object of counts, names of studies, rules and columns — never a patient value
or identifier. A subject (a FHIR resource a call touched, a released record) enters the chain only as
``subject``: an HMAC pseudonym under a node-secret key. The plain reference stays beside the entry in
the local ``subject_ref`` column, outside the hash and never exported, so the hospital can still answer
"who read this patient's record?"; verification checks the pseudonym against it when it has the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import orjson

from common.crypto import SigningKey, b64url_encode, canonical_json, hmac_sha256, sha256
from common.errors import InputError, InternalError
from node.store.audit_chain import ChainRow

__all__ = [
    "ENTRY_CONTEXT",
    "ENTRY_VERSION",
    "FORBIDDEN_DETAIL_KEYS",
    "AuditKind",
    "build_entry",
    "digest_payload",
    "entry_digest",
    "pseudonym",
]

ENTRY_VERSION = 1
ENTRY_CONTEXT = b"medfed audit entry v1\n"
MAX_DETAILS_BYTES = 16 * 1024
_PSEUDONYM_PREFIX = "h1:"

#: Keys a details object must never have: a bug that tried to audit an identifier fails loudly instead.
FORBIDDEN_DETAIL_KEYS = frozenset(
    {
        "address",
        "birthdate",
        "birth_date",
        "email",
        "identifier",
        "mrn",
        "name",
        "patient",
        "patient_id",
        "phone",
        "resource_id",
        "ssn",
        "telecom",
        "token",
    }
)


class AuditKind(StrEnum):
    """What an entry records."""

    STARTED = "audit.started"  # the chain's first entry; names the key that signs it
    KEY_ROTATED = "key.rotated"  # the audit key changed (the old one was lost or replaced)
    NODE_ENROLLED = "key.enrolled"  # the node's identity key, which signs the chain's receipts
    TOKEN_CREATED = "token.created"  # noqa: S105  (an event name, not a secret)
    TOKEN_REVOKED = "token.revoked"  # noqa: S105  (an event name, not a secret)
    POLICY_CHANGED = "policy.changed"
    JOB_RECEIVED = "job.received"
    POLICY_DECISION = "policy.decision"
    JOB_APPROVED = "job.approved"
    JOB_REJECTED = "job.rejected"
    JOB_TIMED_OUT = "job.timed_out"
    JOB_REFUSED = "job.refused"  # refused before any policy: its signature, researcher, freshness or a message
    RESULT_HELD = "result.held"
    RESULT_RELEASED = "result.released"
    RESULT_WITHHELD = "result.withheld"
    RESULT_TIMED_OUT = "result.timed_out"
    RECORD_RELEASED = "record.released"  # a record-locator release to another node
    FHIR_ACCESS = "fhir.access"
    API_CALL = "api.call"  # a call with a token outside /fhir (the admin API)


def pseudonym(subject_key: bytes, reference: str) -> str:
    """The HMAC pseudonym of a subject reference (``Patient/123``): stable per node, not reversible."""
    return _PSEUDONYM_PREFIX + hmac_sha256(subject_key, reference.encode("utf-8")).hex()[:32]


def _check_details(details: Mapping[str, Any], location: str = "details") -> None:
    for key, value in details.items():
        if not isinstance(key, str) or key.lower() in FORBIDDEN_DETAIL_KEYS:
            raise InternalError(detail=f"refusing an audit detail key at {location} (identifiers stay out)")
        if isinstance(value, Mapping):
            _check_details(value, f"{location}.{key}")


def digest_payload(
    *, seq: int, at: int, kind: str, actor: str, details_text: bytes, subject: str | None, prev_hash: str
) -> bytes:
    """``canonical_json({"v", "seq", "at", "kind", "actor", "details", "subject", "prev"})``, assembled.

    ``details_text`` is already canonical, so the object is joined from canonical pieces in RFC 8785's
    key order (actor, at, details, kind, prev, seq, subject, v) instead of serialising the details a
    second time: an append is on the path of every API call. A unit test holds this equal to
    ``canonical_json`` of the whole object.
    """
    return b"".join(
        (
            b'{"actor":',
            canonical_json(actor),
            b',"at":',
            canonical_json(at),
            b',"details":',
            details_text,
            b',"kind":',
            canonical_json(kind),
            b',"prev":',
            canonical_json(prev_hash),
            b',"seq":',
            canonical_json(seq),
            b',"subject":',
            canonical_json(subject),
            b',"v":',
            canonical_json(ENTRY_VERSION),
            b"}",
        )
    )


def build_entry(
    seq: int,
    prev_hash: str,
    *,
    at: int,
    kind: str,
    actor: str,
    details: Mapping[str, Any],
    key: SigningKey,
    key_id: str,
    subject: str | None = None,
    subject_ref: str | None = None,
) -> ChainRow:
    """A complete, signed entry that follows ``prev_hash`` at ``seq``."""
    _check_details(details)
    actor = actor[:200]
    details_text = canonical_json(dict(details))
    if len(details_text) > MAX_DETAILS_BYTES:
        raise InternalError(detail=f"audit details over {MAX_DETAILS_BYTES} bytes")
    digest = sha256(
        digest_payload(
            seq=seq, at=at, kind=kind, actor=actor, details_text=details_text, subject=subject, prev_hash=prev_hash
        )
    )
    return ChainRow(
        seq=seq,
        at=at,
        kind=kind,
        actor=actor,
        details=details_text.decode("utf-8"),
        subject=subject,
        subject_ref=subject_ref,
        prev_hash=prev_hash,
        hash=digest.hex(),
        key_id=key_id,
        signature=b64url_encode(key.sign(ENTRY_CONTEXT + digest)),
    )


def entry_digest(row: ChainRow) -> bytes:
    """The hash ``row`` should have, recomputed from its fields; InputError when ``details`` is not canonical JSON.

    Canonical, not merely equal: a details text re-spaced or re-ordered by hand counts as edited.
    """
    try:
        details = orjson.loads(row.details)
    except orjson.JSONDecodeError:
        raise InputError(detail="details are not JSON") from None
    if not isinstance(details, dict) or canonical_json(details).decode("utf-8") != row.details:
        raise InputError(detail="details are not canonical JSON")
    return sha256(
        digest_payload(
            seq=row.seq,
            at=row.at,
            kind=row.kind,
            actor=row.actor,
            details_text=row.details.encode("utf-8"),
            subject=row.subject,
            prev_hash=row.prev_hash,
        )
    )
