"""Revoking a node is one command, and every other node then refuses it (issue 7, docs/trust.md).

A coordinator serves its REST API and runner over TLS; three enrolled nodes (A, B, C) share a linkage key
and run what ``medfed node start`` runs: the channel with the node's signed-job checks and starter policy,
the built-in apps, and the record locator's responder. ``medfed coordinator node revoke`` revokes C; then
the coordinator refuses C's requests, A and B take the new revocation list from their next heartbeat, and —
playing a coordinator that still counts C in (by patching the round it builds, or writing a relay message
into its database) — A and B refuse a secure-sum round that names C, answer no record-locator request from
C, and send C nothing. Each refusal is audited at the refusing node.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from common.analytics.task import decode_refusal
from common.crypto import SealingKey
from common.errors import AccessError, ErrorCode
from common.flower import message_from_bytes
from common.locator.envelopes import seal_message
from coordinator.federation.jobs import analysis as coordinator_analysis
from coordinator.store import messages, researchers
from coordinator.store import relay as relay_store
from coordinator.store.nodes import NodeStatus, get_node
from medfed.cli import app as cli
from medfed.sdk import Federation
from node.audit import AuditKind, AuditLog
from node.config import NodeSettings
from node.coordinator_client import CoordinatorClient
from node.federation.channel import ChannelRunner
from node.federation.service import build_host
from node.fhir.service import FhirService
from node.identity import NodeIdentity, enrol
from node.linkage.keyfile import import_key, init_key, key_path
from node.linkage.publisher import LinkagePublisher
from node.locator.asker import locate
from node.locator.audit import LocatorEvent, read_locator_audit
from node.locator.context import LocatorContext, open_context
from node.locator.messages import REQUEST, TREATMENT
from node.locator.responder import LocatorResponder
from node.policy.admission import JobAdmissions
from node.policy.gate import PolicyGate
from node.runtime import init_node, open_service
from node.store import audit_chain
from node.trust import JobTrust
from node.views.materialise import install_standard_views
from tests.integration.network import tls_coordinator
from tests.integration.test_enrolment import Coordinator
from tests.integration.test_policy_jobs import _until
from tests.locator_data import lab, patient
from tests.researchers import add_researcher

JOB_WAIT_S = 120
SHARED = patient(given="Philippa", family="Tennant", birth_date="1958-02-11", line="3 Banksia Road", postcode="2614")
DISTINCT: dict[str, Any] = {
    "analysis": "distinct_count",
    "params": {"patient": "patient_id", "buckets": 1024},
    "source": {"view": "patient_demographics"},
}


@dataclass
class Site:
    """One enrolled node as ``medfed node start`` runs it: channel, apps, signed-job checks, locator."""

    name: str
    data_dir: Path
    identity: NodeIdentity
    service: FhirService
    runner: ChannelRunner
    trust: JobTrust
    context: LocatorContext
    responder: LocatorResponder
    publisher: LinkagePublisher

    @property
    def node_id(self) -> str:
        return str(self.identity.node_id)

    def refused(self, job_id: str) -> list[dict[str, Any]]:
        """The details of the node's ``job.refused`` audit entries for ``job_id``."""
        rows = audit_chain.iter_entries(self.service.engine, kind=str(AuditKind.JOB_REFUSED))
        return [d for d in (orjson.loads(row.details) for row in rows) if d.get("job_id") == job_id]

    def inbound(self, correlation: str) -> list[LocatorEvent]:
        """The locator's inbound audit rows of one exchange."""
        events = read_locator_audit(self.service.engine)
        return [e for e in events if e.direction == "inbound" and e.request_id == correlation]

    def stop(self) -> None:
        self.responder.stop(timeout=5.0)
        self.runner.stop()
        self.context.close()
        self.service.engine.dispose()


