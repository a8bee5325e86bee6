"""A node runs only what an authorised researcher signed, whatever the coordinator says (issue 7, docs/trust.md).

A coordinator serves its REST API and runner over TLS; one enrolled node runs its channel with its signed-job
checks and the starter policy, and a ``count`` app that records its calls. The compromised coordinator is
played by writing jobs, signed documents, certificates and messages straight into its database (what a
coordinator that an attacker controls could send): each such job is refused at the node with its own code,
answered with that refusal, audited as ``job.refused``, and the app never runs. The honest path refuses the
same things early at the REST API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from common.analytics.task import decode_refusal
from common.crypto import SigningKey
from common.errors import AccessError, ErrorCode
from common.trust import issue_membership, sign_job
from coordinator.federation.jobs.specs import parse_spec
from coordinator.federation.runner import JobRunner
from coordinator.store import jobs, messages, researchers
from coordinator.store.db import write_transaction
from coordinator.store.tokens import Role, create_token
from medfed.cli import app as cli
from medfed.sdk import Federation, FederationError
from node.audit import AuditKind
from node.policy.starter import starter_policy
from node.store import trust as trust_store
from tests.integration.network import tls_coordinator
from tests.integration.test_enrolment import Coordinator
from tests.integration.test_policy_jobs import PolicyNode, _policy, _start_node, _until
from tests.researchers import STUDY, Researcher, add_researcher

JOB_WAIT_S = 60
COUNT = parse_spec({"kind": "count"}).model_dump(mode="json")


@dataclass
class Network:
    """The coordinator, one node, a researcher (Alice, member of STUDY) and her signing client."""

    coordinator: Coordinator
    data: Path
    node: PolicyNode
    alice: Researcher
    client: Federation
    ca_file: Path

    @property
    def runner(self) -> JobRunner:
        runner: JobRunner = self.coordinator.app.state.runner
        return runner

    def key(self, researcher: Researcher) -> SigningKey:
        return SigningKey.from_pem(researcher.key_file.read_bytes())

    def inject(
        self,
        document: dict[str, Any] | None,
        *,
        researcher: str,
        spec: dict[str, Any] = COUNT,
        digest: str | None = None,
    ) -> str:
        """What a compromised coordinator can do: record a job with any spec and any signed document, and run it."""
        with write_transaction(self.coordinator.engine) as conn:
            job = jobs.create_job(
                conn, kind=spec["kind"], spec=spec, submitter=researcher, seed=1, node_ids=[self.node.identity.node_id]
            )
            if document is not None:
                researchers.keep_job_signature(
                    conn, job_id=job.id, researcher=researcher, digest=digest or uuid.uuid4().hex, document=document
                )
        self.runner.submit(job.id)
        return job.id

    def refused(self, job_id: str) -> tuple[ErrorCode, dict[str, Any]]:
        """The code the node refused ``job_id`` with (from its reply), and the node's ``job.refused`` entry."""
        assert self.runner.join(job_id, JOB_WAIT_S), "the job did not end in time"
        assert self.client.job(job_id)["status"] == "failed"
        replies = _replies(self, job_id)
        assert replies, "the node did not answer"
        codes = {decode_refusal(reply.error.reason or "")[0] for reply in replies}
        (code,) = codes
        (entry,) = self.node.entries(AuditKind.JOB_REFUSED, job_id)
        assert entry["code"] == str(code)
        assert self.node.entries(AuditKind.POLICY_DECISION, job_id) == []  # refused before any policy
        return code, entry


def _replies(network: Network, job_id: str) -> list[Any]:
    from common.flower import message_from_bytes

    table = messages.MESSAGE
    import sqlalchemy as sa

    query = sa.select(table.c.id).where(table.c.job_id == job_id)
    with network.coordinator.engine.connect() as conn:
        ids = [str(row[0]) for row in conn.execute(query)]
    return [message_from_bytes(r.payload) for r in messages.fetch_replies(network.coordinator.engine, message_ids=ids)]


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A coordinator over TLS, one connected node under the starter policy, and Alice's signing client."""
    with tls_coordinator(tmp_path_factory, "signed-coordinator") as (coordinator, data, ca_file):
        alice = add_researcher(coordinator.engine, data, data / "keys", name="alice")
        client = alice.federation(coordinator.url, ca_file)
        node = _start_node(coordinator, tmp_path_factory.mktemp("signed-node"), "open")
        try:
            yield Network(coordinator, data, node, alice, client, ca_file)
        finally:
            client.close()
            node.runner.stop()
            node.service.engine.dispose()


