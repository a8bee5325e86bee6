"""Revoked nodes on the revocation list: the document's second version, the node's book, the secure-round check."""

from __future__ import annotations

import orjson
import pytest
from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from sqlalchemy.engine import Engine

from common.analytics.task import RECORD, REQUEST_KEY, to_wire
from common.crypto import SigningKey
from common.errors import AccessError, ErrorCode
from common.privacy.secure_updates import SECAGG_NODES
from common.trust import RevokedNode, sign_document, sign_revocations, verify_revocations
from common.trust.revocations import REVOCATIONS_TYPE, REVOCATIONS_TYPE_V1
from node.federation.participants import round_participants
from node.trust import RevocationBook

ADMIN = SigningKey.generate()
NODE_KEY = SigningKey.generate().public_key().fingerprint()
NOW = 1_790_000_000
REVOKED = RevokedNode(node="st-elsewhere", key=NODE_KEY, flower_node_id=8_123_456_789)


def _code(call: object) -> ErrorCode:
    assert callable(call)
    with pytest.raises(AccessError) as refused:
        call()
    return refused.value.code


def test_a_list_names_revoked_nodes_by_id_key_and_flower_id_and_needs_the_admin_key() -> None:
    """A node on the list is revoked under any of its three names, after a JSON round trip; others are not."""
    document = sign_revocations(ADMIN, serial=4, issued_at=NOW, researchers=["mallory"], keys=[], nodes=[REVOKED])
    assert document["body"]["type"] == REVOCATIONS_TYPE
    revocations = verify_revocations(orjson.loads(orjson.dumps(document)), ADMIN.public_key())
    assert revocations.nodes == frozenset({REVOKED})
    assert revocations.node_revoked(node_id="st-elsewhere")
    assert revocations.node_revoked(key_id=NODE_KEY)
    assert revocations.node_revoked(flower_node_id=8_123_456_789)
    assert not revocations.node_revoked(node_id="st-here", key_id="sha256:other", flower_node_id=5)
    assert not revocations.node_revoked()
    assert revocations.revoked(researcher="mallory", key_id="sha256:x")
    assert _code(lambda: verify_revocations(document, SigningKey.generate().public_key())) is ErrorCode.UNAUTHENTICATED


def test_a_first_version_list_without_nodes_still_verifies_and_revokes_no_node() -> None:
    """A ``medfed.revocations.v1`` list (researchers and keys only) that a node kept before nodes were listed
    verifies as it did, and names no node."""
    body = {"serial": 2, "issued_at": NOW, "researchers": ["mallory"], "keys": [NODE_KEY]}
    document = sign_document(ADMIN, REVOCATIONS_TYPE_V1, body)
    revocations = verify_revocations(document, ADMIN.public_key())
    assert (revocations.serial, revocations.researchers, revocations.nodes) == (2, frozenset({"mallory"}), frozenset())
    assert not revocations.node_revoked(node_id="st-elsewhere", key_id=NODE_KEY)


def test_the_version_tag_is_signed_and_each_version_has_its_own_keys() -> None:
    """A v2 list relabelled v1 no longer verifies; a v1 body with nodes, a v2 body without them and malformed node
    entries are refused."""
    document = sign_revocations(ADMIN, serial=3, issued_at=NOW, researchers=[], keys=[], nodes=[REVOKED])
    relabelled = {"body": {**document["body"], "type": REVOCATIONS_TYPE_V1}, "signature": document["signature"]}
    assert _code(lambda: verify_revocations(relabelled, ADMIN.public_key())) is ErrorCode.UNAUTHENTICATED
    base = {"serial": 3, "issued_at": NOW, "researchers": [], "keys": []}
    bad = [
        sign_document(ADMIN, REVOCATIONS_TYPE_V1, {**base, "nodes": []}),
        sign_document(ADMIN, REVOCATIONS_TYPE, base),
        sign_document(ADMIN, REVOCATIONS_TYPE, {**base, "nodes": [{"node": "x", "key": "y"}]}),
        sign_document(ADMIN, REVOCATIONS_TYPE, {**base, "nodes": [{"node": "x", "key": "y", "flower_node_id": -1}]}),
        sign_document(ADMIN, REVOCATIONS_TYPE, {**base, "nodes": ["x"]}),
        sign_document(ADMIN, "medfed.revocations.v3", {**base, "nodes": []}),
    ]
    for document in bad:
        assert _code(lambda d=document: verify_revocations(d, ADMIN.public_key())) is ErrorCode.UNAUTHENTICATED


def test_a_book_reads_a_list_another_book_of_the_same_database_kept(engine: Engine) -> None:
    """The channel's book keeps the list it takes; the locator's book of the same database sees it on its next
    fresh read (not before), and an older list changes neither."""
    channel, locator = RevocationBook(engine, ADMIN.public_key()), RevocationBook(engine, ADMIN.public_key())
    listed = sign_revocations(ADMIN, serial=5, issued_at=NOW, researchers=[], keys=[], nodes=[REVOKED])

    assert channel.accept(listed)

    assert channel.node_revoked(flower_node_id=REVOKED.flower_node_id)
    assert not locator.node_revoked(node_id=REVOKED.node)  # its memory: the list came after it loaded
    assert locator.node_revoked(node_id=REVOKED.node, fresh=True)
    assert locator.serial == 5
    older = sign_revocations(ADMIN, serial=4, issued_at=NOW, researchers=[], keys=[])
    assert not channel.accept(older)
    assert RevocationBook(engine, ADMIN.public_key()).node_revoked(key_id=NODE_KEY)  # a restart keeps it


def _message(records: dict[str, ConfigRecord], kind: str = MessageType.QUERY) -> Message:
    content = RecordDict()
    for name, record in records.items():
        content[name] = record
    return Message(content, dst_node_id=7, message_type=kind)


def test_the_participants_of_a_secure_round_are_read_as_the_apps_read_them() -> None:
    """An analysis mask step names its participants (and their keys) as Flower ids in text; a secure learning
    round names them in ``secagg-nodes``; the key step, a plain query and a setup round name none."""
    mask = {
        "secure_aggregation": "mask",
        "participants": ["11", "8123456789"],
        "public_keys": {"11": "k", "8123456789": "k", "st-elsewhere": "k"},
    }
    found = round_participants(_message({RECORD: ConfigRecord({REQUEST_KEY: to_wire(mask)})}))
    assert found is not None
    assert found.flower_node_ids == {11, 8_123_456_789}
    assert found.names == {"st-elsewhere"}
    keys_step = _message({RECORD: ConfigRecord({REQUEST_KEY: to_wire({"secure_aggregation": "keys"})})})
    assert round_participants(keys_step) is None
    train = _message({"config": ConfigRecord({SECAGG_NODES: [3, 8_123_456_789]})}, MessageType.TRAIN)
    learning = round_participants(train)
    assert learning is not None
    assert learning.flower_node_ids == {3, 8_123_456_789}
    assert round_participants(_message({"config": ConfigRecord({"secagg-setup": True})}, MessageType.TRAIN)) is None
    assert round_participants(_message({RECORD: ConfigRecord({REQUEST_KEY: "not json"})})) is None
