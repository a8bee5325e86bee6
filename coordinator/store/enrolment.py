"""One-time enrolment codes: an admin issues one for a node name, the node uses it once to enrol.

A code is ``mfe_`` followed by a random secret (256 bits). Only the secret's SHA-256 is stored, so
the database never holds a usable code. The trust step will append the coordinator's key
fingerprint to the printed code; :func:`format_code` and :func:`parse_code` are the one place that
knows the format, and the hash always covers the secret alone.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from common.errors import AccessError, ConflictError, ErrorCode
from coordinator.store.db import Db, now_micros, writing
from coordinator.store.models import EnrolmentCode
from coordinator.store.nodes import NODE, NodeRecord, node_slug, register_node

__all__ = [
    "CODE_PREFIX",
    "EnrolmentCodeError",
    "IssuedCode",
    "RefusalReason",
    "consume_enrolment_code",
    "create_enrolment_code",
    "enrol_node",
    "format_code",
    "parse_code",
]

CODE_PREFIX = "mfe_"
ENROLMENT_CODE: sa.Table = EnrolmentCode.__table__  # type: ignore[attr-defined]
_MAX_CODE_LENGTH = 200


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


def format_code(secret: str) -> str:
    """The printed form of a code."""
    return CODE_PREFIX + secret


def parse_code(code: str) -> str:
    """The secret in a printed code; EnrolmentCodeError (malformed) when it is not one."""
    code = code.strip()
    if not code.startswith(CODE_PREFIX) or len(code) > _MAX_CODE_LENGTH or len(code) == len(CODE_PREFIX):
        raise EnrolmentCodeError(RefusalReason.MALFORMED)
    return code[len(CODE_PREFIX) :]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_enrolment_code(db: Db, *, node_name: str, ttl_s: float, now: int | None = None) -> IssuedCode:
    """Issue a one-time code for ``node_name``, valid for ``ttl_s`` seconds.

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
    return IssuedCode(id=code_id, node_name=node_name.strip(), code=format_code(secret), expires_at=expires_at)


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
