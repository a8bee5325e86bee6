"""The node channel's mailbox: messages kept until acknowledged, replies kept once per message.

A message's life: enqueued -> delivered (sent on the node's connection) -> acknowledged (the node
confirmed it, or replied). A node that reconnects gets its delivered but unacknowledged messages
again (:func:`take_deliverable` with ``redeliver_before``), so a dropped connection loses nothing.
A message whose round deadline or TTL has passed before delivery is dropped with a reason instead
of being sent. A reply is keyed by the message it answers, so a retried reply is recognised as a
duplicate.

The payloads are opaque bytes here (Flower's serde, applied by ``common/flower.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from common.errors import ErrorCode, InputError, NotFoundError
from common.ids import JobId, NodeId
from coordinator.store.db import Db, insert_ignoring_duplicates, now_micros, reading, writing
from coordinator.store.models import ChannelMessage, ChannelReply, Job
from coordinator.store.nodes import require_enrolled

__all__ = [
    "DropReason",
    "Message",
    "Reply",
    "ReplyStatus",
    "StoredReply",
    "ack_messages",
    "drop_job_messages",
    "drop_messages",
    "enqueue_message",
    "fetch_replies",
    "get_message",
    "store_reply",
    "take_deliverable",
]

MESSAGE: sa.Table = ChannelMessage.__table__  # type: ignore[attr-defined]
REPLY: sa.Table = ChannelReply.__table__  # type: ignore[attr-defined]
JOB: sa.Table = Job.__table__  # type: ignore[attr-defined]
MAX_MESSAGE_ID_LENGTH = 128

# The statements of the channel's hot path (every poll, reply and push), built once: reusing a
# statement with parameters skips SQLAlchemy's expression building and cache-key work, which cost more
# than SQLite's own work on these one-row reads and writes.
_JOB_EXISTS = sa.select(JOB.c.id).where(JOB.c.id == sa.bindparam("job_id"))
_UNACKED = (
    sa.select(MESSAGE)
    .where(MESSAGE.c.node_id == sa.bindparam("node_id"), MESSAGE.c.acked_at.is_(None), MESSAGE.c.dropped_at.is_(None))
    .order_by(MESSAGE.c.created_at, MESSAGE.c.id)
)
_MARK_DELIVERED = (
    MESSAGE.update()
    .where(MESSAGE.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(delivered_at=sa.bindparam("at"))
)
# (An UPDATE may not name a bound parameter after a column, hence ``for_node``.)
_ACK = (
    MESSAGE.update()
    .where(
        MESSAGE.c.node_id == sa.bindparam("for_node"),
        MESSAGE.c.id.in_(sa.bindparam("ids", expanding=True)),
        MESSAGE.c.acked_at.is_(None),
        MESSAGE.c.dropped_at.is_(None),
    )
    .values(acked_at=sa.bindparam("at"), delivered_at=sa.func.coalesce(MESSAGE.c.delivered_at, sa.bindparam("at")))
)
_MESSAGE_FOR_REPLY = (
    sa.select(MESSAGE.c.job_id, MESSAGE.c.dropped_at, MESSAGE.c.deadline_at, MESSAGE.c.acked_at, REPLY.c.message_id)
    .outerjoin(REPLY, REPLY.c.message_id == MESSAGE.c.id)
    .where(MESSAGE.c.id == sa.bindparam("message_id"), MESSAGE.c.node_id == sa.bindparam("node_id"))
)
_REPLIES = (
    sa.select(REPLY)
    .where(REPLY.c.message_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(REPLY.c.node_id, REPLY.c.message_id)
)


class DropReason(StrEnum):
    """Why a message was dropped instead of delivered."""

    DEADLINE_PASSED = "deadline_passed"  # its round's deadline passed before delivery
    EXPIRED = "expired"  # its TTL passed before delivery
    CANCELLED = "cancelled"  # its job was cancelled
    NODE_REVOKED = "node_revoked"


class ReplyStatus(StrEnum):
    """What :func:`store_reply` did with a reply."""

    STORED = "stored"
    DUPLICATE = "duplicate"  # the message has a reply already; this one was ignored
    LATE = "late"  # the message was dropped or its deadline had passed; not stored


@dataclass(frozen=True, slots=True)
class StoredReply:
    """What :func:`store_reply` did, and the job of the message answered (None for a job-less one)."""

    status: ReplyStatus
    job_id: JobId | None


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the channel. Times are epoch microseconds."""

    id: str
    node_id: NodeId
    job_id: JobId | None
    round: int | None
    payload: bytes
    created_at: int
    deadline_at: int | None
    expires_at: int | None
    delivered_at: int | None
    acked_at: int | None
    dropped_at: int | None
    drop_reason: DropReason | None


