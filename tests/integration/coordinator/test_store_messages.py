"""The channel mailbox: messages kept until acknowledged, expired ones dropped, replies kept once."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from common.errors import AccessError, NotFoundError
from coordinator.store.db import now_micros
from coordinator.store.jobs import create_job
from coordinator.store.messages import (
    DropReason,
    Message,
    ReplyStatus,
    ack_messages,
    drop_job_messages,
    drop_messages,
    enqueue_message,
    fetch_replies,
    get_message,
    store_reply,
    take_deliverable,
)
from coordinator.store.nodes import register_node, revoke_node
from tests.integration.coordinator.conftest import new_public_key

SECOND = 1_000_000


@pytest.fixture
def nodes(engine: sa.Engine) -> tuple[str, str]:
    """Two enrolled nodes."""
    a = register_node(engine, name="Site A", public_key=new_public_key())
    b = register_node(engine, name="Site B", public_key=new_public_key())
    return a.id, b.id


def _ids(messages: list[Message]) -> list[str]:
    return [m.id for m in messages]


def test_undelivered_messages_are_taken_oldest_first_per_node(engine: sa.Engine, nodes: tuple[str, str]) -> None:
    """take_deliverable takes only that node's pending messages, by creation time, up to the limit, once."""
    a, b = nodes
    for n, created in enumerate([30, 10, 20]):
        assert enqueue_message(engine, message_id=f"a{n}", node_id=a, payload=b"x%d" % n, now=created * SECOND)
    enqueue_message(engine, message_id="b0", node_id=b, payload=b"y", now=SECOND)
    taken = take_deliverable(engine, node_id=a, limit=2, now=40 * SECOND)
    assert _ids(taken) == ["a1", "a2"]
    assert {m.delivered_at for m in taken} == {40 * SECOND}
    assert _ids(take_deliverable(engine, node_id=a, now=41 * SECOND)) == ["a0"]
    assert take_deliverable(engine, node_id=a, now=42 * SECOND) == []
    fetched = take_deliverable(engine, node_id=b, now=40 * SECOND)
    assert [(m.id, m.payload, m.node_id) for m in fetched] == [("b0", b"y", b)]


def test_enqueueing_the_same_id_again_changes_nothing(engine: sa.Engine, nodes: tuple[str, str]) -> None:
    """A second enqueue of one message id reports False and keeps the first payload."""
    a, _ = nodes
    assert enqueue_message(engine, message_id="m", node_id=a, payload=b"first") is True
    assert enqueue_message(engine, message_id="m", node_id=a, payload=b"second") is False
    assert get_message(engine, message_id="m").payload == b"first"


def test_messages_for_unknown_or_revoked_nodes_or_jobs_are_refused(engine: sa.Engine, nodes: tuple[str, str]) -> None:
    """Unknown nodes and jobs are not found; revoked nodes are forbidden; nothing is stored."""
    a, b = nodes
    with pytest.raises(NotFoundError):
        enqueue_message(engine, message_id="m1", node_id="nobody", payload=b"")
    with pytest.raises(NotFoundError):
        enqueue_message(engine, message_id="m2", node_id=a, payload=b"", job_id="no-such-job")
    revoke_node(engine, node_id=b)
    with pytest.raises(AccessError):
        enqueue_message(engine, message_id="m3", node_id=b, payload=b"")
    for message_id in ("m1", "m2", "m3"):
        with pytest.raises(NotFoundError):
            get_message(engine, message_id=message_id)


