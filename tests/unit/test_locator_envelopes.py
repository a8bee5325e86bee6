"""Node key certificates and the locator's signed, sealed envelopes (pure, no I/O)."""

from __future__ import annotations

import orjson
import pytest

from common.crypto import SealingKey, SigningKey, b64url_decode, b64url_encode, open_sealed
from common.errors import AccessError, ErrorCode
from common.locator.certificates import issue_certificate, verify_certificate
from common.locator.envelopes import open_message, seal_message, signed_notice

ADMIN = SigningKey.generate()
SENDER, RECEIVER = SigningKey.generate(), SealingKey.generate()


def _sealed(**overrides: object) -> bytes:
    values: dict[str, object] = {
        "kind": "request",
        "sender": "site-a",
        "to": "site-b",
        "correlation": "corr-123456",
        "issued_at": 1,
        "body": {"ref": "ref-1234567", "purpose": "TREAT"},
    }
    values.update(overrides)
    return seal_message(SENDER, RECEIVER.public_key(), **values)  # type: ignore[arg-type]


def _open(payload: bytes, **overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "recipient": "site-b",
        "recipient_key": RECEIVER,
        "sender": "site-a",
        "sender_key": SENDER.public_key(),
        "kind": "request",
        "correlation": "corr-123456",
    }
    values.update(overrides)
    return open_message(payload, **values).body  # type: ignore[arg-type]


def test_a_certificate_signed_by_the_network_admin_verifies_to_the_nodes_keys() -> None:
    """The verified node carries exactly the certified signing and sealing keys."""
    certificate = issue_certificate(
        ADMIN,
        node_id="site-b",
        public_key=SENDER.public_key().to_text(),
        seal_public_key=RECEIVER.public_key().to_text(),
        issued_at=5,
    )
    node = verify_certificate(certificate, ADMIN.public_key(), node_id="site-b")
    assert node.verify_key == SENDER.public_key()
    assert node.seal_key == RECEIVER.public_key()


@pytest.mark.parametrize("change", ["other admin", "other node", "swapped seal key"])
def test_a_certificate_that_is_not_the_admins_for_this_node_is_refused(change: str) -> None:
    """Another signer, another node id, or a sealing key swapped after signing: KEY_NOT_CERTIFIED."""
    certificate = issue_certificate(
        SigningKey.generate() if change == "other admin" else ADMIN,
        node_id="site-b",
        public_key=SENDER.public_key().to_text(),
        seal_public_key=RECEIVER.public_key().to_text(),
        issued_at=5,
    )
    if change == "swapped seal key":
        certificate = certificate.model_copy(update={"seal_public_key": SealingKey.generate().public_key().to_text()})
    with pytest.raises(AccessError) as refused:
        verify_certificate(certificate, ADMIN.public_key(), node_id="site-c" if change == "other node" else "site-b")
    assert refused.value.code is ErrorCode.KEY_NOT_CERTIFIED


def test_a_sealed_message_opens_for_its_receiver_with_the_senders_body() -> None:
    """Round trip: the body the sender sealed is what the receiver reads."""
    assert _open(_sealed()) == {"ref": "ref-1234567", "purpose": "TREAT"}


def test_the_relay_cannot_read_a_sealed_message() -> None:
    """Neither the reference nor the purpose appears in the payload the coordinator relays."""
    payload = _sealed()
    assert b"ref-1234567" not in payload
    assert b"TREAT" not in payload


@pytest.mark.parametrize(
    "overrides",
    [
        {"recipient_key": SealingKey.generate()},  # sealed to someone else
        {"sender_key": SigningKey.generate().public_key()},  # signed by someone else
        {"sender": "site-c"},  # the relay names another sender
        {"correlation": "corr-999999"},  # replayed as the answer to another request
        {"kind": "reply"},  # replayed as another kind of message
    ],
)
def test_a_message_that_does_not_match_its_envelope_or_keys_is_refused(overrides: dict[str, object]) -> None:
    """Every mismatch is the same UNAUTHENTICATED refusal."""
    with pytest.raises(AccessError):
        _open(_sealed(), **overrides)


def test_an_altered_sealed_message_is_refused() -> None:
    """One flipped byte of the box: refused."""
    outer = orjson.loads(_sealed())
    box = bytearray(b64url_decode(outer["data"]))
    box[-1] ^= 1
    outer["data"] = b64url_encode(bytes(box))
    with pytest.raises(AccessError):
        _open(orjson.dumps(outer))


def test_an_unsealed_notice_carries_only_a_status_and_a_reason() -> None:
    """A signed notice opens as status and reason; an unsealed message with any other body is refused."""
    notice = signed_notice(
        SENDER,
        kind="reply",
        sender="site-a",
        to="site-b",
        correlation="corr-123456",
        issued_at=1,
        status="refused",
        reason="key_not_certified",
    )
    assert _open(notice, kind="reply") == {"status": "refused", "reason": "key_not_certified"}
    sealed_body = orjson.loads(
        seal_message(
            SENDER,
            RECEIVER.public_key(),
            kind="reply",
            sender="site-a",
            to="site-b",
            correlation="corr-123456",
            issued_at=1,
            body={"status": "released", "bundle": {}},
        )
    )
    # The receiver opens a released answer and re-labels its signed inside as an unsealed notice.
    signed = open_sealed(RECEIVER, b64url_decode(sealed_body["data"]), context=b"medfed/locator/v1|reply|site-b")
    forged = orjson.dumps({"format": "signed", "data": b64url_encode(signed)})
    with pytest.raises(AccessError):
        _open(forged, kind="reply")
