"""The node's tables.

Resources are kept as the JSON they were received as (after server-assigned ids, ``meta`` and
rewritten ``urn:uuid:`` references), one row per current version in ``fhir_resource`` and earlier
versions in ``fhir_resource_history``. Search runs over four narrow index tables, one per search
parameter type; a deleted resource has no index rows, so searches never see it.

``search_token`` rows also carry the range of their resource's primary date (``Observation.date``,
``Condition.onset-date``, ...): the most common clinical query, *code within a time window*, then
reads one covering index instead of joining two large tables. That index orders by the range's
*end*, so "since D" (``ge``, ``gt``, ``sa``, ``eq``, ``eb``) seeks straight to its first row.

Times are integer epoch microseconds (UTC); a date range is half-open ``[low, high)``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = [
    "AccessAudit",
    "ApiToken",
    "AuditChainEntry",
    "AuditChainHead",
    "FederationReply",
    "IngestReport",
    "LinkageOutbox",
    "LinkageRecord",
    "LocatorAudit",
    "PatientConsent",
    "PolicyApproval",
    "PolicyReleaseHold",
    "PrivacyAccount",
    "PrivacyLedgerEntry",
    "PrivacyNodeCap",
    "Resource",
    "ResourceHistory",
    "SearchDate",
    "SearchReference",
    "SearchString",
    "SearchToken",
    "TrustRevocations",
    "TrustSeenJob",
    "ViewDefinitionRecord",
    "ViewRow",
]

# PostgreSQL compares text by the database's locale unless told otherwise; prefix search over
# normalised strings needs plain code-point order, which SQLite's default BINARY collation has.
_BINARY_TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")


def _micros() -> sa.BigInteger:
    return sa.BigInteger()


class Resource(SQLModel, table=True):
    """The current version of every resource, including deletion markers."""

    __tablename__ = "fhir_resource"

    resource_type: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    version_id: int
    last_updated: int = Field(sa_type=_micros())
    deleted: bool = False
    content: bytes = Field(sa_type=sa.LargeBinary())


class ResourceHistory(SQLModel, table=True):
    """Every superseded version of a resource, kept for ``_history`` reads."""

    __tablename__ = "fhir_resource_history"

    resource_type: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    version_id: int = Field(primary_key=True)
    last_updated: int = Field(sa_type=_micros())
    deleted: bool = False
    content: bytes = Field(sa_type=sa.LargeBinary())


# Index tables: the primary key leads with the owning resource (it serves deletes and the EXISTS
# probes of a search), and on SQLite the rows live in that key's B-tree (WITHOUT ROWID), so each
# index row costs two B-tree inserts, not three. Extraction de-duplicates values, so keys are unique.
_WITHOUT_ROWID = {"sqlite_with_rowid": False}


class SearchToken(SQLModel, table=True):
    """One (system, code) value of a token parameter, with the resource's primary date range."""

    __tablename__ = "search_token"
    __table_args__ = (
        sa.Index(
            "ix_search_token_lookup",
            "resource_type",
            "param",
            "code",
            "date_high",
            "date_low",
            "system",
            "resource_id",
        ),
        _WITHOUT_ROWID,
    )

    resource_type: str = Field(primary_key=True, max_length=64)
    resource_id: str = Field(primary_key=True, max_length=64)
    param: str = Field(primary_key=True, max_length=64)
    system: str = Field(primary_key=True)
    code: str = Field(primary_key=True)
    date_low: int | None = Field(default=None, sa_type=_micros())
    date_high: int | None = Field(default=None, sa_type=_micros())


class SearchString(SQLModel, table=True):
    """One value of a string parameter: normalised for default and :contains, exact for :exact."""

    __tablename__ = "search_string"
    __table_args__ = (
        sa.Index("ix_search_string_lookup", "resource_type", "param", "value_norm", "resource_id"),
        _WITHOUT_ROWID,
    )

    resource_type: str = Field(primary_key=True, max_length=64)
    resource_id: str = Field(primary_key=True, max_length=64)
    param: str = Field(primary_key=True, max_length=64)
    value_norm: str = Field(primary_key=True, sa_type=_BINARY_TEXT)
    value_exact: str = Field(primary_key=True)


