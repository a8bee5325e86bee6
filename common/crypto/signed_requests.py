"""Signed HTTP requests: how a node proves to the coordinator that a request is its own.

TLS (pinned to the coordinator's certificate) keeps the channel private; this layer says *who* sent a
request, with the node's Ed25519 identity key rather than a bearer token that could be copied out of a
log or a proxy. Each request carries four headers:

``X-Medfed-Key``        the key id the server knows the signer by (1-128 visible ASCII characters, e.g. the node id)
``X-Medfed-Timestamp``  unix seconds when the request was signed
``X-Medfed-Nonce``      128 random bits, base64url
``X-Medfed-Signature``  base64url Ed25519 signature over the string below

The signed string is UTF-8, lines separated by ``\\n``, no trailing newline::

    medfed-request-v1
    <METHOD>                 upper case
    <path_and_query>         the request target exactly as sent, e.g. /api/v1/jobs?state=open
    <hex SHA-256 of the body>
    <timestamp>
    <nonce>
    <key id>

Every field is checked to be free of control characters before it is signed or verified, so no two
requests have the same signed string. The version label leaves room for another layout later.

The server refuses a request whose timestamp lies more than ``max_skew_s`` from its clock, and one
whose nonce it has seen before for that key (the caller stores nonces for the skew window, e.g. in its
database), so a captured request cannot be replayed. The nonce is recorded only after the signature has
been verified, so strangers cannot fill the nonce store.

``path_and_query`` must be the same string on both sides: on the client, the raw target that goes on the
wire (httpx: ``request.url.raw_path``); on an ASGI server, ``scope["raw_path"]`` plus ``?`` and
``scope["query_string"]`` when there is a query. Never a decoded or re-encoded form.

Every failure is an AccessError(UNAUTHENTICATED) whose detail names the reason and the header, never a
header's value.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping

from common.crypto.encoding import b64url_decode, b64url_encode
from common.crypto.kdf import sha256
from common.crypto.keys import SigningKey, VerifyKey
from common.errors import AccessError, ErrorCode, InputError, InternalError

__all__ = [
    "KEY_HEADER",
    "NONCE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "refused_request",
    "sign_request",
    "verify_request",
]

KEY_HEADER = "X-Medfed-Key"
TIMESTAMP_HEADER = "X-Medfed-Timestamp"
NONCE_HEADER = "X-Medfed-Nonce"
SIGNATURE_HEADER = "X-Medfed-Signature"
_HEADERS = (KEY_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)

_VERSION_LABEL = "medfed-request-v1"
_NONCE_BYTES = 16
_METHOD = re.compile(r"[A-Za-z]{1,16}")
_PATH_AND_QUERY = re.compile(r"/[\x21-\x7e]{0,8191}")  # visible ASCII only: a raw request target
_KEY_ID = re.compile(r"[\x21-\x7e]{1,128}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{22,64}")  # at least 128 bits of base64url
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{86}")  # 64 bytes of base64url


def _string_to_sign(*, method: str, path_and_query: str, body: bytes, timestamp: int, nonce: str, key_id: str) -> bytes:
    lines = (_VERSION_LABEL, method.upper(), path_and_query, sha256(body).hex(), str(timestamp), nonce, key_id)
    return "\n".join(lines).encode("utf-8")


def sign_request(
    key: SigningKey,
    *,
    key_id: str,
    method: str,
    path_and_query: str,
    body: bytes,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four ``X-Medfed-*`` headers that authenticate this request as ``key_id``'s.

    ``timestamp`` defaults to now and ``nonce`` to 128 fresh random bits; pass them only in tests.
    A field that cannot be part of an HTTP request (a control character in the path, an empty key id)
    is an InputError.
    """
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = b64url_encode(secrets.token_bytes(_NONCE_BYTES)) if nonce is None else nonce
    problems = [
        name
        for name, ok in (
            ("method", _METHOD.fullmatch(method)),
            ("path_and_query", _PATH_AND_QUERY.fullmatch(path_and_query)),
            ("key_id", _KEY_ID.fullmatch(key_id)),
            ("nonce", _NONCE.fullmatch(nonce)),
            ("timestamp", isinstance(timestamp, int) and 0 <= timestamp < 10**12),
        )
        if not ok
    ]
    if problems:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="cannot sign request: bad " + ", ".join(problems))
    message = _string_to_sign(
        method=method, path_and_query=path_and_query, body=body, timestamp=timestamp, nonce=nonce, key_id=key_id
    )
    return {
        KEY_HEADER: key_id,
        TIMESTAMP_HEADER: str(timestamp),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: b64url_encode(key.sign(message)),
    }


