"""verify_rows over entries in memory: each kind of tampering is named at the entry where it happened."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from common.audit_receipt import Receipt
from common.crypto import SigningKey, VerifyKey, b64url_encode
from node.audit.entries import AuditKind, build_entry
from node.audit.verify import trusted_keys_of_rows, verify_rows
from node.store.audit_chain import GENESIS_HASH, ChainRow

KEY = SigningKey.generate()
KEYS = {KEY.public_key().fingerprint(): KEY.public_key()}
SUBJECT_KEY = b"s" * 32


def chain(length: int, key: SigningKey = KEY, start: list[ChainRow] | None = None, status: int = 200) -> list[ChainRow]:
    """A valid chain of ``length`` entries (continuing ``start``)."""
    rows = list(start or [])
    for _ in range(length):
        seq = len(rows) + 1
        rows.append(
            build_entry(
                seq,
                rows[-1].hash if rows else GENESIS_HASH,
                at=1_000 * seq,
                kind="fhir.access",
                actor="token:1:clinician",
                details={"status": status, "n": seq},
                key=key,
                key_id=key.public_key().fingerprint(),
            )
        )
    return rows


def test_an_untouched_chain_verifies() -> None:
    """Ten good entries verify, and the report names the head."""
    rows = chain(10)
    report = verify_rows(rows, keys=KEYS)
    assert report.ok
    assert (report.checked, report.last_seq, report.last_hash) == (10, 10, rows[-1].hash)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("at", 5),
        ("kind", "job.received"),
        ("actor", "token:2:admin"),
        ("details", '{"n":4,"status":500}'),
        ("details", '{"status": 200, "n": 4}'),
        ("subject", "h1:abc"),
        ("prev_hash", "1" * 64),
        ("hash", "2" * 64),
        ("signature", b64url_encode(b"\0" * 64)),
        ("key_id", "sha256:" + "3" * 64),
    ],
)
def test_editing_any_field_fails_at_that_entry(field: str, value: Any) -> None:
    """Changing one field of entry 4 of 8 makes verification fail at entry 4, whatever the field."""
    rows = chain(8)
    changes: dict[str, Any] = {field: value}
    rows[3] = dataclasses.replace(rows[3], **changes)
    report = verify_rows(rows, keys=KEYS)
    assert not report.ok
    assert report.first_bad_seq == 4, report.problem
    assert report.checked == 3


def test_a_deleted_entry_is_named() -> None:
    """Removing entry 5 makes verification fail at 5, as missing."""
    rows = chain(8)
    del rows[4]
    report = verify_rows(rows, keys=KEYS)
    assert (report.ok, report.first_bad_seq) == (False, 5)
    assert report.problem is not None
    assert "missing" in report.problem


def test_swapped_entries_fail_at_the_first_moved_one() -> None:
    """Entries 3 and 6 swapped (their seq renumbered to the new places) fail at 3."""
    rows = chain(8)
    third, sixth = rows[2], rows[5]
    rows[2], rows[5] = dataclasses.replace(sixth, seq=3), dataclasses.replace(third, seq=6)
    report = verify_rows(rows, keys=KEYS)
    assert (report.ok, report.first_bad_seq) == (False, 3)


def test_a_forged_chain_under_another_key_is_not_trusted() -> None:
    """A whole chain rebuilt with an attacker's key fails at entry 1: the key is not the pinned one."""
    report = verify_rows(chain(4, key=SigningKey.generate()), keys=KEYS)
    assert (report.ok, report.first_bad_seq) == (False, 1)
    assert report.problem is not None
    assert "not trust" in report.problem


def test_a_local_subject_reference_is_checked_against_its_pseudonym() -> None:
    """With the subject key, a subject_ref that does not match the entry's pseudonym fails that entry."""
    from node.audit.entries import pseudonym

    rows = chain(3)
    rows[1] = dataclasses.replace(rows[1], subject_ref="Patient/9")
    assert verify_rows(rows, keys=KEYS).ok  # without the key, the local column is not checked
    report = verify_rows(rows, keys=KEYS, subject_key=SUBJECT_KEY)
    assert (report.ok, report.first_bad_seq) == (False, 2)
    assert pseudonym(SUBJECT_KEY, "Patient/9") != rows[1].subject


def _receipt(rows: list[ChainRow], seq: int) -> Receipt:
    return Receipt(node="n1", seq=seq, hash=rows[seq - 1].hash, time=1, audit_key=KEY.public_key().to_text())


def test_a_chain_cut_after_its_receipt_fails_against_it() -> None:
    """Deleting entries 7-8 leaves a valid-looking chain that a receipt for entry 8 shows to be cut."""
    rows = chain(8)
    receipt = _receipt(rows, 8)
    assert verify_rows(rows[:6], keys=KEYS).ok
    report = verify_rows(rows[:6], keys=KEYS, receipt=receipt)
    assert (report.ok, report.first_bad_seq) == (False, 7)
    assert verify_rows(rows, keys=KEYS, receipt=receipt).ok


def test_a_rewritten_history_differs_from_the_receipt() -> None:
    """A chain re-signed after entry 4 (with the real key) has another hash at the receipt's seq."""
    rows = chain(6)
    receipt = _receipt(rows, 6)
    rewritten = chain(2, start=rows[:4], status=404)
    report = verify_rows(rewritten, keys=KEYS, receipt=receipt)
    assert (report.ok, report.first_bad_seq) == (False, 6)


def test_a_head_row_past_the_last_entry_shows_deleted_entries() -> None:
    """When the head row says 8 and the chain ends at 6, entries 7.. were deleted."""
    rows = chain(8)
    report = verify_rows(rows[:6], keys=KEYS, head=(8, rows[7].hash))
    assert (report.ok, report.first_bad_seq) == (False, 7)


def _key_entry(
    seq: int, prev: str, signer: SigningKey, kind: AuditKind, public: VerifyKey, previous: str | None
) -> ChainRow:
    details: dict[str, object] = {"public_key": public.to_text(), "key_id": public.fingerprint()}
    if previous is not None:
        details["previous_key_id"] = previous
    return build_entry(
        seq,
        prev,
        at=seq,
        kind=str(kind),
        actor="node",
        details=details,
        key=signer,
        key_id=signer.public_key().fingerprint(),
    )


def test_trust_flows_back_from_the_pinned_key_through_rotations() -> None:
    """A rotation signed by the pinned key hands trust to the key before it; a mere mention does not."""
    old, new, stranger = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    started = _key_entry(1, GENESIS_HASH, old, AuditKind.STARTED, old.public_key(), None)
    rotated = _key_entry(2, started.hash, new, AuditKind.KEY_ROTATED, new.public_key(), old.public_key().fingerprint())
    trusted = trusted_keys_of_rows([started, rotated], [new.public_key()])
    assert set(trusted) == {old.public_key().fingerprint(), new.public_key().fingerprint()}
    forged = _key_entry(
        3, rotated.hash, stranger, AuditKind.KEY_ROTATED, stranger.public_key(), new.public_key().fingerprint()
    )
    assert set(trusted_keys_of_rows([started, rotated, forged], [new.public_key()])) == set(trusted)
    assert verify_rows([started, rotated], keys=trusted).ok