@dataclass(frozen=True, slots=True)
class Reply:
    """A node's reply to one message."""

    message_id: str
    node_id: NodeId
    payload: bytes
    received_at: int


def _message(row: sa.Row[Any]) -> Message:
    values = row._mapping
    return Message(
        id=values["id"],
        node_id=NodeId(values["node_id"]),
        job_id=None if values["job_id"] is None else JobId(values["job_id"]),
        round=values["round"],
        payload=bytes(values["payload"]),
        created_at=int(values["created_at"]),
        deadline_at=values["deadline_at"],
        expires_at=values["expires_at"],
        delivered_at=values["delivered_at"],
        acked_at=values["acked_at"],
        dropped_at=values["dropped_at"],
        drop_reason=None if values["drop_reason"] is None else DropReason(values["drop_reason"]),
    )


def _reply(row: sa.Row[Any]) -> Reply:
    values = row._mapping
    return Reply(
        message_id=values["message_id"],
        node_id=NodeId(values["node_id"]),
        payload=bytes(values["payload"]),
        received_at=int(values["received_at"]),
    )


def _time(now: int | None) -> int:
    return now_micros() if now is None else now


def enqueue_message(
    db: Db,
    *,
    message_id: str,
    node_id: str,
    payload: bytes,
    job_id: str | None = None,
    round: int | None = None,  # the column's name: a Flower round number
    deadline_at: int | None = None,
    expires_at: int | None = None,
    now: int | None = None,
) -> bool:
    """Keep a message for ``node_id`` until it is acknowledged; True when new, False when the id exists.

    Pushing the same message id again (a resumed job re-sending its round) keeps the message as it is,
    except that one dropped without a reply (its deadline passed while the coordinator was down) is
    queued again with the new deadline.
    NotFoundError for an unknown node or job, AccessError (forbidden) for a revoked node.
    """
    if not message_id or len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="message id empty or too long")
    with writing(db) as conn:
        require_enrolled(conn, node_id=node_id)
        if job_id is not None and conn.execute(_JOB_EXISTS, {"job_id": job_id}).first() is None:
            raise NotFoundError(detail="no such job")
        inserted = insert_ignoring_duplicates(
            conn,
            MESSAGE,
            {
                "id": message_id,
                "node_id": node_id,
                "job_id": job_id,
                "round": round,
                "payload": payload,
                "created_at": _time(now),
                "deadline_at": deadline_at,
                "expires_at": expires_at,
            },
        )
        if not inserted:
            answered = sa.select(REPLY.c.message_id).where(REPLY.c.message_id == message_id)
            conn.execute(
                MESSAGE.update()
                .where(MESSAGE.c.id == message_id, MESSAGE.c.dropped_at.is_not(None), ~sa.exists(answered))
                .values(
                    dropped_at=None,
                    drop_reason=None,
                    delivered_at=None,
                    acked_at=None,
                    deadline_at=deadline_at,
                    expires_at=expires_at,
                )
            )
        return inserted


def take_deliverable(
    db: Db, *, node_id: str, redeliver_before: int | None = None, limit: int = 100, now: int | None = None
) -> list[Message]:
    """Take a node's messages to send now, oldest first, at most ``limit``; they are marked delivered.

    Deliverable: never delivered, or (with ``redeliver_before``) delivered before that time and never
    acknowledged — on a reconnect that is every unacknowledged message; otherwise a delivery whose
    acknowledgement is overdue, so it was lost on the way. Messages whose round deadline or TTL has
    passed at ``now`` are dropped (``deadline_passed`` or ``expired``) instead, in the same
    transaction. One look-up and one update in the common case: this runs on every poll.
    """
    at = _time(now)
    with writing(db) as conn:
        rows = conn.execute(_UNACKED, {"node_id": node_id})
        due: list[Message] = []
        overdue: dict[DropReason, list[str]] = {}
        for message in map(_message, rows):
            if message.delivered_at is not None and (
                redeliver_before is None or message.delivered_at >= redeliver_before
            ):
                continue  # on its way; its acknowledgement is not overdue yet
            if message.deadline_at is not None and message.deadline_at <= at:
                overdue.setdefault(DropReason.DEADLINE_PASSED, []).append(message.id)
            elif message.expires_at is not None and message.expires_at <= at:
                overdue.setdefault(DropReason.EXPIRED, []).append(message.id)
            elif len(due) < limit:
                due.append(message)
        for reason, ids in overdue.items():
            conn.execute(MESSAGE.update().where(MESSAGE.c.id.in_(ids)).values(dropped_at=at, drop_reason=str(reason)))
        if due:
            conn.execute(_MARK_DELIVERED, {"ids": [m.id for m in due], "at": at})
    return [dataclasses.replace(message, delivered_at=at) for message in due]


