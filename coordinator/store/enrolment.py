"""One-time enrolment codes: an admin issues one for a node name, the node uses it once to enrol.

A code's secret is 256 random bits. Only the secret's SHA-256 is stored, so the database never holds
a usable code. :func:`format_code` and :func:`parse_code` are the one place on the coordinator that
knows the printed format (the node reads it in ``node/identity.py``; the two never import each other):

- the printed code, what ``medfed coordinator enrol-code`` shows::

      mfe_<base64url(canonical_json({"v": 1, "s": secret, "f": ca_fingerprint, "u": public_url, "n": node_name}))>

  ``f`` is the coordinator's CA fingerprint, which the node pins before it sends anything, so TLS is
  pinned from the first connection whatever address it found the coordinator at; ``u`` is where to
  dial (a node may be told another URL, or find it by LAN discovery); ``n`` is the name the code was
  issued for;
- the bare form ``mfe_<secret>``, for callers that hold only the secret (store-level tools and
  tests). It carries no pin, so a node cannot enrol with it; the store accepts both forms, and the
  hash always covers the secret alone.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
import sqlalchemy as sa

from common.crypto import b64url_decode, b64url_encode, canonical_json
from common.errors import AccessError, ConflictError, ErrorCode, InputError, InternalError
from coordinator.store.db import Db, now_micros, writing
from coordinator.store.models import EnrolmentCode
from coordinator.store.nodes import NODE, NodeRecord, node_slug, register_node

__all__ = [
    "CODE_PREFIX",
    "CODE_VERSION",
    "CodeContents",
    "EnrolmentCodeError",
    "IssuedCode",
    "RefusalReason",
    "consume_enrolment_code",
    "create_enrolment_code",
    "enrol_node",
    "format_code",
    "parse_code",
    "read_code",
]

CODE_PREFIX = "mfe_"
CODE_VERSION = 1
ENROLMENT_CODE: sa.Table = EnrolmentCode.__table__  # type: ignore[attr-defined]
_MAX_CODE_LENGTH = 200  # the bare form
_MAX_PRINTED_CODE_LENGTH = 4096  # the printed form: a secret, a fingerprint, a URL and a node name
_MAX_SECRET_LENGTH = 128
_MAX_URL_LENGTH = 2048
_MAX_NODE_NAME_LENGTH = 200
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")
_FIELDS = frozenset({"v", "s", "f", "u", "n"})


class RefusalReason(StrEnum):
    """Why a code was refused (logged locally; the caller sees one message for all of them)."""

    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"


class EnrolmentCodeError(AccessError):
    """An enrolment code that cannot be used: malformed, unknown, already used or expired."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(ErrorCode.UNAUTHENTICATED, detail=f"enrolment code refused: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IssuedCode:
    """A new code, returned once: ``code`` is not stored anywhere."""

    id: int
    node_name: str
    code: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class CodeContents:
    """What a printed code carries: the secret, the coordinator's CA fingerprint and URL, the node name."""

    secret: str
    fingerprint: str
    url: str | None
    node_name: str


def format_code(
    secret: str, *, fingerprint: str | None = None, url: str | None = None, node_name: str | None = None
) -> str:
    """The printed code for ``secret``, or the bare form ``mfe_<secret>`` when no coordinator details are given.

    ``fingerprint`` and ``node_name`` come together (a printed code without them cannot be pinned);
    ``url`` is optional in the format, though the coordinator always includes it. Passing only some
    of them is a bug in the caller (InternalError).
    """
    if fingerprint is None and node_name is None and url is None:
        return CODE_PREFIX + secret
    if fingerprint is None or node_name is None:
        raise InternalError(detail="a printed enrolment code needs the CA fingerprint and the node name")
    contents: dict[str, object] = {"v": CODE_VERSION, "s": secret, "f": fingerprint, "n": node_name}
    if url is not None:
        contents["u"] = url
    return CODE_PREFIX + b64url_encode(canonical_json(contents))


