"""Node-to-node messages of the record locator: signed by the sender, sealed to the receiver.

The coordinator relays these between nodes (nodes only dial out), so it must learn nothing from them:

    inner   = canonical_json({"type": "medfed/locator/v1", "kind", "from", "to", "correlation",
                              "issued_at", "body"})
    signed  = {"inner": base64url(inner), "signature": base64url(Ed25519(sender, inner))}
    payload = {"format": "sealed", "data": base64url(seal(receiver's X25519 key, JSON(signed),
                                                          context="medfed/locator/v1|" + kind + "|" + to))}

The receiver opens the box with its sealing key, checks the sender's signature with the sender's
*certified* key (:mod:`common.locator.certificates`), and checks that ``from``, ``to``, ``kind`` and
``correlation`` inside agree with what the relay says outside, so the coordinator can neither read,
alter, forge, redirect nor replay a message as an answer to another request.

One exception, :func:`signed_notice`: a refusal to a node whose own key is not certified cannot be
sealed to that key (it is not trusted), so it travels signed but in the clear. It carries only a
status and a reason code, never anything about a patient.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from common.crypto import (
    SealingKey,
    SealPublicKey,
    SigningKey,
    VerifyKey,
    b64url_decode,
    b64url_encode,
    canonical_json,
    open_sealed,
    seal,
)
from common.errors import AccessError, ErrorCode, InputError

__all__ = [
    "ENVELOPE_TYPE",
    "MAX_PAYLOAD_BYTES",
    "OpenedMessage",
    "open_message",
    "seal_message",
    "signed_notice",
]

ENVELOPE_TYPE = "medfed/locator/v1"
#: Largest relay payload (a released Bundle of a year of labs and diagnoses fits well below this).
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class OpenedMessage:
    """What a verified message says: its kind, sender, correlation, time and body, and whether it was sealed."""

    kind: str
    sender: str
    correlation: str
    issued_at: int
    body: dict[str, Any]
    sealed: bool


def _context(kind: str, to: str) -> bytes:
    return f"{ENVELOPE_TYPE}|{kind}|{to}".encode()


def _signed(
    sender_key: SigningKey,
    *,
    kind: str,
    sender: str,
    to: str,
    correlation: str,
    issued_at: int,
    body: Mapping[str, Any],
) -> bytes:
    inner = canonical_json(
        {
            "type": ENVELOPE_TYPE,
            "kind": kind,
            "from": sender,
            "to": to,
            "correlation": correlation,
            "issued_at": issued_at,
            "body": dict(body),
        }
    )
    return orjson.dumps({"inner": b64url_encode(inner), "signature": b64url_encode(sender_key.sign(inner))})


def seal_message(
    sender_key: SigningKey,
    recipient_seal_key: SealPublicKey,
    *,
    kind: str,
    sender: str,
    to: str,
    correlation: str,
    issued_at: int,
    body: Mapping[str, Any],
) -> bytes:
    """The relay payload of a message signed by ``sender_key`` and sealed to ``recipient_seal_key``."""
    signed = _signed(
        sender_key, kind=kind, sender=sender, to=to, correlation=correlation, issued_at=issued_at, body=body
    )
    box = seal(recipient_seal_key, signed, context=_context(kind, to))
    return orjson.dumps({"format": "sealed", "data": b64url_encode(box)})


def signed_notice(
    sender_key: SigningKey,
    *,
    kind: str,
    sender: str,
    to: str,
    correlation: str,
    issued_at: int,
    status: str,
    reason: str,
) -> bytes:
    """The relay payload of a signed, unsealed notice that holds only ``status`` and ``reason``."""
    signed = _signed(
        sender_key,
        kind=kind,
        sender=sender,
        to=to,
        correlation=correlation,
        issued_at=issued_at,
        body={"status": status, "reason": reason},
    )
    return orjson.dumps({"format": "signed", "data": b64url_encode(signed)})


def _refuse(detail: str) -> AccessError:
    return AccessError(ErrorCode.UNAUTHENTICATED, detail=detail)


def open_message(
    payload: bytes,
    *,
    recipient: str,
    recipient_key: SealingKey,
    sender: str,
    sender_key: VerifyKey,
    kind: str,
    correlation: str,
) -> OpenedMessage:
    """Open, verify and check one relayed message; AccessError(UNAUTHENTICATED) for anything amiss.

    ``sender``, ``kind`` and ``correlation`` are what the relay said; the signed inside must agree.
    A signed notice (not sealed) is accepted only if its body is a bare status and reason.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _refuse("relayed message too large")
    try:
        outer = orjson.loads(payload)
        form, data = outer["format"], b64url_decode(outer["data"])
    except (orjson.JSONDecodeError, KeyError, TypeError, InputError):
        raise _refuse("relayed message is malformed") from None
    if form == "sealed":
        signed = open_sealed(recipient_key, data, context=_context(kind, recipient))
    elif form == "signed":
        signed = data
    else:
        raise _refuse("relayed message has an unknown format")
    try:
        document = orjson.loads(signed)
        inner = b64url_decode(document["inner"])
        signature = b64url_decode(document["signature"])
    except (orjson.JSONDecodeError, KeyError, TypeError, InputError):
        raise _refuse("relayed message is malformed") from None
    sender_key.verify(inner, signature)
    try:
        message = orjson.loads(inner)
        expected = {"type": ENVELOPE_TYPE, "kind": kind, "from": sender, "to": recipient, "correlation": correlation}
        if any(message.get(field) != value for field, value in expected.items()):
            raise _refuse("relayed message does not match its envelope")
        body, issued_at = message["body"], message["issued_at"]
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise _refuse("relayed message is malformed") from None
    if not isinstance(body, dict) or type(issued_at) is not int:
        raise _refuse("relayed message is malformed")
    if form == "signed" and (set(body) != {"status", "reason"} or not all(isinstance(v, str) for v in body.values())):
        raise _refuse("an unsealed notice may carry only a status and a reason")
    return OpenedMessage(
        kind=kind, sender=sender, correlation=correlation, issued_at=issued_at, body=body, sealed=form == "sealed"
    )
