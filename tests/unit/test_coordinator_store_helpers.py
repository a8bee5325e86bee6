"""Pure helpers of the coordinator's store: node ids from names, online state, enrolment code format."""

from __future__ import annotations

import pytest

from common.errors import InputError
from common.ids import NodeId
from coordinator.store.enrolment import CODE_PREFIX, EnrolmentCodeError, RefusalReason, format_code, parse_code
from coordinator.store.nodes import NodeRecord, NodeStatus, node_slug


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("St Mary's Hospital", "st-mary-s-hospital"),
        ("  Hôpital Saint-Éloi  ", "hopital-saint-eloi"),
        ("UMC_Utrecht/2", "umc-utrecht-2"),
        ("site-a", "site-a"),
        ("A" * 100, "a" * 64),
        ("a" * 63 + " b", "a" * 63),
    ],
)
def test_node_ids_are_ascii_slugs_of_names(name: str, slug: str) -> None:
    """A node id is the name in lower-case ASCII letters and digits joined by single hyphens, at most 64 long."""
    assert node_slug(name) == slug


@pytest.mark.parametrize("name", ["", "   ", "---", "日本", "x" * 201, "bad\nname"])
def test_names_without_an_id_are_refused(name: str) -> None:
    """Empty, symbol-only, non-Latin-only, overlong and control-character names make no id."""
    with pytest.raises(InputError):
        node_slug(name)


def _node(status: NodeStatus, last_seen_at: int | None) -> NodeRecord:
    return NodeRecord(
        id=NodeId("n"),
        flower_node_id=2,
        display_name="n",
        public_key="k",
        seal_public_key=None,
        status=status,
        enrolled_at=0,
        last_seen_at=last_seen_at,
        version=None,
        capabilities={},
        clock_skew_ms=None,
    )


def test_online_is_enrolled_and_recently_seen() -> None:
    """Online holds up to and including offline_after_s after the last heartbeat, and only for enrolled nodes."""
    assert _node(NodeStatus.ENROLLED, 0).is_online(now=30_000_000, offline_after_s=30)
    assert not _node(NodeStatus.ENROLLED, 0).is_online(now=30_000_001, offline_after_s=30)
    assert not _node(NodeStatus.ENROLLED, None).is_online(now=0, offline_after_s=30)
    assert not _node(NodeStatus.REVOKED, 0).is_online(now=0, offline_after_s=30)


def test_code_format_round_trips() -> None:
    """A formatted code parses back to its secret; surrounding whitespace is ignored."""
    assert format_code("s3cret") == CODE_PREFIX + "s3cret"
    assert parse_code(f"  {CODE_PREFIX}s3cret\n") == "s3cret"
    with pytest.raises(EnrolmentCodeError) as caught:
        parse_code("s3cret")
    assert caught.value.reason is RefusalReason.MALFORMED
