"""Proving the audit chain: every entry in place, unedited, signed; and nothing cut off since a receipt.

:func:`verify_rows` walks the entries in ``seq`` order and stops at the first bad one, naming it:

- a ``seq`` that skips a number: that entry is missing (deleted);
- a hash that is not the hash of the entry's fields: the entry was edited, or moved to another ``seq``
  (the hash covers ``seq``), which is how reordering shows;
- a ``prev_hash`` that is not the hash of the entry before: something was deleted, inserted or reordered;
- a signature that does not verify under a trusted audit key: the entry (or its hash) was forged;
- with the subject key: a local ``subject_ref`` that does not match its pseudonym.

A chain that passes all of that can still have lost its newest entries (deleted from the end, or an
older copy of the database restored). Two checks catch that: the head row (the store's record of the
last append) when it was left behind, and a receipt (:mod:`common.audit_receipt`) the node signed
earlier and sent away: a chain that ends before the receipt's ``seq``, or holds another hash there,
was truncated or rolled back.

Problems are fixed sentences with sequence numbers and key fingerprints only, never details.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy.engine import Engine

from common.audit_receipt import Receipt
from common.crypto import VerifyKey, b64url_decode
from common.errors import AccessError, InputError
from node.audit.entries import ENTRY_CONTEXT, AuditKind, entry_digest, pseudonym
from node.store import audit_chain as store
from node.store.audit_chain import GENESIS_HASH, ChainRow

__all__ = ["VerifyReport", "trusted_keys", "trusted_keys_of_rows", "verify_chain", "verify_rows"]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of a verification: ``ok``, or the first bad entry and what is wrong with it."""

    ok: bool
    checked: int
    last_seq: int
    last_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    receipt_seq: int | None = None

    def summary(self) -> str:
        """One line for a terminal or a log."""
        if self.ok:
            against = "" if self.receipt_seq is None else f"; consistent with the receipt for entry {self.receipt_seq}"
            return f"audit chain OK: {self.checked} entries, head {self.last_seq} ({self.last_hash[:16]}...){against}"
        return f"audit chain BROKEN at entry {self.first_bad_seq}: {self.problem}"