def _text(value: object, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _envelope(payload: str) -> CodeContents | None:
    """The contents of a printed code's payload; None when the payload is not one."""
    if len(payload) > _MAX_PRINTED_CODE_LENGTH:
        return None
    try:
        document = orjson.loads(b64url_decode(payload))
    except (InputError, orjson.JSONDecodeError):
        return None
    if not isinstance(document, dict) or not set(document) <= _FIELDS:
        return None
    version = document.get("v")
    if type(version) is not int or version != CODE_VERSION:  # not bool: True == 1 in Python
        return None
    secret = _text(document.get("s"), _MAX_SECRET_LENGTH)
    fingerprint = _text(document.get("f"), 71)
    node_name = _text(document.get("n"), _MAX_NODE_NAME_LENGTH)
    url = document.get("u")
    url_ok = url is None or (_text(url, _MAX_URL_LENGTH) is not None and url.startswith(("https://", "http://")))
    if secret is None or node_name is None or fingerprint is None or not url_ok:
        return None
    if _FINGERPRINT.fullmatch(fingerprint) is None:
        return None
    return CodeContents(secret=secret, fingerprint=fingerprint, url=url, node_name=node_name)


def read_code(code: str) -> CodeContents:
    """The contents of a printed code; EnrolmentCodeError (malformed) for anything else, the bare form included."""
    code = code.strip() if isinstance(code, str) else ""
    contents = _envelope(code[len(CODE_PREFIX) :]) if code.startswith(CODE_PREFIX) else None
    if contents is None:
        raise EnrolmentCodeError(RefusalReason.MALFORMED)
    return contents


def parse_code(code: str) -> str:
    """The secret in a code, printed or bare; EnrolmentCodeError (malformed) when it is neither."""
    code = code.strip() if isinstance(code, str) else ""
    if not code.startswith(CODE_PREFIX) or len(code) == len(CODE_PREFIX):
        raise EnrolmentCodeError(RefusalReason.MALFORMED)
    payload = code[len(CODE_PREFIX) :]
    contents = _envelope(payload)
    if contents is not None:
        return contents.secret
    if len(code) > _MAX_CODE_LENGTH:
        raise EnrolmentCodeError(RefusalReason.MALFORMED)
    return payload


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_enrolment_code(
    db: Db,
    *,
    node_name: str,
    ttl_s: float,
    now: int | None = None,
    fingerprint: str | None = None,
    public_url: str | None = None,
) -> IssuedCode:
    """Issue a one-time code for ``node_name``, valid for ``ttl_s`` seconds.

    With the coordinator's CA ``fingerprint`` (and its ``public_url``), ``code`` is the printed code a
    node enrols with; without, the bare form (see :func:`format_code`).

    InputError for a name that makes no node id; ConflictError when a node with that id exists
    (node ids are never reused).
    """
    node_id = node_slug(node_name)
    created_at = now_micros() if now is None else now
    expires_at = created_at + int(ttl_s * 1_000_000)
    secret = secrets.token_urlsafe(32)
    with writing(db) as conn:
        if conn.execute(sa.select(NODE.c.id).where(NODE.c.id == node_id)).first() is not None:
            raise ConflictError(detail="a node with this id exists")
        result = conn.execute(
            ENROLMENT_CODE.insert().values(
                node_name=node_name.strip(),
                code_hash=_hash(secret),
                created_at=created_at,
                expires_at=expires_at,
            )
        )
        code_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    pinned = fingerprint is not None
    code = format_code(
        secret,
        fingerprint=fingerprint,
        url=public_url if pinned else None,
        node_name=node_name.strip() if pinned else None,
    )
    return IssuedCode(id=code_id, node_name=node_name.strip(), code=code, expires_at=expires_at)


def consume_enrolment_code(db: Db, *, code: str, now: int | None = None) -> str:
    """Use a code once; returns the node name it was issued for.

    EnrolmentCodeError when the code is malformed, unknown, already used, or expired at ``now``.
    Of two concurrent uses of one code, exactly one succeeds.
    """
    code_hash = _hash(parse_code(code))
    used_at = now_micros() if now is None else now
    with writing(db) as conn:
        result = conn.execute(
            ENROLMENT_CODE.update()
            .where(
                ENROLMENT_CODE.c.code_hash == code_hash,
                ENROLMENT_CODE.c.used_at.is_(None),
                ENROLMENT_CODE.c.expires_at > used_at,
            )
            .values(used_at=used_at)
        )
        row = conn.execute(
            sa.select(ENROLMENT_CODE.c.node_name, ENROLMENT_CODE.c.used_at).where(
                ENROLMENT_CODE.c.code_hash == code_hash
            )
        ).first()
    if row is None:
        raise EnrolmentCodeError(RefusalReason.UNKNOWN)
    if not result.rowcount:
        raise EnrolmentCodeError(RefusalReason.USED if row[1] is not None else RefusalReason.EXPIRED)
    node_name: str = row[0]
    return node_name


def enrol_node(
    db: Db,
    *,
    code: str,
    public_key: str,
    seal_public_key: str | None = None,
    version: str | None = None,
    capabilities: Mapping[str, Any] | None = None,
    now: int | None = None,
) -> NodeRecord:
    """Use a code and register the node it names, in one transaction: either both happen or neither."""
    with writing(db) as conn:
        name = consume_enrolment_code(conn, code=code, now=now)
        return register_node(
            conn,
            name=name,
            public_key=public_key,
            seal_public_key=seal_public_key,
            version=version,
            capabilities=capabilities,
            now=now,
        )
