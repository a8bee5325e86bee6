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
    "ChannelMessage",
    "ChannelReply",
    "CoordinatorTable",
    "EnrolmentCode",
    "Job",
    "JobNode",
    "JobRound",
    "JobState",
    "Node",
    "RequestNonce",
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
        # The channel's hot query: a node's undelivered, not dropped messages, oldest first.
        sa.Index("ix_channel_message_pending", "node_id", "delivered_at", "dropped_at", "created_at"),
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
