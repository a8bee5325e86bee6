"""The node's audit log: one object per process that appends hash-chained, signed entries.

Everything that crosses the node's trust boundary is recorded here, one entry per event, through the
typed helpers below (jobs received, policy decisions, approvals, releases, FHIR and admin API calls,
record-locator releases, policy changes, token and key events), so callers cannot put an identifier
into ``details`` by accident: subjects are pseudonymised (:func:`node.audit.entries.pseudonym`) and
only counts, names of rules, studies, sources and columns travel as details.

``AuditLog.open`` makes sure the chain has a first entry naming the audit key, and records a key change
when the key in the data directory is not the one that signed the newest entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from common.crypto import SigningKey, VerifyKey
from node.audit.entries import AuditKind, build_entry, pseudonym
from node.audit.keys import ensure_audit_key, subject_key
from node.store import audit_chain as store
from node.store.audit_chain import ChainRow

__all__ = ["AuditLog", "token_actor"]

#: The actor of what the node does on its own account (a timeout, a policy reload).
NODE_ACTOR = "node"


def token_actor(token_id: int, role: str) -> str:
    """The actor of a call made with an API token: its row id and role, never the token."""
    return f"token:{token_id}:{role}"


class AuditLog:
    """Appends entries to the node's audit chain (thread-safe: the store serialises appends)."""

    def __init__(self, engine: Engine, key: SigningKey, subject_key: bytes, *, clock: Callable[[], int] | None = None):
        self.engine = engine
        self._key = key
        self._subject_key = subject_key
        self._key_id = key.public_key().fingerprint()
        self._clock = clock or (lambda: time.time_ns() // 1000)

    @classmethod
    def open(cls, engine: Engine, data_dir: Path) -> AuditLog:
        """The audit log of the node whose data directory is ``data_dir`` (keys created on first use)."""
        log = cls(engine, ensure_audit_key(data_dir), subject_key(data_dir))
        log.start()
        return log

    @property
    def key_id(self) -> str:
        """The fingerprint of the key that signs this log's entries."""
        return self._key_id

    @property
    def public_key(self) -> VerifyKey:
        """The audit key's public half."""
        return self._key.public_key()

    @property
    def public_key_text(self) -> str:
        """The audit key's public half (base64url), as exports and receipts carry it."""
        return self._key.public_key().to_text()

    @property
    def subject_key(self) -> bytes:
        """The HMAC key of subject pseudonyms (for verification with subject checks)."""
        return self._subject_key

    def pseudonym(self, reference: str) -> str:
        """The pseudonym this node gives ``reference`` (to look up a subject's entries)."""
        return pseudonym(self._subject_key, reference)

    def start(self) -> None:
        """Write the first entry if the chain is empty; record a key change if another key signed last."""
        details = {"public_key": self.public_key_text, "key_id": self._key_id}
        if self._append(AuditKind.STARTED, NODE_ACTOR, details, only_if_empty=True) is not None:
            return
        newest = store.newest_entries(self.engine, limit=1)
        if newest and newest[0].key_id != self._key_id:
            self._append(AuditKind.KEY_ROTATED, NODE_ACTOR, {**details, "previous_key_id": newest[0].key_id})

    def append(
        self, kind: AuditKind, *, actor: str, details: Mapping[str, Any] | None = None, subject: str | None = None
    ) -> ChainRow:
        """Append one entry; ``subject`` (a local reference such as ``Patient/123``) is pseudonymised."""
        row = self._append(kind, actor, details or {}, subject=subject)
        assert row is not None  # only only_if_empty appends return None
        return row

    def _append(
        self,
        kind: AuditKind,
        actor: str,
        details: Mapping[str, Any],
        *,
        subject: str | None = None,
        only_if_empty: bool = False,
    ) -> ChainRow | None:
        return store.append_entry(self.engine, self._maker(kind, actor, details, subject), only_if_empty=only_if_empty)

    def _maker(
        self, kind: AuditKind, actor: str, details: Mapping[str, Any], subject: str | None = None
    ) -> Callable[[int, str], ChainRow]:
        """How to build the entry once the chain's head (its ``seq`` and hash) is known and locked."""
        reference = subject[:200] if subject else None
        hidden = pseudonym(self._subject_key, reference) if reference else None
        at = self._clock()

        def make(seq: int, prev_hash: str) -> ChainRow:
            return build_entry(
                seq,
                prev_hash,
                at=at,
                kind=str(kind),
                actor=actor,
                details=details,
                key=self._key,
                key_id=self._key_id,
                subject=hidden,
                subject_ref=reference,
            )

        return make

    # ------------------------------------------------------------- typed events

    def api_call(
        self,
        *,
        actor: str,
        action: str,
        status: int,
        resource_type: str | None = None,
        resource_ref: str | None = None,
        result_count: int | None = None,
        origin: str = "local",
    ) -> ChainRow:
        """A call with a token: FHIR routes as ``fhir.access``, the rest (admin API) as ``api.call``."""
        kind = AuditKind.FHIR_ACCESS if action.startswith("fhir.") else AuditKind.API_CALL
        details: dict[str, Any] = {"action": action, "status": status, "origin": origin}
        if resource_type is not None:
            details["resource_type"] = resource_type
        if result_count is not None:
            details["result_count"] = result_count
        return self.append(kind, actor=actor, details=details, subject=resource_ref)

    def job_arrived(
        self,
        *,
        job_id: str,
        kind: str,
        study: str | None,
        researcher: str | None,
        outcome: str,
        rule: str,
        reasons: Sequence[str] = (),
        policy_sha256: str | None = None,
    ) -> tuple[ChainRow, ChainRow]:
        """A job's arrival and the policy's decision on it, as two entries written in one transaction.

        One commit instead of two on the path of every job's first message (the decision is made before the
        node answers, so its cost is round-trip latency).
        """
        received = self._maker(AuditKind.JOB_RECEIVED, "coordinator", _received(job_id, kind, study, researcher))
        decided = self._maker(
            AuditKind.POLICY_DECISION, NODE_ACTOR, _decided(job_id, outcome, rule, reasons, policy_sha256)
        )
        first, second = store.append_entries(self.engine, [received, decided])
        return first, second

    def job_refused(
        self,
        *,
        job_id: str,
        code: str,
        hints: Sequence[str] = (),
        researcher: str | None = None,
        study: str | None = None,
        message_id: str | None = None,
    ) -> ChainRow:
        """A job (or one message of it) refused before it could run: the reason's catalog code and its
        location-only hints (``docs/trust.md``); ``researcher`` and ``study`` once the signature verified."""
        details = {
            "job_id": job_id,
            "code": code,
            "hints": list(hints)[:10],
            "researcher": researcher,
            "study": study,
            "message_id": message_id,
        }
        return self.append(AuditKind.JOB_REFUSED, actor=NODE_ACTOR, details=details)

    def job_decided_by_person(self, *, job_id: str, approved: bool, actor: str, note: str | None = None) -> ChainRow:
        """A person approved or rejected a job that waited for them."""
        kind = AuditKind.JOB_APPROVED if approved else AuditKind.JOB_REJECTED
        return self.append(kind, actor=actor, details={"job_id": job_id, "note": (note or "")[:500]})

    def timed_out(self, *, job_id: str, what: str, ref: str | None = None) -> ChainRow:
        """An approval (``what="approval"``) or a held result (``"release"``) waited past its deadline."""
        kind = AuditKind.JOB_TIMED_OUT if what == "approval" else AuditKind.RESULT_TIMED_OUT
        return self.append(kind, actor=NODE_ACTOR, details={"job_id": job_id, "result_ref": ref})

    def result_held(self, *, job_id: str, result_ref: str, summary: Mapping[str, Any]) -> ChainRow:
        """A result that passed the automatic checks waits for a steward."""
        return self.append(
            AuditKind.RESULT_HELD, actor=NODE_ACTOR, details={"job_id": job_id, "result_ref": result_ref, **summary}
        )

    def result_released(
        self, *, job_id: str, result_ref: str, summary: Mapping[str, Any], actor: str = NODE_ACTOR
    ) -> ChainRow:
        """A result left the node. ``summary``: sizes, cells, suppressed cells, epsilon and delta spent."""
        return self.append(
            AuditKind.RESULT_RELEASED, actor=actor, details={"job_id": job_id, "result_ref": result_ref, **summary}
        )

    def result_withheld(self, *, job_id: str, result_ref: str, actor: str) -> ChainRow:
        """A steward refused to release a held result."""
        return self.append(AuditKind.RESULT_WITHHELD, actor=actor, details={"job_id": job_id, "result_ref": result_ref})

    def record_released(self, *, record_ref: str, to_node: str, outcome: str, actor: str = NODE_ACTOR) -> ChainRow:
        """A record-locator release to another node (``record_ref`` is pseudonymised)."""
        return self.append(
            AuditKind.RECORD_RELEASED,
            actor=actor,
            details={"to_node": to_node, "outcome": outcome, "origin": "network"},
            subject=record_ref,
        )

    def policy_changed(self, *, sha256: str, previous: str | None, valid: bool, studies: int) -> ChainRow:
        """The policy file's content changed since the node last read it."""
        details = {"sha256": sha256, "previous_sha256": previous, "valid": valid, "studies": studies}
        return self.append(AuditKind.POLICY_CHANGED, actor=NODE_ACTOR, details=details)

    def token_event(self, *, created: bool, token_id: int, role: str | None, actor: str) -> ChainRow:
        """An API token was created or revoked (its row id and role; never the token)."""
        kind = AuditKind.TOKEN_CREATED if created else AuditKind.TOKEN_REVOKED
        return self.append(kind, actor=actor, details={"token_id": token_id, "role": role})

    def record_enrolment(self, *, node_id: str, identity_public_key: str) -> ChainRow | None:
        """Record the node's identity key once per key (enrolment, re-enrolment); None when recorded before."""
        last = store.latest_of_kind(self.engine, str(AuditKind.NODE_ENROLLED))
        if last is not None and orjson.loads(last.details).get("identity_key") == identity_public_key:
            return None
        details = {"node_id": node_id, "identity_key": identity_public_key}
        return self.append(AuditKind.NODE_ENROLLED, actor=NODE_ACTOR, details=details)


def _received(job_id: str, kind: str, study: str | None, researcher: str | None) -> dict[str, Any]:
    return {"job_id": job_id, "job_kind": kind, "study": study, "researcher": researcher}


def _decided(
    job_id: str,
    outcome: str,
    rule: str,
    reasons: Sequence[str],
    policy_sha256: str | None,
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "outcome": outcome,
        "rule": rule,
        "reasons": list(reasons)[:20],
        "policy_sha256": policy_sha256,
        "dry_run": False,  # a dry-run (``medfed node policy check``) decides without recording
    }