def refused_request(reason: str) -> AccessError:
    """The error a refused signed request raises: 401 with the catalog message, ``reason`` kept for the logs."""
    return AccessError(ErrorCode.UNAUTHENTICATED, detail=f"signed request refused: {reason}")


def _medfed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The four headers by canonical name, matched case-insensitively; missing or repeated is refused."""
    wanted = {name.lower(): name for name in _HEADERS}
    found: dict[str, str] = {}
    # items(), not [name]: a Starlette Headers object lists a repeated header once per occurrence.
    for raw_name, value in headers.items():
        name = wanted.get(raw_name.lower())
        if name is None:
            continue
        if name in found:
            raise refused_request(f"header {name} is repeated")
        found[name] = value
    for name in _HEADERS:
        if name not in found:
            raise refused_request(f"header {name} is missing")
    return found


def verify_request(
    headers: Mapping[str, str],
    *,
    method: str,
    path_and_query: str,
    body: bytes,
    lookup_key: Callable[[str], VerifyKey | None],
    now: int,
    max_skew_s: int = 300,
    seen_nonce: Callable[[str, str, int], bool],
) -> str:
    """The key id of a correctly signed, fresh, first-seen request; otherwise AccessError(UNAUTHENTICATED).

    Checks, in order: the four headers are present once each and well formed; the timestamp is within
    ``max_skew_s`` of ``now``; ``lookup_key(key_id)`` knows the key; the signature verifies; and only then
    ``seen_nonce(key_id, nonce, timestamp)`` — which must atomically record the nonce and return whether
    it had been recorded before — reports it as new. A stored nonce may be forgotten once its *timestamp* is
    more than ``max_skew_s`` in the past, because such a request is refused by its timestamp anyway; a
    store that prunes by the time it *saw* the nonce must keep it ``2 * max_skew_s`` (a request dated
    ``max_skew_s`` ahead can be replayed until ``max_skew_s`` after its date).
    A ``max_skew_s`` that is not positive is a bug in the caller (InternalError).
    """
    if max_skew_s <= 0:
        raise InternalError(detail="max_skew_s must be positive")
    found = _medfed_headers(headers)
    key_id = found[KEY_HEADER]
    nonce = found[NONCE_HEADER]
    for name, pattern in (
        (KEY_HEADER, _KEY_ID),
        (TIMESTAMP_HEADER, _TIMESTAMP),
        (NONCE_HEADER, _NONCE),
        (SIGNATURE_HEADER, _SIGNATURE),
    ):
        if pattern.fullmatch(found[name]) is None:
            raise refused_request(f"header {name} is malformed")
    if _METHOD.fullmatch(method) is None or _PATH_AND_QUERY.fullmatch(path_and_query) is None:
        raise refused_request("the request method or target cannot have been signed")
    timestamp = int(found[TIMESTAMP_HEADER])
    if abs(now - timestamp) > max_skew_s:
        raise refused_request(f"timestamp is more than {max_skew_s} s from the server's clock")
    verify_key = lookup_key(key_id)
    if verify_key is None:
        raise refused_request("unknown key id")
    try:
        signature = b64url_decode(found[SIGNATURE_HEADER])
    except InputError:
        raise refused_request(f"header {SIGNATURE_HEADER} is malformed") from None
    message = _string_to_sign(
        method=method, path_and_query=path_and_query, body=body, timestamp=timestamp, nonce=nonce, key_id=key_id
    )
    try:
        verify_key.verify(message, signature)
    except AccessError:
        raise refused_request("signature does not verify") from None
    if seen_nonce(key_id, nonce, timestamp):
        raise refused_request("nonce was used before (replay)")
    return key_id
