"""The node's signed-job checks on their own: revocation lists only move forward, replays are remembered."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine

from common.crypto import SigningKey
from common.errors import AccessError, ErrorCode
from common.trust import issue_membership, sign_job, sign_revocations
from node.trust import JobTrust

ADMIN = SigningKey.generate()
ALICE = SigningKey.generate()
NOW = 1_790_000_000.0
SPEC: dict[str, Any] = {"kind": "count", "app": "count", "message_types": ["query"], "round_timeout_s": 30.0}


def _trust(engine: Engine) -> JobTrust:
    return JobTrust(engine, ADMIN.public_key(), clock=lambda: NOW)


def _envelope(**changes: Any) -> dict[str, Any]:
    membership = issue_membership(
        ADMIN,
        researcher="alice",
        public_key=ALICE.public_key(),
        studies=["diabetes"],
        issued_at=int(NOW) - 60,
        expires_at=int(NOW) + 3600,
        serial=1,
    )
    envelope = {
        "app": "count",
        "message_types": ["query"],
        "rounds": None,
        "spec": {"kind": "count", "app": "count"},
        "submitter": "alice",
        "signed_job": sign_job(ALICE, SPEC, study="diabetes", issued_at=int(NOW) - 10),
        "membership": membership,
    }
    return {**envelope, **changes}


def _code(call: Any) -> ErrorCode:
    with pytest.raises(AccessError) as refused:
        call()
    return refused.value.code


def test_a_verified_job_carries_the_certificates_name_and_the_signed_study(engine: Engine) -> None:
    """The trusted job's researcher comes from the certificate and its study from the signature."""
    trusted = _trust(engine).verify("job-1", _envelope())
    assert (trusted.researcher, trusted.study, trusted.spec) == ("alice", "diabetes", SPEC)


def test_the_same_document_under_a_second_job_id_is_a_replay_even_after_a_restart(engine: Engine) -> None:
    """Once job-1 brought a document, job-2 bringing it is ``job_replayed`` (the memory is in the database);
    job-1 asking again (a forgotten decision, a restart) is not."""
    envelope = _envelope()
    _trust(engine).verify("job-1", envelope)
    restarted = _trust(engine)
    assert restarted.verify("job-1", envelope).job_id == "job-1"
    assert _code(lambda: restarted.verify("job-2", envelope)) is ErrorCode.JOB_REPLAYED


def test_hints_that_differ_from_the_signed_spec_mean_the_job_was_altered(engine: Engine) -> None:
    """Another app, rounds or submitter in the coordinator's description: ``job_spec_altered``."""
    trust = _trust(engine)
    for change in ({"app": "fedavg_mlp"}, {"rounds": 9}, {"submitter": "mallory"}, {"spec": {"kind": "analysis"}}):
        assert _code(lambda change=change: trust.verify("job-x", _envelope(**change))) is ErrorCode.JOB_SPEC_ALTERED


def test_revocation_lists_are_kept_only_forward_and_survive_a_restart(engine: Engine) -> None:
    """Serial 2 is taken, serial 1 afterwards is not (a rollback), one signed by another key is not; after a
    restart the node still holds serial 2 and refuses Alice ``researcher_revoked``."""
    trust = _trust(engine)
    revoking = sign_revocations(ADMIN, serial=2, issued_at=int(NOW), researchers=["alice"], keys=[])
    older = sign_revocations(ADMIN, serial=1, issued_at=int(NOW), researchers=[], keys=[])
    foreign = sign_revocations(SigningKey.generate(), serial=9, issued_at=int(NOW), researchers=[], keys=[])
    assert trust.accept_revocations(revoking)
    assert not trust.accept_revocations(older)
    assert not trust.accept_revocations(foreign)
    restarted = _trust(engine)
    assert restarted.revocation_serial == 2
    assert _code(lambda: restarted.verify("job-1", _envelope())) is ErrorCode.RESEARCHER_REVOKED


def test_a_node_without_a_pinned_admin_key_refuses_with_trust_not_configured(engine: Engine) -> None:
    """No network-admin key (an identity from before it existed): every job ``trust_not_configured``."""
    trust = JobTrust(engine, None, clock=lambda: NOW)
    assert _code(lambda: trust.verify("job-1", _envelope())) is ErrorCode.TRUST_NOT_CONFIGURED
    assert not trust.accept_revocations(sign_revocations(ADMIN, serial=1, issued_at=int(NOW), researchers=[], keys=[]))
