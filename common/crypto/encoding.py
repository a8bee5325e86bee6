"""Strict base64url text for keys, nonces and signatures.

Keys and signatures travel in HTTP headers, JSON documents and enrolment codes, so they are written as
base64url without padding (RFC 4648 §5), the form JOSE uses. Decoding is *strict*: the standard library
silently skips characters outside the alphabet and ignores non-zero trailing bits, which would give one
key or signature many spellings. Here every byte string has exactly one accepted text, so a text can be
compared, stored and used as a dictionary key without normalising it first.
"""

from __future__ import annotations

import base64
import binascii
import re

from common.errors import ErrorCode, InputError

__all__ = ["b64url_decode", "b64url_encode"]

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    """Encode bytes as base64url text without ``=`` padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url text without padding; anything but the one canonical spelling is an InputError.

    The error detail names the problem, never the text itself.
    """
    if not isinstance(text, str) or _ALPHABET.fullmatch(text) is None or len(text) % 4 == 1:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="not base64url text without padding")
    padded = text + "=" * (-len(text) % 4)
    try:
        data = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, ValueError):  # pragma: no cover - the pattern above already excludes these
        raise InputError(ErrorCode.INVALID_REQUEST, detail="not base64url text without padding") from None
    if b64url_encode(data) != text:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="base64url text has non-zero trailing bits")
    return data
