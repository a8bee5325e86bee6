"""The coordinator's tables.

The coordinator holds no clinical data: the registry of nodes and how they enrol, the API tokens of
its own users, the messages of the node channel and their replies, and the jobs with their rounds
and resumable state.

Conventions:

- Times are integer epoch microseconds (UTC), as on the node.
- JSON columns are text written by orjson; bytes columns are opaque to the store (Flower's serde
  for channel payloads, the round driver's own formats for job state).
- The tables live on their own SQLAlchemy metadata (:data:`METADATA`), not on ``SQLModel.metadata``,
  which the node's tables use: a process that loads both (the ``medfed`` CLI, the demo, the tests)
  keeps two separate schemas, and Alembic compares each side with its own tables only.
- Foreign keys are declared (PostgreSQL enforces them). SQLite does not enforce them by default and
  the recipe leaves it so (batch migrations recreate tables); the repository functions check every
  reference themselves, so both databases refuse the same things.
- Names that the node's schema also uses get a ``coordinator_`` prefix (``coordinator_api_token``),
  so one PostgreSQL database can hold a node and a coordinator side by side.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

__all__ = [
    "METADATA",
    "ApiToken",
    "AuditReceipt",
    "ChannelMessage",
    "ChannelReply",
    "CoordinatorTable",
    "EnrolmentCode",
    "IndexAudit",
    "IndexRecord",
    "IndexSuppression",
    "IndexToken",
    "IndexVariant",
    "Job",
    "JobCheckpoint",
    "JobNode",
    "JobRound",
    "JobSignature",
    "JobState",
    "Node",
    "NodeKeyCertificate",
    "RelayMessage",
    "RequestNonce",
    "Researcher",
    "ResearcherMembership",
    "RevocationList",
]

_REGISTRY = registry()


class CoordinatorTable(SQLModel, registry=_REGISTRY):
    """Base of the coordinator's tables: they register on :data:`METADATA`, not on SQLModel's."""


METADATA: sa.MetaData = _REGISTRY.metadata


def _micros() -> sa.BigInteger:
    return sa.BigInteger()


class Node(CoordinatorTable, table=True):
    """An enrolled (or revoked) node: its identity keys and what it last said about itself."""

    __tablename__ = "node"

    id: str = Field(primary_key=True, max_length=64)  # a slug of the node's name
    flower_node_id: int = Field(sa_type=sa.BigInteger(), unique=True)  # the id Flower's Grid uses
    display_name: str = Field(max_length=200)
    public_key: str = Field(max_length=64)  # Ed25519, base64url
    seal_public_key: str | None = Field(default=None, max_length=64)  # X25519, base64url
    status: str = Field(max_length=16)  # enrolled | revoked
    enrolled_at: int = Field(sa_type=_micros())
    last_seen_at: int | None = Field(default=None, sa_type=_micros())
    version: str | None = Field(default=None, max_length=64)
    capabilities: str = Field(default="{}")  # a JSON object
    clock_skew_ms: int | None = None


class EnrolmentCode(CoordinatorTable, table=True):
    """A one-time code that lets one node enrol under one name; only the secret's SHA-256 is kept."""

    __tablename__ = "enrolment_code"

    id: int | None = Field(default=None, primary_key=True)
    node_name: str = Field(max_length=200)
    code_hash: str = Field(max_length=64, unique=True)
    created_at: int = Field(sa_type=_micros())
    expires_at: int = Field(sa_type=_micros())
    used_at: int | None = Field(default=None, sa_type=_micros())


class ApiToken(CoordinatorTable, table=True):
    """A bearer token of a coordinator user (admin, researcher, observer), stored as its SHA-256."""

    __tablename__ = "coordinator_api_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=32)
    label: str = Field(default="", max_length=200)
    created_at: int = Field(sa_type=_micros())
    revoked_at: int | None = Field(default=None, sa_type=_micros())


class RequestNonce(CoordinatorTable, table=True):
    """A nonce seen on a signed node request, kept for the replay window."""

    __tablename__ = "request_nonce"

    key_id: str = Field(primary_key=True, max_length=128)
    nonce: str = Field(primary_key=True, max_length=128)
    seen_at: int = Field(sa_type=_micros(), index=True)