def _refused_at_both(
    network: Network, submit: Callable[[], object], signed: dict[str, Any], status: int, code: ErrorCode
) -> None:
    """``submit`` is refused by the coordinator with ``status`` and ``code``; ``signed`` (Alice's), injected past
    the coordinator, is refused at the node with the same code, and the count app is not called."""
    with pytest.raises(FederationError) as refused:
        submit()
    assert (refused.value.status, refused.value.code) == (status, code.value)
    calls = len(network.node.counted)

    found, _ = network.refused(network.inject(signed, researcher="alice"))

    assert found is code
    assert len(network.node.counted) == calls


def test_a_signed_count_runs_and_the_node_decides_on_the_signed_study_and_researcher(network: Network) -> None:
    """A job Alice signed runs; the node audits her name (from the certificate) and the signed study."""
    calls = len(network.node.counted)
    job = network.client.submit({"kind": "count"})
    assert network.runner.join(job["id"], JOB_WAIT_S)
    assert network.client.job(job["id"])["status"] == "succeeded"
    assert job["submitter"] == "alice"
    assert len(network.node.counted) == calls + 1
    (received,) = network.node.entries(AuditKind.JOB_RECEIVED, job["id"])
    assert (received["researcher"], received["study"]) == ("alice", STUDY)


def test_a_forged_signature_is_refused_at_the_node_and_nothing_runs(network: Network) -> None:
    """A document that names Alice's key but was signed with another key is refused ``job_signature_invalid``."""
    calls = len(network.node.counted)
    forged = sign_job(SigningKey.generate(), COUNT, study=STUDY)
    forged["body"]["key_id"] = network.key(network.alice).public_key().fingerprint()

    code, entry = network.refused(network.inject(forged, researcher="alice"))

    assert code is ErrorCode.JOB_SIGNATURE_INVALID
    assert entry["hints"] == ["signed_job.signature"]
    assert len(network.node.counted) == calls


def test_a_job_the_coordinator_altered_is_refused_at_the_node(network: Network) -> None:
    """A job run with another spec than the one Alice signed is refused ``job_spec_altered``; a signed document
    whose spec was edited after signing is refused ``job_signature_invalid``."""
    calls = len(network.node.counted)
    asked = {"kind": "analysis", "analysis": "count", "params": {}, "source": {"dataset": "trial"}}
    signed = sign_job(network.key(network.alice), parse_spec(asked).model_dump(mode="json"), study=STUDY)
    altered = parse_spec({**asked, "source": {"dataset": "registry"}}).model_dump(mode="json")

    code, entry = network.refused(network.inject(signed, researcher="alice", spec=altered))
    assert code is ErrorCode.JOB_SPEC_ALTERED
    assert entry["hints"] == ["spec.source: not as signed"]

    edited = sign_job(network.key(network.alice), COUNT, study=STUDY)
    edited["body"]["spec"] = {**COUNT, "round_timeout_s": 99.0}
    code, _ = network.refused(network.inject(edited, researcher="alice", spec=edited["body"]["spec"]))
    assert code is ErrorCode.JOB_SIGNATURE_INVALID
    assert len(network.node.counted) == calls


def test_a_replayed_job_is_refused_at_the_coordinator_and_at_the_node(network: Network) -> None:
    """The same signed document submitted again is refused ``job_replayed`` by the coordinator (409); replayed
    under a second job id by a coordinator that skips that check, the node refuses it with the same code."""
    signed = network.client.sign({"kind": "count"})
    first = network.client.submit_signed(signed)
    assert network.runner.join(first["id"], JOB_WAIT_S)
    assert network.client.job(first["id"])["status"] == "succeeded"

    _refused_at_both(network, lambda: network.client.submit_signed(signed), signed, 409, ErrorCode.JOB_REPLAYED)