def _site(coordinator: Coordinator, root: Path, name: str, key_file: Path | None, people: int) -> Site:
    settings = NodeSettings(data_dir=root)
    init_node(settings)
    service = open_service(settings)
    install_standard_views(service.engine)
    service.create(SHARED)
    for index in range(people):
        service.create(patient(given=f"{name}{index}", family="Arden", birth_date=f"19{50 + index}-03-0{1 + index}"))
    identity = enrol(root, coordinator.code(f"{name} {uuid.uuid4().hex[:6]}"), version="test")
    if key_file is None:
        init_key(root)
    else:
        import_key(root, key_file)
    audit = AuditLog.open(service.engine, root)
    trust = JobTrust(service.engine, identity.network_admin_public_key)
    runner = ChannelRunner(
        CoordinatorClient(identity),
        build_host(service, identity.flower_node_id, data_dir=root),
        service.engine,
        version="test",
        poll_wait_s=1,
        heartbeat_s=1,
        admissions=JobAdmissions(PolicyGate(service.engine, audit, settings.policy_path), audit, trust),
    )
    runner.start()
    assert runner.connected.wait(30), "the node never reached the coordinator"
    context = open_context(root, service)
    assert context is not None
    responder = LocatorResponder(context, poll_wait_s=1.0)
    responder.start()
    assert responder.connected.wait(30), "the responder never reached the coordinator"
    publisher = LinkagePublisher(service.engine, context.keys, context.link)
    return Site(name, root, identity, service, runner, trust, context, responder, publisher)