class ChannelMessage(CoordinatorTable, table=True):
    """A message for one node, kept until the node acknowledges it or it is dropped."""

    __tablename__ = "channel_message"
    __table_args__ = (
        # The channel's hot query: a node's unacknowledged, not dropped messages, oldest first.
        sa.Index("ix_channel_message_unacked", "node_id", "acked_at", "dropped_at", "created_at"),
        sa.Index("ix_channel_message_job_round", "job_id", "round"),
    )

    id: str = Field(primary_key=True, max_length=128)  # the message id
    node_id: str = Field(max_length=64, foreign_key="node.id")
    job_id: str | None = Field(default=None, max_length=64, foreign_key="job.id")
    round: int | None = None
    payload: bytes = Field(sa_type=sa.LargeBinary())
    created_at: int = Field(sa_type=_micros())
    deadline_at: int | None = Field(default=None, sa_type=_micros())  # the round's deadline
    expires_at: int | None = Field(default=None, sa_type=_micros())  # a TTL, for messages without a round
    delivered_at: int | None = Field(default=None, sa_type=_micros())
    acked_at: int | None = Field(default=None, sa_type=_micros())
    dropped_at: int | None = Field(default=None, sa_type=_micros())
    drop_reason: str | None = Field(default=None, max_length=32)


class ChannelReply(CoordinatorTable, table=True):
    """A node's reply to one message; the message id as key makes a second reply a duplicate."""

    __tablename__ = "channel_reply"

    message_id: str = Field(primary_key=True, max_length=128, foreign_key="channel_message.id")
    node_id: str = Field(max_length=64, foreign_key="node.id")
    payload: bytes = Field(sa_type=sa.LargeBinary())
    received_at: int = Field(sa_type=_micros())


class Job(CoordinatorTable, table=True):
    """A federated job: its signed spec, who submitted it, where it stands and its result."""

    __tablename__ = "job"
    __table_args__ = (sa.Index("ix_job_status_created", "status", "created_at"),)

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=64)
    spec: str  # a JSON object
    submitter: str = Field(max_length=200)
    status: str = Field(max_length=16)  # submitted | running | succeeded | failed | cancelled
    created_at: int = Field(sa_type=_micros(), index=True)
    started_at: int | None = Field(default=None, sa_type=_micros())
    finished_at: int | None = Field(default=None, sa_type=_micros())
    error: str | None = Field(default=None, max_length=500)
    result: str | None = None  # a JSON object
    seed: int = Field(sa_type=sa.BigInteger())


class JobNode(CoordinatorTable, table=True):
    """One node's part in one job."""

    __tablename__ = "job_node"
    __table_args__ = (sa.Index("ix_job_node_node", "node_id", "job_id"),)

    job_id: str = Field(primary_key=True, max_length=64, foreign_key="job.id")
    node_id: str = Field(primary_key=True, max_length=64, foreign_key="node.id")
    status: str = Field(max_length=16)  # selected | running | done | failed | refused | dropped
    detail: str | None = Field(default=None, max_length=500)


class JobRound(CoordinatorTable, table=True):
    """One round of one job, with per-node timings."""

    __tablename__ = "job_round"

    job_id: str = Field(primary_key=True, max_length=64, foreign_key="job.id")
    round: int = Field(primary_key=True)
    started_at: int = Field(sa_type=_micros())
    deadline_at: int | None = Field(default=None, sa_type=_micros())
    finished_at: int | None = Field(default=None, sa_type=_micros())
    status: str = Field(max_length=16)  # running | completed | failed
    replies: int = 0
    per_node: str = Field(default="{}")  # a JSON object: node id -> timings and outcome


class JobState(CoordinatorTable, table=True):
    """What a job needs to resume bit for bit: the arrays, strategy state and RNG state after a round."""

    __tablename__ = "job_state"

    job_id: str = Field(primary_key=True, max_length=64, foreign_key="job.id")
    round: int
    arrays: bytes = Field(sa_type=sa.LargeBinary())
    strategy_state: bytes = Field(sa_type=sa.LargeBinary())
    rng_state: bytes = Field(sa_type=sa.LargeBinary())
    updated_at: int = Field(sa_type=_micros())