def test_an_unknown_researcher_is_refused_at_the_coordinator_and_at_the_node(network: Network) -> None:
    """A token of no registered researcher cannot submit (403 ``researcher_unknown``); a researcher whose
    certificate the pinned network-admin key did not sign — one the coordinator minted — is refused at the node
    ``researcher_unknown``, as is a signed job that comes without any certificate."""
    stranger = Federation(
        network.coordinator.url,
        token=create_token(network.coordinator.engine, role=Role.RESEARCHER)[1],
        ca_file=network.ca_file,
        researcher_key=network.alice.key_file,
        study=STUDY,
    )
    with stranger, pytest.raises(FederationError) as refused:
        stranger.submit({"kind": "count"})
    assert (refused.value.status, refused.value.code) == (403, "researcher_unknown")

    calls = len(network.node.counted)
    mallory = SigningKey.generate()
    token_id, _ = create_token(network.coordinator.engine, role=Role.RESEARCHER)
    researchers.register_researcher(
        network.coordinator.engine,
        name="mallory",
        public_key=mallory.public_key().to_text(),
        key_id=mallory.public_key().fingerprint(),
        token_id=token_id,
    )
    now = int(time.time())
    rogue = issue_membership(
        SigningKey.generate(),  # not the network-admin key the node pinned
        researcher="mallory",
        public_key=mallory.public_key(),
        studies=[STUDY],
        issued_at=now,
        expires_at=now + 3600,
        serial=1,
    )
    researchers.add_membership(
        network.coordinator.engine,
        serial=1000,
        researcher="mallory",
        certificate=rogue,
        issued_at=now * 1_000_000,
        expires_at=(now + 3600) * 1_000_000,
    )
    code, _ = network.refused(network.inject(sign_job(mallory, COUNT, study=STUDY), researcher="mallory"))
    assert code is ErrorCode.RESEARCHER_UNKNOWN

    unsigned = network.inject(None, researcher="alice")
    code, _ = network.refused(unsigned)
    assert code is ErrorCode.JOB_NOT_SIGNED
    assert len(network.node.counted) == calls


def test_a_researcher_outside_the_study_is_refused_at_the_coordinator_and_at_the_node(network: Network) -> None:
    """Alice signing for a study she is not a member of is refused 403 ``researcher_not_in_study`` by the
    coordinator and, injected, ``researcher_not_in_study`` at the node."""
    signed = sign_job(network.key(network.alice), COUNT, study="other-study")

    _refused_at_both(
        network,
        lambda: network.client.submit({"kind": "count"}, study="other-study"),
        signed,
        403,
        ErrorCode.RESEARCHER_NOT_IN_STUDY,
    )


def test_a_stale_signature_is_refused_at_the_coordinator_and_at_the_node(network: Network) -> None:
    """A job signed two days ago is refused 403 ``job_stale`` at submission and ``job_stale`` at the node."""
    old = sign_job(network.key(network.alice), COUNT, study=STUDY, issued_at=int(time.time()) - 2 * 86_400)

    _refused_at_both(network, lambda: network.client.submit_signed(old), old, 403, ErrorCode.JOB_STALE)


def test_a_message_outside_the_signed_rounds_is_refused_and_audited(network: Network) -> None:
    """After a signed count ran, a further message of that job naming round 2 (a count has one) is answered
    ``message_outside_spec`` and audited; the count app is not called again."""
    job = network.client.submit({"kind": "count"})
    assert network.runner.join(job["id"], JOB_WAIT_S)
    calls = len(network.node.counted)
    (sent,) = _messages_of(network, job["id"])
    extra = f"extra-{uuid.uuid4().hex}"
    messages.enqueue_message(
        network.coordinator.engine,
        message_id=extra,
        node_id=network.node.identity.node_id,
        payload=sent,
        job_id=job["id"],
        round=2,
    )
    network.coordinator.app.state.notifier.message_ready(network.node.identity.node_id)

    assert _until(lambda: bool(network.node.entries(AuditKind.JOB_REFUSED, job["id"]))), "never refused"
    (entry,) = network.node.entries(AuditKind.JOB_REFUSED, job["id"])
    assert (entry["code"], entry["hints"]) == ("message_outside_spec", ["message.round: outside the signed spec"])
    assert len(network.node.counted) == calls


def _messages_of(network: Network, job_id: str) -> list[bytes]:
    import sqlalchemy as sa

    table = messages.MESSAGE
    with network.coordinator.engine.connect() as conn:
        return [bytes(row[0]) for row in conn.execute(sa.select(table.c.payload).where(table.c.job_id == job_id))]


def test_revoking_a_researcher_with_the_cli_reaches_the_node_and_refuses_her_jobs(
    network: Network, tmp_path: Path
) -> None:
    """``medfed coordinator researcher revoke`` signs a new revocation list; the node takes it from its next
    heartbeat, a job of the revoked researcher that was waiting at the node is refused at its next message, and
    a new job (injected: the coordinator no longer accepts her token) is refused ``researcher_revoked``."""
    bob = add_researcher(network.coordinator.engine, network.data, tmp_path, name=f"bob-{uuid.uuid4().hex[:6]}")
    node = network.node
    node.write_policy(_policy("{count: {approval: person}}"))  # every count waits for a person here
    try:
        _revoke_while_waiting(network, bob)
    finally:
        node.write_policy(starter_policy())