class SearchDate(SQLModel, table=True):
    """One value of a date parameter as a half-open range of epoch microseconds."""

    __tablename__ = "search_date"
    __table_args__ = (
        sa.Index("ix_search_date_low", "resource_type", "param", "low", "high", "resource_id"),
        sa.Index("ix_search_date_high", "resource_type", "param", "high", "low", "resource_id"),
        _WITHOUT_ROWID,
    )

    resource_type: str = Field(primary_key=True, max_length=64)
    resource_id: str = Field(primary_key=True, max_length=64)
    param: str = Field(primary_key=True, max_length=64)
    low: int = Field(primary_key=True, sa_type=_micros())
    high: int = Field(primary_key=True, sa_type=_micros())


class SearchReference(SQLModel, table=True):
    """One reference from a resource to another, by parameter."""

    __tablename__ = "search_reference"
    __table_args__ = (
        sa.Index(
            "ix_search_reference_target",
            "target_type",
            "target_id",
            "resource_type",
            "param",
            "resource_id",
        ),
        _WITHOUT_ROWID,
    )

    resource_type: str = Field(primary_key=True, max_length=64)
    resource_id: str = Field(primary_key=True, max_length=64)
    param: str = Field(primary_key=True, max_length=64)
    target_type: str = Field(primary_key=True, max_length=64)
    target_id: str = Field(primary_key=True, max_length=64)


class ApiToken(SQLModel, table=True):
    """A bearer token for the node's local API, stored as its SHA-256 (tokens are 256-bit random)."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=32)
    label: str = Field(default="", max_length=200)
    created_at: int = Field(sa_type=_micros())
    revoked_at: int | None = Field(default=None, sa_type=_micros())


class AccessAudit(SQLModel, table=True):
    """One authenticated API call: who (token id and role), what, on which resource, with what outcome.

    Append-only by convention for now; the trust issue makes it hash-chained and signed.
    """

    __tablename__ = "access_audit"

    id: int | None = Field(default=None, primary_key=True)
    at: int = Field(sa_type=_micros(), index=True)
    token_id: int
    role: str = Field(max_length=32)
    action: str = Field(max_length=32)
    resource_type: str | None = Field(default=None, max_length=64)
    resource_id: str | None = Field(default=None, max_length=64)
    status: int
    result_count: int | None = None


class IngestReport(SQLModel, table=True):
    """The data-quality summary of one ingest (counts, rejected entries, code systems seen)."""

    __tablename__ = "ingest_report"

    id: int | None = Field(default=None, primary_key=True)
    at: int = Field(sa_type=_micros())
    source: str = Field(max_length=16)
    summary: bytes = Field(sa_type=sa.LargeBinary())


class FederationReply(SQLModel, table=True):
    """The node's reply to a channel message, kept so that a redelivered message is answered again
    from here and never executed twice (after a reconnect or a node restart)."""

    __tablename__ = "federation_reply"

    message_id: str = Field(primary_key=True, max_length=200)
    job_id: str | None = Field(default=None, max_length=200, index=True)
    payload: bytes = Field(sa_type=sa.LargeBinary())
    created_at: int = Field(sa_type=_micros())


# The epsilon ledger (node/store/ledger.py). Epsilon and delta are kept as integers (nano-epsilon,
# femto-delta) so that budgets add up exactly: 0.1 + 0.2 must not exceed a budget of 0.3.


class PrivacyAccount(SQLModel, table=True):
    """The privacy budget of one researcher for one study on this node, and how much of it is spent."""

    __tablename__ = "privacy_account"

    researcher: str = Field(primary_key=True, max_length=200)
    study: str = Field(primary_key=True, max_length=200)
    epsilon_budget_nano: int = Field(sa_type=sa.BigInteger())
    delta_budget_femto: int = Field(sa_type=sa.BigInteger())
    epsilon_spent_nano: int = Field(default=0, sa_type=sa.BigInteger())
    delta_spent_femto: int = Field(default=0, sa_type=sa.BigInteger())
    updated_at: int = Field(sa_type=_micros())


class PrivacyNodeCap(SQLModel, table=True):
    """The node-wide cap over every account (one row, id 1); reservations lock it, so they queue."""

    __tablename__ = "privacy_node_cap"

    id: int = Field(primary_key=True)
    epsilon_cap_nano: int = Field(sa_type=sa.BigInteger())
    delta_cap_femto: int = Field(sa_type=sa.BigInteger())
    epsilon_spent_nano: int = Field(default=0, sa_type=sa.BigInteger())
    delta_spent_femto: int = Field(default=0, sa_type=sa.BigInteger())
    updated_at: int = Field(sa_type=_micros())


class PrivacyLedgerEntry(SQLModel, table=True):
    """One charged query: who, which study, which query (its digest), which job, what it cost, its answer."""

    __tablename__ = "privacy_ledger_entry"
    __table_args__ = (sa.UniqueConstraint("researcher", "study", "query_digest", name="uq_privacy_ledger_query"),)

    id: int | None = Field(default=None, primary_key=True)
    researcher: str = Field(max_length=200)
    study: str = Field(max_length=200)
    query_digest: str = Field(max_length=80)
    job_id: str | None = Field(default=None, max_length=200, index=True)
    unit: str = Field(max_length=16)
    epsilon_nano: int = Field(sa_type=sa.BigInteger())
    delta_femto: int = Field(sa_type=sa.BigInteger())
    state: str = Field(max_length=16)
    answer_ref: str | None = Field(default=None, max_length=200)
    created_at: int = Field(sa_type=_micros())
    updated_at: int = Field(sa_type=_micros())


# Materialised SQL-on-FHIR views (node/views/materialise.py). One generic table holds every view's
# rows as JSON, keyed by (view, resource, ordinal): views are registered at run time without DDL,
# their column sets differ, and a resource's rows are replaced in the transaction that writes it.


class ViewDefinitionRecord(SQLModel, table=True):
    """A registered view: its ViewDefinition JSON, digest, and the health of its materialised rows."""

    __tablename__ = "view_definition"

    name: str = Field(primary_key=True, max_length=64)
    resource_type: str = Field(max_length=64, index=True)
    digest: str = Field(max_length=64)
    definition: bytes = Field(sa_type=sa.LargeBinary())
    installed_at: int = Field(sa_type=_micros())
    built_at: int | None = Field(default=None, sa_type=_micros())
    error_count: int = 0
    last_error: str | None = Field(default=None, max_length=500)


class ViewRow(SQLModel, table=True):
    """One row of a view for one resource, as JSON; ``patient_key`` copies the row's patient_id for joins."""

    __tablename__ = "view_row"
    __table_args__ = (sa.Index("ix_view_row_patient", "view_name", "patient_key"),)

    view_name: str = Field(primary_key=True, max_length=64)
    resource_type: str = Field(primary_key=True, max_length=64)
    resource_id: str = Field(primary_key=True, max_length=64)
    ordinal: int = Field(primary_key=True)
    patient_key: str | None = Field(default=None, max_length=64)
    row: bytes = Field(sa_type=sa.LargeBinary())


