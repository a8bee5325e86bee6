"""API tokens for the node's local users: created once, shown once, stored as SHA-256.

Tokens are 256 bits from :mod:`secrets`, so a plain SHA-256 is a sufficient one-way store (no
password-stretching needed) and lets a lookup be one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from common.errors import AccessError, ErrorCode
from node.store.db import write_transaction
from node.store.models import ApiToken

__all__ = ["Principal", "Role", "authenticate", "create_token", "revoke_token"]

TOKEN_PREFIX = "mfn_"  # noqa: S105  (a public prefix that makes leaked tokens easy to scan for)
API_TOKEN = ApiToken.__table__  # type: ignore[attr-defined]


class Role(StrEnum):
    """What a token may do on the node's API."""

    CLINICIAN = "clinician"  # read and search clinical data
    ADMIN = "admin"  # also write: create, update, delete, transaction/batch, ingest


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's row id (never the token) and its role."""

    token_id: int
    role: Role


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, role: Role, label: str = "") -> tuple[int, str]:
    """Create a token; returns (token id, the token). The token itself is not stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction(engine) as conn:
        result = conn.execute(
            API_TOKEN.insert().values(
                token_hash=_hash(token),
                role=str(role),
                label=label[:200],
                created_at=time.time_ns() // 1000,
            )
        )
        token_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    return token_id, token


def revoke_token(engine: Engine, token_id: int) -> bool:
    """Revoke a token by id; False if there was no such active token."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            API_TOKEN.update()
            .where(API_TOKEN.c.id == token_id, API_TOKEN.c.revoked_at.is_(None))
            .values(revoked_at=time.time_ns() // 1000)
        )
    return bool(result.rowcount)


def authenticate(engine: Engine, token: str | None) -> Principal:
    """The principal for a bearer token; UNAUTHENTICATED for a missing, unknown or revoked one."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise AccessError(ErrorCode.UNAUTHENTICATED)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(API_TOKEN.c.id, API_TOKEN.c.role).where(
                API_TOKEN.c.token_hash == _hash(token), API_TOKEN.c.revoked_at.is_(None)
            )
        ).first()
    if row is None:
        raise AccessError(ErrorCode.UNAUTHENTICATED)
    return Principal(token_id=int(row[0]), role=Role(row[1]))