def test_messages_past_their_deadline_or_ttl_are_dropped_not_delivered(
    engine: sa.Engine, nodes: tuple[str, str]
) -> None:
    """At delivery time, a passed round deadline or TTL drops the message with its reason."""
    a, _ = nodes
    job = create_job(engine, kind="fedavg", spec={}, submitter="r", seed=1, node_ids=[a])
    enqueue_message(
        engine, message_id="round", node_id=a, payload=b"", job_id=job.id, round=1, deadline_at=10 * SECOND, now=SECOND
    )
    enqueue_message(engine, message_id="ttl", node_id=a, payload=b"", expires_at=20 * SECOND, now=SECOND)
    enqueue_message(engine, message_id="live", node_id=a, payload=b"", expires_at=99 * SECOND, now=SECOND)
    assert _ids(take_deliverable(engine, node_id=a, now=25 * SECOND)) == ["live"]
    round_message = get_message(engine, message_id="round")
    assert (round_message.dropped_at, round_message.drop_reason) == (25 * SECOND, DropReason.DEADLINE_PASSED)
    assert (round_message.job_id, round_message.round) == (job.id, 1)
    assert get_message(engine, message_id="ttl").drop_reason is DropReason.EXPIRED
    assert get_message(engine, message_id="live").drop_reason is None


def test_delivered_but_unacknowledged_messages_come_back_after_a_reconnect(
    engine: sa.Engine, nodes: tuple[str, str]
) -> None:
    """Delivered messages leave the queue; redelivery takes those not acknowledged, oldest first."""
    a, b = nodes
    for n in range(3):
        enqueue_message(engine, message_id=f"m{n}", node_id=a, payload=b"", now=(n + 1) * SECOND)
    assert _ids(take_deliverable(engine, node_id=a, now=5 * SECOND)) == ["m0", "m1", "m2"]
    assert take_deliverable(engine, node_id=a, now=6 * SECOND) == []
    assert ack_messages(engine, node_id=b, message_ids=["m1"]) == 0  # not b's message
    assert ack_messages(engine, node_id=a, message_ids=["m1"], now=6 * SECOND) == 1
    assert ack_messages(engine, node_id=a, message_ids=["m1"], now=7 * SECOND) == 0
    assert get_message(engine, message_id="m1").acked_at == 6 * SECOND
    # A delivery newer than the cut-off is still on its way; older ones (or all, on a reconnect) come again.
    assert take_deliverable(engine, node_id=a, redeliver_before=5 * SECOND, now=8 * SECOND) == []
    assert _ids(take_deliverable(engine, node_id=a, redeliver_before=9 * SECOND, now=9 * SECOND)) == ["m0", "m2"]


def test_a_reply_is_stored_once_and_acknowledges_its_message(engine: sa.Engine, nodes: tuple[str, str]) -> None:
    """The first reply is stored and acks the message; a second is a duplicate and changes nothing."""
    a, b = nodes
    enqueue_message(engine, message_id="qa", node_id=a, payload=b"q", now=SECOND)
    enqueue_message(engine, message_id="qb", node_id=b, payload=b"q", now=SECOND)
    take_deliverable(engine, node_id=a, now=2 * SECOND)
    assert (
        store_reply(engine, message_id="qa", node_id=a, payload=b"first", now=3 * SECOND).status is ReplyStatus.STORED
    )
    assert (
        store_reply(engine, message_id="qa", node_id=a, payload=b"again", now=4 * SECOND).status
        is ReplyStatus.DUPLICATE
    )
    assert store_reply(engine, message_id="qb", node_id=b, payload=b"bee", now=5 * SECOND).status is ReplyStatus.STORED
    replies = fetch_replies(engine, message_ids=["qb", "qa", "unknown"])
    assert [(r.message_id, r.node_id, r.payload, r.received_at) for r in replies] == [
        ("qa", a, b"first", 3 * SECOND),
        ("qb", b, b"bee", 5 * SECOND),
    ]
    acked = get_message(engine, message_id="qb")
    assert (acked.delivered_at, acked.acked_at) == (5 * SECOND, 5 * SECOND)
    assert take_deliverable(engine, node_id=a, redeliver_before=9 * SECOND, now=9 * SECOND) == []
    assert fetch_replies(engine, message_ids=[]) == []