class JobCheckpoint(CoordinatorTable, table=True):
    """A job's global model after one round, kept for export (``coordinator/store/checkpoints.py``)."""

    __tablename__ = "job_checkpoint"

    job_id: str = Field(primary_key=True, max_length=64, foreign_key="job.id")
    round: int = Field(primary_key=True)
    arrays: bytes = Field(sa_type=sa.LargeBinary())
    saved_at: int = Field(sa_type=_micros())


# The pseudonymous patient index (coordinator/store/index.py) and the record locator's relay and key
# certificates (coordinator/store/relay.py). Tokens are stored re-keyed under the coordinator's own
# secret, as 32 raw bytes; a record is known only by the opaque reference its node chose.


class IndexVariant(CoordinatorTable, table=True):
    """A token variant of the linkage recipe, numbered so that each token row stores two bytes, not its name."""

    __tablename__ = "index_variant"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    tier: str = Field(max_length=8)  # strong | weak (the recipe's, never the publishing node's word)


class IndexRecord(CoordinatorTable, table=True):
    """One published record: its node, the node's opaque reference, and the person cluster it is in."""

    __tablename__ = "index_record"
    __table_args__ = (
        sa.UniqueConstraint("node_id", "record_ref", name="uq_index_record_ref"),
        sa.Index("ix_index_record_cluster", "cluster_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"))
    node_id: str = Field(max_length=64, foreign_key="node.id")
    record_ref: str = Field(max_length=64)
    cluster_id: int = Field(sa_type=sa.BigInteger())  # the smallest record id of its cluster
    key_id: str = Field(max_length=32)  # the linkage key id the tokens were made under
    updated_at: int = Field(sa_type=_micros())


class IndexToken(CoordinatorTable, table=True):
    """One re-keyed token of one record (the lookup's hot table: found by the token)."""

    __tablename__ = "index_token"
    __table_args__ = (
        # SQLite: the WITHOUT ROWID table is its key's B-tree, so a lookup seeks the table itself.
        # PostgreSQL (migration 0005): the key is (record_id, token) and lookups take the hash index,
        # a third of a B-tree's size; on SQLite that index is empty (``WHERE 0``: no hash indexes there).
        sa.PrimaryKeyConstraint("token", "record_id"),
        sa.Index("ix_index_token_record", "record_id"),
        sa.Index("ix_index_token_hash", "token", postgresql_using="hash", sqlite_where=sa.false()),
        {"sqlite_with_rowid": False},
    )

    token: bytes = Field(sa_type=sa.LargeBinary(32), primary_key=True)
    record_id: int = Field(sa_type=sa.BigInteger(), primary_key=True, foreign_key="index_record.id")
    variant_id: int = Field(sa_type=sa.SmallInteger())


class IndexSuppression(CoordinatorTable, table=True):
    """A strong token of a record whose patient opted out: records that share it are kept out of the index."""

    __tablename__ = "index_suppression"
    __table_args__ = (sa.Index("ix_index_suppression_ref", "node_id", "record_ref"),)

    token: bytes = Field(sa_type=sa.LargeBinary(32), primary_key=True)
    node_id: str = Field(max_length=64, primary_key=True, foreign_key="node.id")
    record_ref: str = Field(max_length=64, primary_key=True)
    created_at: int = Field(sa_type=_micros())


