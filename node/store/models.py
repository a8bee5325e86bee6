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
    "FederationReply",
    "IngestReport",
    "Resource",
    "ResourceHistory",
    "SearchDate",
    "SearchReference",
    "SearchString",
    "SearchToken",
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
