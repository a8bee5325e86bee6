"""Replay protection for signed node requests: each (key id, nonce) pair is accepted once.

The signing scheme (a later step) bounds a request's timestamp to a window around the
coordinator's clock; nonces older than that window can be pruned, because a request that old is
refused on its timestamp before its nonce is looked at.
"""

from __future__ import annotations

import sqlalchemy as sa

from common.errors import ErrorCode, InputError
from coordinator.store.db import Db, insert_ignoring_duplicates, now_micros, writing
from coordinator.store.models import RequestNonce

__all__ = ["MAX_NONCE_LENGTH", "check_and_insert_nonce", "prune_nonces"]

REQUEST_NONCE: sa.Table = RequestNonce.__table__  # type: ignore[attr-defined]
MAX_NONCE_LENGTH = 128


def check_and_insert_nonce(db: Db, *, key_id: str, nonce: str, now: int | None = None) -> bool:
    """Record ``nonce`` for ``key_id``; True when the pair was seen before (a replay), False when new.

    Atomic on both databases: of two concurrent requests with the same pair, exactly one gets False.
    """
    if not key_id or not nonce or len(key_id) > MAX_NONCE_LENGTH or len(nonce) > MAX_NONCE_LENGTH:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="nonce or key id empty or too long")
    seen_at = now_micros() if now is None else now
    with writing(db) as conn:
        inserted = insert_ignoring_duplicates(
            conn, REQUEST_NONCE, {"key_id": key_id, "nonce": nonce, "seen_at": seen_at}
        )
    return not inserted


def prune_nonces(db: Db, *, window_s: float, now: int | None = None) -> int:
    """Delete nonces seen more than ``window_s`` seconds before ``now``; returns how many."""
    cutoff = (now_micros() if now is None else now) - int(window_s * 1_000_000)
    with writing(db) as conn:
        result = conn.execute(REQUEST_NONCE.delete().where(REQUEST_NONCE.c.seen_at < cutoff))
    return int(result.rowcount)