def ack_messages(db: Db, *, node_id: str, message_ids: Collection[str], now: int | None = None) -> int:
    """Note that ``node_id`` confirmed these messages; returns how many were newly acknowledged.

    Ids of other nodes' messages, and already acknowledged or dropped ones, are ignored.
    """
    if not message_ids:
        return 0
    return _ack(db, node_id=node_id, message_ids=list(message_ids), at=_time(now))


def _ack(db: Db, *, node_id: str, message_ids: list[str], at: int) -> int:
    with writing(db) as conn:
        result = conn.execute(_ACK, {"for_node": node_id, "ids": message_ids, "at": at})
    return int(result.rowcount)


def drop_messages(db: Db, *, message_ids: Collection[str], reason: DropReason, now: int | None = None) -> int:
    """Drop these messages unless already acknowledged or dropped; returns how many were dropped."""
    if not message_ids:
        return 0
    with writing(db) as conn:
        result = conn.execute(
            MESSAGE.update()
            .where(MESSAGE.c.id.in_(list(message_ids)), MESSAGE.c.acked_at.is_(None), MESSAGE.c.dropped_at.is_(None))
            .values(dropped_at=_time(now), drop_reason=str(reason))
        )
    return int(result.rowcount)


def drop_job_messages(db: Db, *, job_id: str, reason: DropReason, now: int | None = None) -> int:
    """Drop every unacknowledged message of a job (when it is cancelled or fails); returns how many."""
    with writing(db) as conn:
        result = conn.execute(
            MESSAGE.update()
            .where(MESSAGE.c.job_id == job_id, MESSAGE.c.acked_at.is_(None), MESSAGE.c.dropped_at.is_(None))
            .values(dropped_at=_time(now), drop_reason=str(reason))
        )
    return int(result.rowcount)


def get_message(db: Db, *, message_id: str) -> Message:
    """The message with this id; NotFoundError when there is none."""
    with reading(db) as conn:
        row = conn.execute(sa.select(MESSAGE).where(MESSAGE.c.id == message_id)).first()
    if row is None:
        raise NotFoundError(detail="no such message")
    return _message(row)


def store_reply(db: Db, *, message_id: str, node_id: str, payload: bytes, now: int | None = None) -> StoredReply:
    """Keep ``node_id``'s reply to ``message_id``, which also acknowledges the message.

    DUPLICATE (nothing changes) when the message has a reply already; LATE (not stored) when the
    message was dropped or its deadline passed before ``now``. NotFoundError when there is no such
    message for this node (one answer for both, so a node learns nothing about other nodes' messages).
    """
    at = _time(now)
    with writing(db) as conn:
        found = conn.execute(_MESSAGE_FOR_REPLY, {"message_id": message_id, "node_id": node_id}).first()
        if found is None:
            raise NotFoundError(detail="no such message for this node")
        job_id, dropped_at, deadline_at, acked_at, answered = found
        job = None if job_id is None else JobId(job_id)
        if answered is not None:
            return StoredReply(ReplyStatus.DUPLICATE, job)
        if dropped_at is not None or (deadline_at is not None and deadline_at <= at):
            return StoredReply(ReplyStatus.LATE, job)
        stored = insert_ignoring_duplicates(
            conn, REPLY, {"message_id": message_id, "node_id": node_id, "payload": payload, "received_at": at}
        )
        if not stored:  # a concurrent retry of the same reply got there first
            return StoredReply(ReplyStatus.DUPLICATE, job)
        if acked_at is None:  # usually acknowledged already, by the poll that followed the delivery
            _ack(conn, node_id=node_id, message_ids=[message_id], at=at)
    return StoredReply(ReplyStatus.STORED, job)


def fetch_replies(db: Db, *, message_ids: Collection[str]) -> list[Reply]:
    """The replies received so far to these messages, in node-id order (then message id)."""
    if not message_ids:
        return []
    with reading(db) as conn:
        rows = conn.execute(_REPLIES, {"ids": list(message_ids)})
        return [_reply(row) for row in rows]