@dataclass
class Network:
    """The coordinator, sites A, B and C, and a researcher's client."""

    coordinator: Coordinator
    data: Path
    a: Site
    b: Site
    c: Site
    researcher: Federation

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        job = self.researcher.submit_analysis(spec)
        assert self.coordinator.app.state.runner.join(job["id"], JOB_WAIT_S), "the job did not end in time"
        ended: dict[str, Any] = self.researcher.job(job["id"])
        return ended

    def refusal(self, site: Site, job_id: str) -> set[ErrorCode]:
        """The codes of the error replies the coordinator kept from ``site`` for ``job_id``."""
        table = messages.MESSAGE
        query = sa.select(table.c.id).where(table.c.job_id == job_id, table.c.node_id == site.node_id)
        with self.coordinator.engine.connect() as conn:
            ids = [str(row[0]) for row in conn.execute(query)]
        replies = [
            message_from_bytes(r.payload) for r in messages.fetch_replies(self.coordinator.engine, message_ids=ids)
        ]
        return {decode_refusal(reply.error.reason or "")[0] for reply in replies if reply.has_error()}

    def relayed_to(self, site: Site) -> int:
        """How many relay messages the coordinator holds for ``site``."""
        table = relay_store.RELAY
        with self.coordinator.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(table.c.to_node == site.node_id)).scalar_one())


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A TLS coordinator, three running nodes that share a linkage key and hold one patient in common."""
    with tls_coordinator(tmp_path_factory, "revocation-coordinator") as (coordinator, data, ca_file):
        who = add_researcher(coordinator.engine, data, data / "keys")
        researcher = who.federation(coordinator.url, ca_file)
        sites: list[Site] = []
        try:
            root_a = tmp_path_factory.mktemp("revocation-a")
            sites.append(_site(coordinator, root_a, "A", None, 3))
            for name in ("B", "C"):
                sites.append(
                    _site(coordinator, tmp_path_factory.mktemp(f"revocation-{name}"), name, key_path(root_a), 2)
                )
            a, b, c = sites
            yield Network(coordinator, data, a, b, c, researcher)
        finally:
            researcher.close()
            for site in sites:
                site.stop()


@pytest.fixture(scope="module")
def revoked(network: Network) -> int:
    """C revoked by the CLI after the network worked with it: A located the shared patient at C (so A holds C's
    certificate in its cache) and a secure sum ran over the three nodes. The serial of the new list."""
    for site in (network.a, network.b, network.c):
        site.publisher.drain()
    shared_at_a = _shared_id(network.a)
    before = locate(network.a.context, shared_at_a)
    at_c = [r for r in before.records if r.origin == network.c.node_id]
    assert [r.status for r in at_c] == ["released"], "the locator did not work before the revocation"
    job = network.run(DISTINCT)
    assert job["status"] == "succeeded", job["error"]
    serial_before = network.a.trust.revocation_serial

    result = CliRunner().invoke(
        cli, ["coordinator", "node", "revoke", network.c.node_id, "--data-dir", str(network.data)]
    )

    assert result.exit_code == 0, result.output
    assert f"node {network.c.node_id} revoked" in result.output
    current = researchers.current_revocations(network.coordinator.engine)
    assert current is not None
    serial: int = current["body"]["serial"]
    assert serial > serial_before
    return serial


def _took(site: Site, serial: int) -> bool:
    """Whether ``site`` came to hold a revocation list of at least ``serial``."""
    return _until(lambda: site.trust.revocation_serial >= serial)


def _shared_id(site: Site) -> str:
    found = site.service.search(site.service.parse("Patient", [("family", "Tennant")])).matches
    (resource,) = found
    return resource.id


def test_the_coordinator_refuses_a_revoked_nodes_requests_and_every_other_node_takes_the_new_list(
    network: Network, revoked: int
) -> None:
    """After ``medfed coordinator node revoke C``: C is revoked in the registry and its signed requests are
    refused (401); A and B hold the new list from their next heartbeat, and it names C by id, key and Flower id."""
    assert get_node(network.coordinator.engine, node_id=network.c.node_id).status is NodeStatus.REVOKED
    with CoordinatorClient(network.c.identity) as client, pytest.raises(AccessError) as refused:
        client.post_json("/channel/v1/heartbeat", {"version": "test", "capabilities": {}, "node_time": time.time()})
    assert refused.value.code is ErrorCode.UNAUTHENTICATED

    for site in (network.a, network.b):
        assert _took(site, revoked), f"{site.name} never took the list"
        held = site.trust.revocations.held()
        assert held is not None
        assert held.node_revoked(node_id=network.c.node_id)
        assert held.node_revoked(key_id=network.c.identity.signing_key.public_key().fingerprint())
        assert held.node_revoked(flower_node_id=network.c.identity.flower_node_id)
        assert not held.node_revoked(node_id=network.a.node_id)


def test_a_secure_sum_round_that_names_the_revoked_node_is_refused_by_the_others(
    network: Network, revoked: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A coordinator that keeps C among the participants of a distinct count's masking round (C's Flower id and a
    round key) gets no masked vector: A and B refuse that message ``node_revoked``, audit it as ``job.refused``,
    and the job fails. The same job without C runs."""
    for site in (network.a, network.b):
        assert _took(site, revoked)
    build = coordinator_analysis._mask_request
    ghost = str(network.c.identity.flower_node_id)

    def with_c(secure_round: Any, participants: list[str], keys: list[Any]) -> Any:
        request = build(secure_round, participants, keys)
        forged_key = SealingKey.generate().public_key().to_text()
        return request.model_copy(
            update={
                "participants": sorted([*request.participants, ghost]),
                "public_keys": {**request.public_keys, ghost: forged_key},
            }
        )

    monkeypatch.setattr(coordinator_analysis, "_mask_request", with_c)
    spec = {**DISTINCT, "nodes": [network.a.node_id, network.b.node_id]}
    job = network.run(spec)

    assert job["status"] == "failed"
    for site in (network.a, network.b):
        assert network.refusal(site, job["id"]) == {ErrorCode.NODE_REVOKED}
        (entry,) = site.refused(job["id"])
        assert (entry["code"], entry["hints"]) == ("node_revoked", ["secure_aggregation.participants: a revoked node"])
    monkeypatch.undo()
    assert network.run(spec)["status"] == "succeeded"


