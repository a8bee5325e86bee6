"""API tokens for the coordinator's users: created once, shown once, stored as SHA-256.

The scheme is the node's (``node/store/tokens.py``) with its own prefix: tokens are 256 bits from
:mod:`secrets`, so a plain SHA-256 is a sufficient one-way store (no password stretching needed)
and a lookup is one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from common.errors import AccessError, ErrorCode
from coordinator.store.db import Db, now_micros, reading, writing
from coordinator.store.models import ApiToken

__all__ = ["TOKEN_PREFIX", "Principal", "Role", "authenticate", "create_token", "revoke_token"]

TOKEN_PREFIX = "mfc_"  # noqa: S105  (a public prefix that makes leaked tokens easy to scan for)
API_TOKEN: sa.Table = ApiToken.__table__  # type: ignore[attr-defined]


class Role(StrEnum):
    """What a token may do on the coordinator's API."""

    ADMIN = "admin"  # runs the network: enrols and revokes nodes, sees everything
    RESEARCHER = "researcher"  # submits jobs and reads their results
    OBSERVER = "observer"  # reads the network's state (nodes, jobs, rounds); changes nothing


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's row id (never the token) and its role."""

    token_id: int
    role: Role


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Db, *, role: Role, label: str = "") -> tuple[int, str]:
    """Create a token; returns (token id, the token). Only the token's hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with writing(db) as conn:
        result = conn.execute(
            API_TOKEN.insert().values(
                token_hash=_hash(token),
                role=str(Role(role)),
                label=label[:200],
                created_at=now_micros(),
            )
        )
        token_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    return token_id, token


def revoke_token(db: Db, *, token_id: int) -> bool:
    """Revoke a token by id; False when there was no such active token."""
    with writing(db) as conn:
        result = conn.execute(
            API_TOKEN.update()
            .where(API_TOKEN.c.id == token_id, API_TOKEN.c.revoked_at.is_(None))
            .values(revoked_at=now_micros())
        )
    return bool(result.rowcount)


def authenticate(db: Db, *, token: str | None) -> Principal:
    """The principal for a bearer token; AccessError (unauthenticated) for a missing, unknown or revoked one."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise AccessError(ErrorCode.UNAUTHENTICATED)
    with reading(db) as conn:
        row = conn.execute(
            sa.select(API_TOKEN.c.id, API_TOKEN.c.role).where(
                API_TOKEN.c.token_hash == _hash(token), API_TOKEN.c.revoked_at.is_(None)
            )
        ).first()
    if row is None:
        raise AccessError(ErrorCode.UNAUTHENTICATED)
    return Principal(token_id=int(row[0]), role=Role(row[1]))
