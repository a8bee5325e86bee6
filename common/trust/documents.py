"""Signed documents: ``{"body": {..., "type": T}, "signature": base64url(Ed25519(canonical_json(body)))}``.

The body is signed as RFC 8785 canonical JSON, so a document survives any JSON round trip (a database
column, an HTTP body, a poll answer) and still verifies. The ``type`` inside the body keeps one kind of
document from being accepted as another under the same key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.crypto import SigningKey, VerifyKey, b64url_decode, b64url_encode, canonical_json
from common.errors import AccessError, ErrorCode, InputError

__all__ = ["MAX_DOCUMENT_KEYS", "open_document", "sign_document", "signed_body"]

MAX_DOCUMENT_KEYS = 16
_SIGNATURE_CHARS = 86  # 64 bytes, base64url without padding


def sign_document(key: SigningKey, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with ``type: kind``, signed by ``key``."""
    full = {**body, "type": kind}
    return {"body": full, "signature": b64url_encode(key.sign(canonical_json(full)))}


def signed_body(document: object, kind: str, code: ErrorCode) -> tuple[dict[str, Any], bytes]:
    """The body and the signature of a document of ``kind``, shape checked only; AccessError(``code``) otherwise."""
    if not isinstance(document, Mapping) or set(document) != {"body", "signature"}:
        raise AccessError(code, detail=f"not a signed {kind} document", hints=("document: shape",))
    body, signature = document["body"], document["signature"]
    if not isinstance(body, Mapping) or len(body) > MAX_DOCUMENT_KEYS or body.get("type") != kind:
        raise AccessError(code, detail=f"not a {kind} body", hints=("document.body: shape",))
    if not isinstance(signature, str) or len(signature) != _SIGNATURE_CHARS:
        raise AccessError(
            code, detail="the signature is not 64 bytes of base64url", hints=("document.signature: shape",)
        )
    try:
        raw = b64url_decode(signature)
    except InputError:
        raise AccessError(code, detail="the signature is not base64url", hints=("document.signature: shape",)) from None
    return dict(body), raw


def open_document(document: object, kind: str, key: VerifyKey, code: ErrorCode) -> dict[str, Any]:
    """The body of a document of ``kind`` that ``key`` signed; AccessError(``code``) for anything else."""
    body, signature = signed_body(document, kind, code)
    try:
        message = canonical_json(body)
    except InputError:
        raise AccessError(
            code, detail=f"the {kind} body is not canonical JSON", hints=("document.body: json",)
        ) from None
    try:
        key.verify(message, signature)
    except AccessError:
        raise AccessError(code, detail=f"the {kind} signature does not verify", hints=("document.signature",)) from None
    return body