def test_a_relay_request_from_the_revoked_node_is_refused_and_not_answered(network: Network, revoked: int) -> None:
    """A request sealed and signed by C, relayed to A by a coordinator that still relays for C, is refused at A
    ``node_revoked`` and audited; A sends C nothing back, not even a refusal."""
    assert _took(network.a, revoked)
    correlation = secrets.token_urlsafe(18)
    payload = seal_message(
        network.c.identity.signing_key,
        network.a.identity.sealing_key.public_key(),
        kind=REQUEST,
        sender=network.c.node_id,
        to=network.a.node_id,
        correlation=correlation,
        issued_at=time.time_ns() // 1000,
        body={"ref": "x" * 22, "purpose": TREATMENT, "demographics": {"family": "Tennant"}},
    )
    to_c = network.relayed_to(network.c)
    relay_store.relay_message(
        network.coordinator.engine,
        from_node=network.c.node_id,
        to_node=network.a.node_id,
        kind=REQUEST,
        correlation=correlation,
        payload=payload,
        ttl_s=300,
    )

    assert _until(lambda: bool(network.a.inbound(correlation))), "A never took the request"
    (event,) = network.a.inbound(correlation)
    assert (event.peer_node, event.outcome, event.reason) == (network.c.node_id, "refused", "node_revoked")
    assert event.patient_id is None
    assert network.relayed_to(network.c) == to_c


def test_a_node_sends_a_revoked_holder_nothing_even_with_its_certificate_cached(network: Network, revoked: int) -> None:
    """The index still lists the shared patient at C, and A holds C's certificate from before; a locate from A
    refuses C ``node_revoked`` without sending it a request, and still asks B."""
    assert _took(network.a, revoked)
    network.b.service.create(lab(_shared_id(network.b)))
    to_c = network.relayed_to(network.c)

    result = locate(network.a.context, _shared_id(network.a))

    by_origin = {r.origin: (r.status, r.reason) for r in result.records}
    assert by_origin[network.c.node_id] == ("refused", "node_revoked")
    assert by_origin[network.b.node_id][0] == "released"
    assert network.relayed_to(network.c) == to_c
    outbound = read_locator_audit(network.a.service.engine)
    assert any(e.peer_node == network.c.node_id and e.reason == "node_revoked" for e in outbound)


def test_revoking_again_signs_nothing_and_a_later_researcher_revocation_keeps_the_node_listed(
    network: Network, revoked: int, tmp_path: Path
) -> None:
    """``node revoke`` of a revoked node keeps the serial; ``node list`` shows C revoked; revoking a researcher
    afterwards signs a list that still names C (each list is the whole state)."""
    runner, where = CliRunner(), ["--data-dir", str(network.data)]
    again = runner.invoke(cli, ["coordinator", "node", "revoke", network.c.node_id, *where])
    assert again.exit_code == 0, again.output
    assert f"was revoked already (revocation list {revoked})" in again.output
    listed = runner.invoke(cli, ["coordinator", "node", "list", *where])
    assert f"{network.c.node_id}\tsha256:" in listed.stdout
    assert {line.split("\t")[-1] for line in listed.stdout.splitlines()} == {"enrolled", "revoked"}
    unknown = runner.invoke(cli, ["coordinator", "node", "revoke", "no-such-node", *where])
    assert unknown.exit_code != 0

    bob = add_researcher(network.coordinator.engine, network.data, tmp_path, name=f"bob-{uuid.uuid4().hex[:6]}")
    assert runner.invoke(cli, ["coordinator", "researcher", "revoke", bob.name, *where]).exit_code == 0
    current = researchers.current_revocations(network.coordinator.engine)
    assert current is not None
    assert current["body"]["serial"] > revoked
    assert bob.name in current["body"]["researchers"]
    assert [n["node"] for n in current["body"]["nodes"]] == [network.c.node_id]