class IndexAudit(CoordinatorTable, table=True):
    """One index call: which node, what it did, how many records or hits — never a token or a reference."""

    __tablename__ = "index_audit"
    __table_args__ = (sa.Index("ix_index_audit_node_at", "node_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: int = Field(sa_type=_micros())
    node_id: str = Field(max_length=64)
    action: str = Field(max_length=16)  # publish | withdraw | lookup
    items: int  # records published or withdrawn, tokens looked up
    hits: int | None = None  # records returned by a lookup
    status: int


class RelayMessage(CoordinatorTable, table=True):
    """A sealed message between two nodes, held only until the receiver acknowledges it (then deleted)."""

    __tablename__ = "relay_message"
    __table_args__ = (sa.Index("ix_relay_message_inbox", "to_node", "kind", "correlation", "created_at"),)

    id: str = Field(primary_key=True, max_length=64)
    from_node: str = Field(max_length=64, foreign_key="node.id")
    to_node: str = Field(max_length=64, foreign_key="node.id")
    kind: str = Field(max_length=16)  # request | reply
    correlation: str = Field(max_length=64)  # the request id, chosen by the asking node
    payload: bytes = Field(sa_type=sa.LargeBinary())
    created_at: int = Field(sa_type=_micros())
    expires_at: int = Field(sa_type=_micros(), index=True)
    delivered_at: int | None = Field(default=None, sa_type=_micros())


class NodeKeyCertificate(CoordinatorTable, table=True):
    """The network-admin key's signature over a node's id, Ed25519 key and X25519 sealing key."""

    __tablename__ = "node_key_certificate"

    node_id: str = Field(primary_key=True, max_length=64, foreign_key="node.id")
    public_key: str = Field(max_length=64)
    seal_public_key: str = Field(max_length=64)
    issued_at: int = Field(sa_type=_micros())
    signature: str = Field(max_length=128)  # base64url Ed25519 signature


# Nodes' audit chain-head receipts (coordinator/store/receipts.py): kept outside the node, so a node's
# truncated or rolled-back audit log can be shown to be so.


class AuditReceipt(CoordinatorTable, table=True):
    """The newest signed chain-head receipt of one node, and how often its receipts went backwards."""

    __tablename__ = "audit_receipt"

    node_id: str = Field(primary_key=True, max_length=64, foreign_key="node.id")
    seq: int = Field(sa_type=sa.BigInteger())
    hash: str = Field(max_length=64)
    node_time: int = Field(sa_type=_micros())
    received_at: int = Field(sa_type=_micros())
    receipt: str = Field(sa_type=sa.Text())  # the signed JSON, exactly as the node sent it
    conflicts: int = 0  # receipts with a lower seq, or another hash at the same seq (rollback, rewrite)
    last_conflict_at: int | None = Field(default=None, sa_type=_micros())


# Researchers and signed jobs (coordinator/store/researchers.py, docs/trust.md): the network-admin key signs
# each researcher's membership certificate and every revocation list; a job keeps the document its
# researcher signed, which nodes verify for themselves.


class Researcher(CoordinatorTable, table=True):
    """A registered researcher: their name, Ed25519 key and the API token bound to them."""

    __tablename__ = "researcher"

    name: str = Field(primary_key=True, max_length=64)
    public_key: str = Field(max_length=64)  # base64url
    key_id: str = Field(max_length=80, unique=True)  # sha256:<hex> of the key, as signed jobs name it
    token_id: int = Field(foreign_key="coordinator_api_token.id", index=True)
    created_at: int = Field(sa_type=_micros())
    revoked_at: int | None = Field(default=None, sa_type=_micros())


class ResearcherMembership(CoordinatorTable, table=True):
    """A membership certificate issued to a researcher (the newest unexpired one is sent with their jobs)."""

    __tablename__ = "researcher_membership"

    serial: int | None = Field(default=None, primary_key=True)
    researcher: str = Field(max_length=64, foreign_key="researcher.name", index=True)
    certificate: str = Field(sa_type=sa.Text())  # the signed JSON document
    issued_at: int = Field(sa_type=_micros())
    expires_at: int = Field(sa_type=_micros())


class RevocationList(CoordinatorTable, table=True):
    """One signed revocation list; the one with the highest serial is the network's current list."""

    __tablename__ = "researcher_revocation_list"

    serial: int = Field(primary_key=True, sa_type=sa.BigInteger(), sa_column_kwargs={"autoincrement": False})
    document: str = Field(sa_type=sa.Text())  # the signed JSON document
    created_at: int = Field(sa_type=_micros())


class JobSignature(CoordinatorTable, table=True):
    """The signed document a job was submitted with (a signed document is accepted once: its digest is unique)."""

    __tablename__ = "job_signature"

    job_id: str = Field(primary_key=True, max_length=64, foreign_key="job.id")
    researcher: str = Field(max_length=64, foreign_key="researcher.name", index=True)
    digest: str = Field(max_length=64, unique=True)  # hex SHA-256 of the signed body
    document: str = Field(sa_type=sa.Text())  # the signed JSON document, as submitted
