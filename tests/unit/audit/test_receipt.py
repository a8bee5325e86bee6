"""Chain-head receipts (common.audit_receipt): signed by the node key, refused when anything differs."""

from __future__ import annotations

import pytest

from common.audit_receipt import Receipt, read_receipt, sign_receipt
from common.crypto import SigningKey
from common.errors import InputError

NODE = SigningKey.generate()
AUDIT = SigningKey.generate()
RECEIPT = Receipt(
    node="st-marys", seq=42, hash="ab" * 32, time=1_700_000_000_000_000, audit_key=AUDIT.public_key().to_text()
)


def test_a_signed_receipt_reads_back_as_itself() -> None:
    """sign_receipt then read_receipt with the node's key gives the same receipt."""
    assert read_receipt(sign_receipt(NODE, RECEIPT), NODE.public_key()) == RECEIPT


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", 43), ("hash", "cd" * 32), ("node", "other"), ("time", 1), ("audit_key", NODE.public_key().to_text())],
)
def test_a_changed_field_breaks_the_signature(field: str, value: object) -> None:
    """Any signed field changed after signing makes the receipt unreadable."""
    document = {**sign_receipt(NODE, RECEIPT), field: value}
    with pytest.raises(InputError) as raised:
        read_receipt(document, NODE.public_key())
    assert raised.value.hints == ("receipt: signature",)


def test_another_nodes_key_does_not_read_it() -> None:
    """A receipt checked with another node's key is refused."""
    with pytest.raises(InputError):
        read_receipt(sign_receipt(NODE, RECEIPT), SigningKey.generate().public_key())


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"seq": -1},
        {"seq": True},
        {"hash": "AB" * 32},
        {"v": 2},
        {"signature": "!!"},
    ],
)
def test_malformed_receipts_are_refused_before_the_signature(change: dict[str, object]) -> None:
    """Unknown fields, negative or boolean seq, upper-case hashes, other versions and bad encodings are refused."""
    with pytest.raises(InputError):
        read_receipt({**sign_receipt(NODE, RECEIPT), **change}, NODE.public_key())
