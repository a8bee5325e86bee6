"""Audit entries: the bytes that are hashed and signed, pseudonyms, and what details may hold."""

from __future__ import annotations

import pytest

from common.crypto import SigningKey, b64url_decode, canonical_json, sha256
from common.errors import InternalError
from node.audit.entries import ENTRY_CONTEXT, build_entry, digest_payload, entry_digest, pseudonym
from node.store.audit_chain import GENESIS_HASH, ChainRow

KEY = SigningKey.generate()


def _entry(details: dict[str, object], *, actor: str = "token:3:clinician") -> ChainRow:
    return build_entry(
        1,
        GENESIS_HASH,
        at=1_700_000_000_000_000,
        kind="fhir.access",
        actor=actor,
        details=details,
        key=KEY,
        key_id=KEY.public_key().fingerprint(),
    )


@pytest.mark.parametrize(
    "details",
    [{}, {"status": 200, "action": "fhir.read"}, {"ε": 0.5, "nested": {"b": [1, 2.5, None, True]}, "a": "x\n"}],
)
@pytest.mark.parametrize("subject", [None, "h1:00ff"])
def test_the_assembled_payload_is_the_canonical_json_of_the_whole_entry(
    details: dict[str, object], subject: str | None
) -> None:
    """digest_payload joins canonical pieces into exactly canonical_json of the entry object."""
    whole = canonical_json(
        {
            "v": 1,
            "seq": 7,
            "at": 123,
            "kind": "job.received",
            "actor": "coordinator",
            "details": details,
            "subject": subject,
            "prev": "ab" * 32,
        }
    )
    assembled = digest_payload(
        seq=7,
        at=123,
        kind="job.received",
        actor="coordinator",
        details_text=canonical_json(details),
        subject=subject,
        prev_hash="ab" * 32,
    )
    assert assembled == whole


def test_an_entry_is_signed_over_its_hash_and_its_hash_recomputes() -> None:
    """The stored hash is the recomputed digest, and the signature verifies over context + digest."""
    row = _entry({"status": 200})
    digest = entry_digest(row)
    assert digest.hex() == row.hash
    payload = digest_payload(
        seq=row.seq,
        at=row.at,
        kind=row.kind,
        actor=row.actor,
        details_text=row.details.encode(),
        subject=row.subject,
        prev_hash=row.prev_hash,
    )
    assert digest == sha256(payload)
    KEY.public_key().verify(ENTRY_CONTEXT + digest, b64url_decode(row.signature))


@pytest.mark.parametrize("key", ["patient_id", "resource_id", "name", "birthDate", "identifier", "token"])
def test_details_with_an_identifier_key_are_refused(key: str) -> None:
    """A details key that names an identifier is a bug and fails the append (also nested)."""
    with pytest.raises(InternalError):
        _entry({key: "x"})
    with pytest.raises(InternalError):
        _entry({"outer": {key: "x"}})


def test_pseudonyms_are_stable_per_key_and_differ_between_keys() -> None:
    """The same reference gets the same pseudonym under one key and another under a different key."""
    one, other = b"k" * 32, b"j" * 32
    assert pseudonym(one, "Patient/1") == pseudonym(one, "Patient/1")
    assert pseudonym(one, "Patient/1") != pseudonym(one, "Patient/2")
    assert pseudonym(one, "Patient/1") != pseudonym(other, "Patient/1")
    assert "Patient" not in pseudonym(one, "Patient/1")


def test_a_long_actor_is_cut_before_it_is_hashed() -> None:
    """An actor longer than the column is cut to 200 characters, and the hash is over what is stored."""
    row = _entry({}, actor="a" * 500)
    assert len(row.actor) == 200
    assert entry_digest(row).hex() == row.hash