def _revoke_while_waiting(network: Network, bob: Researcher) -> None:
    node = network.node
    calls = len(node.counted)
    with bob.federation(network.coordinator.url, network.ca_file) as client:
        waiting = client.submit({"kind": "count", "round_timeout_s": 120})
    assert _until(lambda: node.runner.held_messages().get(waiting["id"]) == 1), "the message was never held"
    serial_before = node.trust.revocation_serial

    revoked = CliRunner().invoke(
        cli, ["coordinator", "researcher", "revoke", bob.name, "--data-dir", str(network.data)]
    )

    assert revoked.exit_code == 0, revoked.output
    assert _until(lambda: node.trust.revocation_serial > serial_before), "the node never took the revocation list"
    assert network.runner.join(waiting["id"], JOB_WAIT_S)
    code, _ = _refusal(network, waiting["id"])
    assert code is ErrorCode.RESEARCHER_REVOKED
    fresh = network.refused(network.inject(sign_job(network.key(bob), COUNT, study=STUDY), researcher=bob.name))
    assert fresh[0] is ErrorCode.RESEARCHER_REVOKED
    assert len(node.counted) == calls
    kept = trust_store.load_revocations(node.service.engine)
    assert kept is not None
    assert bob.name in kept["body"]["researchers"]


def _refusal(network: Network, job_id: str) -> tuple[ErrorCode, tuple[str, ...]]:
    (reply,) = _replies(network, job_id)
    return decode_refusal(reply.error.reason or "")


def test_a_node_enrolled_without_a_network_admin_key_refuses_every_job(network: Network) -> None:
    """A node identity from before the network-admin key (``coordinator.json`` without it) loads, and its
    checks refuse every job ``trust_not_configured`` instead of crashing."""
    from node.identity import NodeIdentity
    from node.trust import JobTrust

    identity = NodeIdentity.load(network.node.settings.data_dir)
    assert identity is not None
    assert identity.network_admin_public_key == network.coordinator.identity.network_admin_public_key
    document = orjson.loads((network.node.settings.data_dir / "identity" / "coordinator.json").read_bytes())
    assert document["network_admin_public_key"]
    trust = JobTrust(network.node.service.engine, None)
    with pytest.raises(AccessError) as refused:
        trust.verify("job-x", {"signed_job": sign_job(network.key(network.alice), COUNT, study=STUDY)})
    assert refused.value.code is ErrorCode.TRUST_NOT_CONFIGURED


def test_the_researcher_commands_make_a_key_register_it_and_list_it(network: Network, tmp_path: Path) -> None:
    """``medfed researcher init`` writes a 0600 key and its public half; ``coordinator researcher add`` registers
    it in a study and prints a token that submits a job signed with that key; ``list`` shows the researcher."""
    runner = CliRunner()
    made = runner.invoke(cli, ["researcher", "init", "--out", str(tmp_path / "carol")])
    assert made.exit_code == 0, made.output
    key_file, public = tmp_path / "carol" / "researcher.key", tmp_path / "carol" / "researcher.pub"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert public.read_text(encoding="ascii").strip() in made.stdout
    where = ["--data-dir", str(network.data)]
    added = runner.invoke(
        cli, ["coordinator", "researcher", "add", "carol", "--public-key", str(public), "--study", STUDY, *where]
    )
    assert added.exit_code == 0, added.output
    token = added.stdout.strip().splitlines()[-1]
    listed = runner.invoke(cli, ["coordinator", "researcher", "list", *where])
    assert "carol\tsha256:" in listed.stdout

    with Federation(
        network.coordinator.url, token=token, ca_file=network.ca_file, researcher_key=key_file, study=STUDY
    ) as carol:
        job = carol.submit({"kind": "count"})
    assert network.runner.join(job["id"], JOB_WAIT_S)
    assert network.client.job(job["id"])["status"] == "succeeded"
    assert job["submitter"] == "carol"


def test_a_spec_signed_outside_its_normal_form_is_refused_at_submission(network: Network) -> None:
    """A spec signed without its defaults filled in cannot be compared message by message, so the coordinator
    refuses it (400, a location hint), and stores no job."""
    before = len(network.client.jobs())
    raw = sign_job(network.key(network.alice), {"kind": "count"}, study=STUDY)
    with pytest.raises(FederationError) as refused:
        network.client.submit_signed(raw)
    assert (refused.value.status, refused.value.code) == (400, "invalid_request")
    assert len(network.client.jobs()) == before
