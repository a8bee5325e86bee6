"""Signed jobs, membership certificates and revocation lists: what verifies, and the code of each refusal."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from common.crypto import SigningKey
from common.errors import AccessError, ErrorCode
from common.trust import (
    issue_membership,
    read_signed_job,
    sign_job,
    sign_revocations,
    verify_membership,
    verify_revocations,
)

ADMIN = SigningKey.generate()
ALICE = SigningKey.generate()
NOW = 1_790_000_000
SPEC: dict[str, Any] = {"kind": "count", "app": "count", "message_types": ["query"], "round_timeout_s": 30.0}


def _membership(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "researcher": "alice",
        "public_key": ALICE.public_key(),
        "studies": ["diabetes", "asthma"],
        "issued_at": NOW - 60,
        "expires_at": NOW + 3600,
        "serial": 4,
    }
    return issue_membership(ADMIN, **{**values, **changes})


def _code(call: Any) -> ErrorCode:
    with pytest.raises(AccessError) as refused:
        call()
    return refused.value.code


def test_a_membership_verifies_under_the_admin_key_after_a_json_round_trip() -> None:
    """A certificate survives JSON (as it travels and is stored) and reads back its name, key and studies."""
    document = orjson.loads(orjson.dumps(_membership()))
    membership = verify_membership(document, ADMIN.public_key(), now=NOW)
    assert (membership.researcher, membership.studies, membership.serial) == (
        "alice",
        frozenset({"asthma", "diabetes"}),
        4,
    )
    assert membership.key_id == ALICE.public_key().fingerprint()


def test_a_membership_from_another_key_expired_or_edited_is_an_unknown_researcher() -> None:
    """Signed by another key, past its end, or with a study added after signing: ``researcher_unknown``."""
    edited = _membership()
    edited["body"]["studies"] = [*edited["body"]["studies"], "oncology"]
    admin = ADMIN.public_key()
    assert _code(lambda: verify_membership(_membership(), SigningKey.generate().public_key(), now=NOW)) is (
        ErrorCode.RESEARCHER_UNKNOWN
    )
    assert _code(lambda: verify_membership(_membership(), admin, now=NOW + 7200)) is ErrorCode.RESEARCHER_UNKNOWN
    assert _code(lambda: verify_membership(edited, admin, now=NOW)) is ErrorCode.RESEARCHER_UNKNOWN
    assert _code(lambda: verify_membership(None, admin, now=NOW)) is ErrorCode.RESEARCHER_UNKNOWN


def test_a_document_of_one_type_is_not_accepted_as_another() -> None:
    """A revocation list signed by the admin key does not pass as a certificate, nor a certificate as a list."""
    revocations = sign_revocations(ADMIN, serial=1, issued_at=NOW, researchers=[], keys=[])
    assert _code(lambda: verify_membership(revocations, ADMIN.public_key(), now=NOW)) is ErrorCode.RESEARCHER_UNKNOWN
    assert _code(lambda: verify_revocations(_membership(), ADMIN.public_key())) is ErrorCode.UNAUTHENTICATED


def test_a_signed_job_verifies_with_its_researchers_key_and_its_digest_survives_json() -> None:
    """The signed job reads back its spec and study, verifies with Alice's key, and keeps its digest through
    JSON; two signatures of the same spec differ (their nonces), so each is a new document."""
    document = sign_job(ALICE, SPEC, study="diabetes", issued_at=NOW)
    job = read_signed_job(orjson.loads(orjson.dumps(document)))
    job.verify(ALICE.public_key())
    assert (job.spec, job.study, job.issued_at) == (SPEC, "diabetes", NOW)
    assert job.digest == read_signed_job(document).digest
    assert read_signed_job(sign_job(ALICE, SPEC, study="diabetes", issued_at=NOW)).digest != job.digest


def test_a_forged_or_altered_job_is_refused_with_its_code() -> None:
    """Signed by another key (naming Alice's): invalid; its spec edited after signing: invalid; no document:
    ``job_not_signed``; a document of the wrong shape: invalid."""
    forged = sign_job(SigningKey.generate(), SPEC, study="diabetes")
    forged_job = read_signed_job(forged)
    altered = sign_job(ALICE, SPEC, study="diabetes")
    altered["body"]["spec"] = {**SPEC, "round_timeout_s": 99.0}
    alice = ALICE.public_key()
    assert _code(lambda: forged_job.verify(alice)) is ErrorCode.JOB_SIGNATURE_INVALID
    assert _code(lambda: read_signed_job(altered).verify(alice)) is ErrorCode.JOB_SIGNATURE_INVALID
    assert _code(lambda: read_signed_job(None)) is ErrorCode.JOB_NOT_SIGNED
    assert _code(lambda: read_signed_job({"body": {}, "signature": "x"})) is ErrorCode.JOB_SIGNATURE_INVALID


def test_freshness_allows_the_window_and_the_skew_and_nothing_beyond() -> None:
    """Within a day back and five minutes ahead: fresh; older, or further ahead: ``job_stale``."""
    window = {"max_age_s": 86_400.0, "max_skew_s": 300.0}
    for issued, fresh in ((NOW - 86_000, True), (NOW + 200, True), (NOW - 90_000, False), (NOW + 400, False)):
        job = read_signed_job(sign_job(ALICE, SPEC, study="diabetes", issued_at=issued))
        if fresh:
            job.check_fresh(now=NOW, **window)
        else:
            assert _code(lambda job=job: job.check_fresh(now=NOW, **window)) is ErrorCode.JOB_STALE


def test_a_revocation_list_names_researchers_and_keys_and_needs_the_admin_key() -> None:
    """The list revokes by name or by key fingerprint; one signed by any other key is refused."""
    document = sign_revocations(
        ADMIN, serial=3, issued_at=NOW, researchers=["mallory"], keys=[ALICE.public_key().fingerprint()]
    )
    revocations = verify_revocations(orjson.loads(orjson.dumps(document)), ADMIN.public_key())
    assert revocations.serial == 3
    assert revocations.revoked(researcher="mallory", key_id="sha256:other")
    assert revocations.revoked(researcher="alice", key_id=ALICE.public_key().fingerprint())
    assert not revocations.revoked(researcher="bob", key_id="sha256:bob")
    assert _code(lambda: verify_revocations(document, SigningKey.generate().public_key())) is ErrorCode.UNAUTHENTICATED


def test_signing_refuses_a_study_that_is_not_a_name() -> None:
    """A study with spaces or slashes cannot be signed (nodes' policies and audits take names only)."""
    from common.errors import InputError

    with pytest.raises(InputError):
        sign_job(ALICE, SPEC, study="two words", issued_at=int(time.time()))