def test_replies_to_other_nodes_messages_are_not_found(engine: sa.Engine, nodes: tuple[str, str]) -> None:
    """A node cannot reply to another node's message, nor to one that does not exist."""
    a, b = nodes
    enqueue_message(engine, message_id="qa", node_id=a, payload=b"q")
    for message_id in ("qa", "nothing"):
        with pytest.raises(NotFoundError):
            store_reply(engine, message_id=message_id, node_id=b, payload=b"forged")
    assert fetch_replies(engine, message_ids=["qa"]) == []


def test_late_replies_are_not_stored(engine: sa.Engine, nodes: tuple[str, str]) -> None:
    """Replies at or after the round deadline, or to dropped messages, are LATE and not kept."""
    a, _ = nodes
    enqueue_message(engine, message_id="r1", node_id=a, payload=b"", deadline_at=10 * SECOND, now=SECOND)
    enqueue_message(engine, message_id="r2", node_id=a, payload=b"", now=SECOND)
    assert store_reply(engine, message_id="r1", node_id=a, payload=b"", now=10 * SECOND).status is ReplyStatus.LATE
    assert drop_messages(engine, message_ids=["r2"], reason=DropReason.CANCELLED, now=2 * SECOND) == 1
    assert store_reply(engine, message_id="r2", node_id=a, payload=b"", now=3 * SECOND).status is ReplyStatus.LATE
    assert fetch_replies(engine, message_ids=["r1", "r2"]) == []


def test_cancelling_a_job_drops_its_unacknowledged_messages(engine: sa.Engine, nodes: tuple[str, str]) -> None:
    """drop_job_messages drops the job's pending and delivered messages and leaves acknowledged ones."""
    a, b = nodes
    job = create_job(engine, kind="count", spec={}, submitter="r", seed=0, node_ids=[a, b])
    enqueue_message(engine, message_id="pending", node_id=a, payload=b"", job_id=job.id, round=1)
    enqueue_message(engine, message_id="delivered", node_id=b, payload=b"", job_id=job.id, round=1)
    enqueue_message(engine, message_id="answered", node_id=b, payload=b"", job_id=job.id, round=1)
    enqueue_message(engine, message_id="other", node_id=a, payload=b"")
    assert _ids(take_deliverable(engine, node_id=b)) == ["delivered", "answered"]
    store_reply(engine, message_id="answered", node_id=b, payload=b"")
    assert drop_job_messages(engine, job_id=job.id, reason=DropReason.CANCELLED) == 2
    assert get_message(engine, message_id="delivered").drop_reason is DropReason.CANCELLED
    assert get_message(engine, message_id="answered").dropped_at is None
    assert _ids(take_deliverable(engine, node_id=a)) == ["other"]
    assert take_deliverable(engine, node_id=b, redeliver_before=now_micros() + 1) == []


def test_re_enqueueing_a_dropped_unanswered_message_queues_it_again(engine: sa.Engine, nodes: tuple[str, str]) -> None:
    """A resumed round re-sending a message dropped without a reply revives it with the new deadline."""
    a, _ = nodes
    enqueue_message(engine, message_id="d1", node_id=a, payload=b"x", deadline_at=10 * SECOND, now=SECOND)
    enqueue_message(engine, message_id="d2", node_id=a, payload=b"x", deadline_at=10 * SECOND, now=SECOND)
    assert (
        store_reply(engine, message_id="d2", node_id=a, payload=b"answer", now=2 * SECOND).status is ReplyStatus.STORED
    )
    assert take_deliverable(engine, node_id=a, now=20 * SECOND) == []  # d1 dropped: deadline passed
    assert get_message(engine, message_id="d1").drop_reason is DropReason.DEADLINE_PASSED
    assert enqueue_message(engine, message_id="d1", node_id=a, payload=b"x", deadline_at=90 * SECOND) is False
    assert enqueue_message(engine, message_id="d2", node_id=a, payload=b"x", deadline_at=90 * SECOND) is False
    assert _ids(take_deliverable(engine, node_id=a, now=30 * SECOND)) == ["d1"]
    assert get_message(engine, message_id="d1").deadline_at == 90 * SECOND
    assert [r.payload for r in fetch_replies(engine, message_ids=["d2"])] == [b"answer"]