# The tamper-evident audit chain (node/store/audit_chain.py, node/audit/). Each entry is hash-chained to
# the one before and signed; ``subject_ref`` is the one column outside the hash: the local reference a
# pseudonymised subject stands for, kept for the hospital's own look-ups and never exported.


class AuditChainEntry(SQLModel, table=True):
    """One audit entry: what happened (kind, actor, details), chained by ``prev_hash`` and signed."""

    __tablename__ = "audit_entry"
    __table_args__ = (sa.Index("ix_audit_entry_kind_seq", "kind", "seq"),)

    seq: int = Field(sa_type=sa.BigInteger(), sa_column_kwargs={"autoincrement": False}, primary_key=True)
    at: int = Field(sa_type=_micros())
    kind: str = Field(max_length=64)
    actor: str = Field(max_length=200)
    details: str = Field(sa_type=sa.Text())
    subject: str | None = Field(default=None, max_length=80)
    subject_ref: str | None = Field(default=None, max_length=200)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    key_id: str = Field(max_length=80)
    signature: str = Field(max_length=100)


class AuditChainHead(SQLModel, table=True):
    """The chain's last entry (one row, id 1): appends lock it, so sequence numbers have no gaps."""

    __tablename__ = "audit_chain_head"

    id: int = Field(primary_key=True)
    seq: int = Field(sa_type=sa.BigInteger())
    hash: str = Field(max_length=64)


# Approval and release queues (node/policy/queue.py): jobs that wait for a person, results that wait
# for a steward. No patient data: job descriptions name studies, sources and columns only.


class PolicyApproval(SQLModel, table=True):
    """A job that policy sent to a person: pending until approved, rejected or timed out."""

    __tablename__ = "policy_approval"
    __table_args__ = (sa.Index("ix_policy_approval_state", "state", "deadline_at"),)

    job_id: str = Field(primary_key=True, max_length=200)
    study: str = Field(max_length=200)
    researcher: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    rule: str = Field(max_length=300)
    job: str = Field(sa_type=sa.Text())
    state: str = Field(max_length=16)
    requested_at: int = Field(sa_type=_micros())
    deadline_at: int = Field(sa_type=_micros())
    decided_at: int | None = Field(default=None, sa_type=_micros())
    decided_by: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=500)