class _BrokenChainError(Exception):
    def __init__(self, seq: int, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


def _check_entry(
    row: ChainRow, *, expected_seq: int, prev_hash: str, keys: Mapping[str, VerifyKey], subject_key: bytes | None
) -> None:
    if row.seq != expected_seq:
        if row.seq > expected_seq:
            raise _BrokenChainError(expected_seq, f"entry {expected_seq} is missing (deleted)")
        raise _BrokenChainError(row.seq, "entry is out of order or duplicated")
    try:
        digest = entry_digest(row)
    except InputError:
        raise _BrokenChainError(row.seq, "entry details are not the canonical JSON that was hashed (edited)") from None
    if digest.hex() != row.hash:
        raise _BrokenChainError(row.seq, "entry does not match its hash (edited, or moved from another position)")
    if row.prev_hash != prev_hash:
        raise _BrokenChainError(
            row.seq, "entry does not follow the entry before it (an entry was deleted, inserted or moved)"
        )
    key = keys.get(row.key_id)
    if key is None:
        raise _BrokenChainError(row.seq, f"entry is signed by key {row.key_id}, which this verification does not trust")
    try:
        key.verify(ENTRY_CONTEXT + digest, b64url_decode(row.signature))
    except (AccessError, InputError):
        raise _BrokenChainError(row.seq, "entry signature does not verify (forged or edited)") from None
    if (
        row.subject_ref is not None
        and subject_key is not None
        and pseudonym(subject_key, row.subject_ref) != row.subject
    ):
        raise _BrokenChainError(row.seq, "entry's local subject reference does not match its pseudonym (edited)")


def _time(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1e6, UTC).isoformat(timespec="seconds")


def verify_rows(
    rows: Iterable[ChainRow],
    *,
    keys: Mapping[str, VerifyKey],
    subject_key: bytes | None = None,
    head: tuple[int, str] | None = None,
    receipt: Receipt | None = None,
) -> VerifyReport:
    """Verify entries given in ``seq`` order (see the module docstring); ``keys`` maps fingerprints to keys.

    ``head`` is the store's head row, when verifying a database; ``receipt`` a verified receipt.
    """
    expected, prev_hash, receipt_hash, head_hash = 1, GENESIS_HASH, None, None
    try:
        if receipt is not None and VerifyKey.from_text(receipt.audit_key).fingerprint() not in keys:
            raise _BrokenChainError(
                0, "the receipt names an audit key this verification does not trust (another node?)"
            )
        for row in rows:
            _check_entry(row, expected_seq=expected, prev_hash=prev_hash, keys=keys, subject_key=subject_key)
            if receipt is not None and row.seq == receipt.seq:
                receipt_hash = row.hash
            if head is not None and row.seq == head[0]:
                head_hash = row.hash
            prev_hash, expected = row.hash, expected + 1
        last = expected - 1
        if head is not None and head[0] > last:
            raise _BrokenChainError(
                last + 1, f"the chain ends at entry {last} but its head records entry {head[0]}: entries were deleted"
            )
        # Entries past the head are appends that raced this read; the head's own entry must match it.
        if head is not None and head[0] > 0 and head_hash != head[1]:
            raise _BrokenChainError(head[0], "entry does not match the chain's head row (edited, or the head was)")
        if receipt is not None and receipt.seq > last:
            raise _BrokenChainError(
                last + 1,
                f"the receipt of {_time(receipt.time)} vouches for entry {receipt.seq} but the chain ends at "
                f"entry {last}: entries were deleted from the end, or an older copy of the database was restored",
            )
        if receipt is not None and receipt.seq > 0 and receipt_hash != receipt.hash:
            raise _BrokenChainError(receipt.seq, "entry differs from the receipt's hash (the history was rewritten)")
    except _BrokenChainError as broken:
        return VerifyReport(
            ok=False,
            checked=expected - 1,
            last_seq=expected - 1,
            last_hash=prev_hash,
            first_bad_seq=broken.seq,
            problem=broken.problem,
            receipt_seq=None if receipt is None else receipt.seq,
        )
    return VerifyReport(
        ok=True,
        checked=last,
        last_seq=last,
        last_hash=prev_hash,
        receipt_seq=None if receipt is None else receipt.seq,
    )


def trusted_keys_of_rows(key_rows: Iterable[ChainRow], pinned: Iterable[VerifyKey]) -> dict[str, VerifyKey]:
    """The audit keys to trust: the ``pinned`` ones, and every earlier key a trusted key handed over from.

    ``key_rows`` are the chain's ``audit.started`` and ``key.rotated`` entries. A rotation entry signed by
    a trusted key names the key before it (``previous_key_id``); that key is trusted too, with its public
    half taken from the entry that introduced it (a fingerprint binds it). Keys the chain merely mentions
    are not trusted: someone who rewrote the chain with a key of their own would have introduced it.
    """
    trusted = {key.fingerprint(): key for key in pinned}
    introduced: dict[str, VerifyKey] = {}
    rotations: list[tuple[ChainRow, str]] = []
    for row in key_rows:
        try:
            details = orjson.loads(row.details)
            key = VerifyKey.from_text(details["public_key"])
        except (orjson.JSONDecodeError, KeyError, TypeError, InputError):
            continue
        introduced[key.fingerprint()] = key
        previous = details.get("previous_key_id")
        if row.kind == str(AuditKind.KEY_ROTATED) and isinstance(previous, str):
            rotations.append((row, previous))
    for row, previous in reversed(rotations):  # newest first: trust flows from the current key backwards
        signer = trusted.get(row.key_id)
        if signer is None or previous not in introduced:
            continue
        try:
            signer.verify(ENTRY_CONTEXT + entry_digest(row), b64url_decode(row.signature))
        except (AccessError, InputError):
            continue
        trusted[previous] = introduced[previous]
    return trusted


def trusted_keys(engine: Engine, pinned: Iterable[VerifyKey]) -> dict[str, VerifyKey]:
    """:func:`trusted_keys_of_rows` over the key entries of a node's chain."""
    rows = sorted(
        [
            *audit_chain_rows(engine, AuditKind.STARTED),
            *audit_chain_rows(engine, AuditKind.KEY_ROTATED),
        ],
        key=lambda row: row.seq,
    )
    return trusted_keys_of_rows(rows, pinned)


def audit_chain_rows(engine: Engine, kind: AuditKind) -> list[ChainRow]:
    """Every entry of one kind, in ``seq`` order."""
    return list(store.iter_entries(engine, kind=str(kind)))


def verify_chain(
    engine: Engine,
    *,
    keys: Mapping[str, VerifyKey],
    subject_key: bytes | None = None,
    receipt: Receipt | None = None,
) -> VerifyReport:
    """Verify the chain in a node's database, with its head row (see :func:`verify_rows`)."""
    head = store.chain_head(engine)
    return verify_rows(store.iter_entries(engine), keys=keys, subject_key=subject_key, head=head, receipt=receipt)
