"""Chain-head receipts: a node's signed statement "my audit chain reached entry ``seq`` with hash ``hash``".

A node keeps its audit log itself (hash-chained, signed; see ``node/audit``). On its own that proves the
entries were not edited, deleted in the middle or reordered, but not that the newest entries were not cut
off, or that an older copy of the database was not restored. So the node sends receipts out of its own
hands — to the coordinator at a fixed interval and with every job result — and ``medfed node audit verify
--against RECEIPT`` checks the chain against one: a chain that ends before the receipt's ``seq``, or
holds another hash there, was truncated or rolled back.

Node and coordinator both read this format, so it lives here. A receipt is a JSON object::

    {"v": 1, "node": NODE_ID, "seq": N, "hash": HEX64, "time": EPOCH_MICROS,
     "audit_key": BASE64URL (the Ed25519 key that signs the chain's entries),
     "signature": BASE64URL}

signed by the node's *identity* key (the one the coordinator registered at enrolment) over
``CONTEXT + canonical_json(everything but "signature")``. The context string keeps a receipt signature
from ever being valid as another medfed signature, and vice versa.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.crypto import SigningKey, VerifyKey, b64url_decode, b64url_encode, canonical_json
from common.errors import AccessError, ErrorCode, InputError

__all__ = ["CONTEXT", "RECEIPT_VERSION", "Receipt", "read_receipt", "sign_receipt"]

CONTEXT = b"medfed audit chain-head receipt v1\n"
RECEIPT_VERSION = 1
_FIELDS = frozenset({"v", "node", "seq", "hash", "time", "audit_key", "signature"})
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_SEQ = 2**62


@dataclass(frozen=True, slots=True)
class Receipt:
    """A verified receipt: the chain of ``node`` reached ``seq`` with ``hash`` at ``time`` (epoch µs)."""

    node: str
    seq: int
    hash: str
    time: int
    audit_key: str

    def body(self) -> dict[str, Any]:
        """The signed fields."""
        return {
            "v": RECEIPT_VERSION,
            "node": self.node,
            "seq": self.seq,
            "hash": self.hash,
            "time": self.time,
            "audit_key": self.audit_key,
        }


def sign_receipt(key: SigningKey, receipt: Receipt) -> dict[str, Any]:
    """The receipt as a signed JSON object (see the module docstring)."""
    body = receipt.body()
    return {**body, "signature": b64url_encode(key.sign(CONTEXT + canonical_json(body)))}


def _refuse(problem: str) -> InputError:
    return InputError(
        ErrorCode.INVALID_REQUEST, detail=f"not a valid receipt: {problem}", hints=(f"receipt: {problem}",)
    )


def read_receipt(document: object, node_key: VerifyKey) -> Receipt:
    """The receipt in ``document`` if ``node_key`` signed it; InputError naming the problem otherwise.

    A bad signature is an InputError too (``receipt: signature``): a receipt is a document, not a
    credential, and the caller decides what a forged one means.
    """
    if not isinstance(document, Mapping) or set(document) != _FIELDS:
        raise _refuse("fields")
    version, node, seq, digest = document["v"], document["node"], document["seq"], document["hash"]
    at, audit_key, signature = document["time"], document["audit_key"], document["signature"]
    if type(version) is not int or version != RECEIPT_VERSION:
        raise _refuse("version")
    if not isinstance(node, str) or not 0 < len(node) <= 200:
        raise _refuse("node")
    if type(seq) is not int or not 0 <= seq < _MAX_SEQ:
        raise _refuse("seq")
    if not isinstance(digest, str) or _HEX64.fullmatch(digest) is None:
        raise _refuse("hash")
    if type(at) is not int or at < 0:
        raise _refuse("time")
    if not isinstance(audit_key, str) or not isinstance(signature, str):
        raise _refuse("audit_key")
    try:
        VerifyKey.from_text(audit_key)
        raw_signature = b64url_decode(signature)
    except InputError:
        raise _refuse("audit_key or signature encoding") from None
    receipt = Receipt(node=node, seq=seq, hash=digest, time=at, audit_key=audit_key)
    try:
        node_key.verify(CONTEXT + canonical_json(receipt.body()), raw_signature)
    except AccessError:
        raise _refuse("signature") from None
    return receipt