class PolicyReleaseHold(SQLModel, table=True):
    """A result that policy holds for a steward after the automatic disclosure checks."""

    __tablename__ = "policy_release_hold"
    __table_args__ = (
        sa.UniqueConstraint("job_id", "result_ref", name="uq_policy_release_hold_result"),
        sa.Index("ix_policy_release_hold_state", "state", "deadline_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=200)
    result_ref: str = Field(max_length=200)
    summary: str = Field(sa_type=sa.Text())
    payload: bytes = Field(sa_type=sa.LargeBinary())
    state: str = Field(max_length=16)
    held_at: int = Field(sa_type=_micros())
    deadline_at: int = Field(sa_type=_micros())
    decided_at: int | None = Field(default=None, sa_type=_micros())
    decided_by: str | None = Field(default=None, max_length=200)


# The patient index and the record locator (node/linkage/, node/locator/). Patients whose linkage
# tokens must be (re)published or withdrawn are queued in the write transaction that changed them;
# the publisher drains the queue in the background, so a FHIR write never waits for the coordinator.


class LinkageOutbox(SQLModel, table=True):
    """A patient whose index entry must be brought up to date (published, replaced or withdrawn)."""

    __tablename__ = "linkage_outbox"

    patient_id: str = Field(primary_key=True, max_length=64)
    queued_at: int = Field(sa_type=_micros(), index=True)


class LinkageRecord(SQLModel, table=True):
    """What the node published for one patient: the opaque reference, under which key, and its state."""

    __tablename__ = "linkage_record"

    patient_id: str = Field(primary_key=True, max_length=64)
    ref: str = Field(max_length=64, unique=True)  # random; the coordinator knows the patient only by it
    key_id: str | None = Field(default=None, max_length=32)
    digest: str | None = Field(default=None, max_length=64)  # SHA-256 of the published tokens
    state: str = Field(max_length=16)  # published | withdrawn | opted_out
    updated_at: int = Field(sa_type=_micros())


class PatientConsent(SQLModel, table=True):
    """An active opt-out read from a FHIR Consent (node/linkage/consent.py): which patient, which purpose."""

    __tablename__ = "patient_consent"
    __table_args__ = (sa.Index("ix_patient_consent_patient", "patient_id", "purpose"),)

    consent_id: str = Field(primary_key=True, max_length=64)
    purpose: str = Field(primary_key=True, max_length=16)  # sharing | research
    patient_id: str = Field(max_length=64)
    updated_at: int = Field(sa_type=_micros())


class LocatorAudit(SQLModel, table=True):
    """One record-locator exchange as this node saw it: asked (outbound) or answered (inbound)."""

    __tablename__ = "locator_audit"

    id: int | None = Field(default=None, primary_key=True)
    at: int = Field(sa_type=_micros(), index=True)
    direction: str = Field(max_length=16)  # outbound | inbound
    request_id: str = Field(max_length=64, index=True)
    peer_node: str | None = Field(default=None, max_length=64)
    purpose: str = Field(max_length=32)
    patient_id: str | None = Field(default=None, max_length=64)  # this node's patient, when known
    outcome: str = Field(max_length=16)  # asked | released | refused | no_answer | failed
    reason: str | None = Field(default=None, max_length=64)
    record_count: int | None = None
    token_id: int | None = None  # the local user who asked (outbound), when asked over the API


# Signed jobs (node/trust, docs/trust.md): the signed documents this node has accepted (so that the same one
# under another job id is refused) and the newest revocation list it has verified.


class TrustSeenJob(SQLModel, table=True):
    """A signed job document this node accepted, kept until it falls out of the freshness window."""

    __tablename__ = "trust_seen_job"

    digest: str = Field(primary_key=True, max_length=64)  # hex SHA-256 of the signed body
    job_id: str = Field(max_length=200)
    issued_at: int = Field(sa_type=_micros(), index=True)  # when the researcher signed it


class TrustRevocations(SQLModel, table=True):
    """The newest revocation list this node verified (one row)."""

    __tablename__ = "trust_revocations"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})  # always 1
    serial: int = Field(sa_type=sa.BigInteger())
    document: str = Field(sa_type=sa.Text())  # the signed JSON document
    received_at: int = Field(sa_type=_micros())
