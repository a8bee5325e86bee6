"""The patient index and the record locator in one process: a TLS coordinator and three enrolled nodes.

Each node has its own SQLite store, the same network linkage key (created at the first node and imported
by the others, as an operator would hand it out) and a running locator responder; the publisher is driven
pass by pass (``drain``), so each test decides when the index catches up with the nodes' stores.

"Beatrix Quennell" is a patient at node A and at node B (another address); node B also holds a relative
with her name and suburb but another birth date and street, whom the index calls POSSIBLE.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from common.crypto import SealingKey, SigningKey
from common.linkage import LinkageKey, from_fhir_patient, tokens_for
from common.locator.certificates import issue_certificate
from coordinator.store import index as index_store
from coordinator.store import relay as relay_store
from coordinator.store.db import now_micros
from coordinator.store.nodes import get_node
from node.config import NodeSettings
from node.fhir.service import FhirService
from node.identity import enrol
from node.linkage.keyfile import import_key, init_key, key_path
from node.linkage.publisher import LinkagePublisher
from node.locator.asker import LocateResult, locate
from node.locator.audit import read_locator_audit
from node.locator.context import LocatorContext, open_context
from node.locator.responder import LocatorResponder
from node.runtime import init_node, open_service
from tests.integration.test_enrolment import Coordinator, running_coordinator
from tests.locator_data import LAB_CODE, OLD_LAB_CODE, condition, lab, opt_out_consent, patient


@dataclass
class Site:
    """One enrolled node: its store, locator context, publisher and responder."""

    name: str
    service: FhirService
    context: LocatorContext
    publisher: LinkagePublisher
    responder: LocatorResponder

    @property
    def node_id(self) -> str:
        return self.context.node_id

    def create(self, resource: dict[str, Any]) -> str:
        return self.service.create(resource).stored.id


@dataclass
class Network:
    """The coordinator and sites A, B and C."""

    coordinator: Coordinator
    a: Site
    b: Site
    c: Site

    def drain(self) -> None:
        for site in (self.a, self.b, self.c):
            site.publisher.drain()


def _site(coordinator: Coordinator, root: Path, name: str, key_file: Path | None) -> Site:
    settings = NodeSettings(data_dir=root)
    init_node(settings)
    service = open_service(settings)
    enrol(root, coordinator.code(f"{name} {uuid.uuid4().hex[:6]}"), version="test")
    if key_file is None:
        init_key(root)
    else:
        import_key(root, key_file)
    context = open_context(root, service)
    assert context is not None
    responder = LocatorResponder(context, poll_wait_s=1.0)
    responder.start()
    assert responder.connected.wait(30), "the responder never reached the coordinator"
    return Site(name, service, context, LinkagePublisher(service.engine, context.keys, context.link), responder)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A TLS coordinator and three nodes sharing one linkage key."""
    data = tmp_path_factory.mktemp("locator-coordinator")
    with running_coordinator(data, f"sqlite:///{data / 'coordinator.db'}") as coordinator:
        root_a = tmp_path_factory.mktemp("site-a")
        a = _site(coordinator, root_a, "Site A", None)
        key_file = key_path(root_a)  # handed to the other nodes as the operator would
        b = _site(coordinator, tmp_path_factory.mktemp("site-b"), "Site B", key_file)
        c = _site(coordinator, tmp_path_factory.mktemp("site-c"), "Site C", key_file)
        try:
            yield Network(coordinator, a, b, c)
        finally:
            for site in (a, b, c):
                site.responder.stop(timeout=5.0)
                site.context.close()
                site.service.engine.dispose()


_STREETS = ("Acacia Avenue", "Banksia Road", "Correa Close", "Dryandra Street", "Eremophila Way", "Grevillea Place")
_SUBURBS = (("Aranda", "2614"), ("Bonython", "2905"), ("Charnwood", "2615"), ("Dickson", "2602"), ("Evatt", "2617"))


def person(index: int, **changes: Any) -> dict[str, Any]:
    """Person ``index``'s Patient: a birth date, street and suburb no other test's people share."""
    suburb, postcode = _SUBURBS[index % len(_SUBURBS)]
    values: dict[str, Any] = {
        "birth_date": f"19{40 + index}-0{1 + index % 9}-1{index % 10}",
        "line": f"{10 + index} {_STREETS[index % len(_STREETS)]}",
        "city": suburb,
        "postcode": postcode,
    }
    values.update(changes)
    return patient(**values)


def _by_origin(result: LocateResult) -> dict[str, list[dict[str, Any]]]:
    shown: dict[str, list[dict[str, Any]]] = {}
    for record in result.as_dict()["records"]:
        shown.setdefault(record["origin"], []).append(record)
    return shown


def _codes(bundle: dict[str, Any]) -> set[str]:
    return {
        coding["code"] for entry in bundle["entry"] for coding in entry["resource"].get("code", {}).get("coding", [])
    }


def test_the_nodes_share_one_linkage_key(network: Network) -> None:
    """The key imported at B and C is the one created at A (so their tokens can match)."""
    keys = [site.context.linkage_key() for site in (network.a, network.b, network.c)]
    assert isinstance(keys[0], LinkageKey)
    assert keys[0] == keys[1] == keys[2]


def test_a_patient_known_at_another_node_is_found_and_a_year_of_labs_and_diagnoses_released(network: Network) -> None:
    """A locates its patient: B releases her labs and diagnoses of the last year (no older), audited on both sides."""
    at_a = network.a.create(person(1, mrn="A-1"))
    at_b = network.b.create(person(1, line="3 Gould Street", mrn="B-77"))
    network.b.create(lab(at_b, days_ago=20))
    network.b.create(lab(at_b, code=OLD_LAB_CODE, days_ago=500))
    network.b.create(condition(at_b, days_ago=40))
    network.drain()

    result = locate(network.a.context, at_a, token_id=7)

    found = _by_origin(result)[network.b.node_id]
    released = [r for r in found if r["status"] == "released"]
    assert len(released) == 1
    bundle = released[0]["bundle"]
    assert bundle["type"] == "searchset"
    assert _codes(bundle) == {LAB_CODE, "E11.9"}
    assert released[0]["decision"] == "MATCH"
    outbound = [e for e in read_locator_audit(network.a.service.engine) if e.peer_node == network.b.node_id]
    assert {e.outcome for e in outbound} >= {"asked", "released"}
    assert all(e.purpose == "TREAT" and e.token_id == 7 and e.direction == "outbound" for e in outbound)
    inbound = [e for e in read_locator_audit(network.b.service.engine) if e.peer_node == network.a.node_id]
    assert any(e.outcome == "released" and e.patient_id == at_b and e.record_count == 2 for e in inbound)


def test_a_relative_whom_the_index_calls_possible_is_refused_on_the_demographic_recheck(network: Network) -> None:
    """Same name and suburb, another birth date and street: POSSIBLE at the index, refused by the holder."""
    at_a = network.a.create(person(2, given="Ottilie", birth_date="1970-01-02", line="99 Other Road", mrn="A-2"))
    network.b.create(person(2, given="Ottilie", mrn="B-78"))
    network.drain()

    result = locate(network.a.context, at_a)

    found = _by_origin(result)[network.b.node_id]
    assert [(r["decision"], r["status"], r.get("reason")) for r in found] == [
        ("POSSIBLE", "refused", "demographics_mismatch")
    ]
    inbound = read_locator_audit(network.b.service.engine)
    assert any(e.outcome == "refused" and e.reason == "demographics_mismatch" for e in inbound)


def test_an_opt_out_not_yet_withdrawn_from_the_index_is_honoured_at_release_time(network: Network) -> None:
    """B's patient opted out after her entry was published: before the withdrawal, B refuses to release."""
    at_a = network.a.create(person(3, given="Wilhelmina", family="Starkweather", mrn="A-3"))
    at_b = network.b.create(person(3, given="Wilhelmina", family="Starkweather", mrn="B-79"))
    network.b.create(lab(at_b))
    network.drain()
    network.b.create(opt_out_consent(at_b))  # queued for withdrawal, not yet drained

    result = locate(network.a.context, at_a)

    found = _by_origin(result)[network.b.node_id]
    assert [(r["status"], r.get("reason")) for r in found] == [("refused", "consent")]
    inbound = read_locator_audit(network.b.service.engine)
    assert any(e.outcome == "refused" and e.reason == "consent" and e.patient_id == at_b for e in inbound)
    outbound = read_locator_audit(network.a.service.engine)
    assert any(e.outcome == "refused" and e.reason == "consent" and e.peer_node == network.b.node_id for e in outbound)


def test_an_opt_out_withdraws_the_person_from_the_index_at_every_node(network: Network) -> None:
    """After B's publisher ran, the opted-out person is found nowhere, not even C's record of her."""
    at_a = network.a.create(person(4, given="Philippa", family="Ravensworth", mrn="A-4"))
    at_b = network.b.create(person(4, given="Philippa", family="Ravensworth", mrn="B-80"))
    network.c.create(person(4, given="Philippa", family="Ravensworth", line="5 Oak Lane", mrn="C-1"))
    network.drain()
    assert {r.origin for r in locate(network.a.context, at_a).records} == {network.b.node_id, network.c.node_id}

    network.b.create(opt_out_consent(at_b))
    network.drain()

    assert locate(network.a.context, at_a).records == []
    network.c.create(person(4, given="Philippa", family="Ravensworth", line="6 Oak Lane", mrn="C-2"))
    network.drain()
    assert locate(network.a.context, at_a).records == [], "a new record of the person is kept out too"


def test_the_coordinator_stores_only_rekeyed_tokens_and_opaque_references(network: Network) -> None:
    """No published token value or patient id reaches the coordinator's index tables."""
    at_b = network.b.create(person(5, given="Cordelia", family="Marchbanks", mrn="B-81"))
    network.drain()
    key = network.b.context.linkage_key()
    demographics = from_fhir_patient(person(5, given="Cordelia", family="Marchbanks"))
    published = {bytes.fromhex(t.value_hex) for t in tokens_for(demographics, key)}
    with network.coordinator.engine.connect() as conn:
        stored = {bytes(v) for v in conn.execute(sa.select(index_store.TOKEN.c.token)).scalars()}
        refs = set(conn.execute(sa.select(index_store.RECORD.c.record_ref)).scalars())
    assert stored
    assert not (stored & published)
    assert at_b not in refs


def _forge_certificate(network: Network, node_id: str) -> None:
    """Replace the node's certificate at the coordinator with one signed by a key that is not the network admin's."""
    node = get_node(network.coordinator.engine, node_id=node_id)
    forged = issue_certificate(
        SigningKey.generate(),
        node_id=node_id,
        public_key=node.public_key,
        seal_public_key=SealingKey.generate().public_key().to_text(),
        issued_at=now_micros(),
    )
    with network.coordinator.engine.begin() as conn:
        conn.execute(relay_store.CERTIFICATE.delete().where(relay_store.CERTIFICATE.c.node_id == node_id))
    relay_store.put_certificate(network.coordinator.engine, relay_store.StoredCertificate(**forged.model_dump()))
    for site in (network.a, network.b, network.c):
        site.context.certificates.forget()


def _restore_certificate(network: Network, node_id: str) -> None:
    with network.coordinator.engine.begin() as conn:
        conn.execute(relay_store.CERTIFICATE.delete().where(relay_store.CERTIFICATE.c.node_id == node_id))
    for site in (network.a, network.b, network.c):
        site.context.certificates.forget()


def test_a_request_from_a_node_whose_key_is_not_certified_is_refused_and_audited_on_both_sides(
    network: Network,
) -> None:
    """A's certificate at the coordinator is not the network admin's: B refuses, says why, and both sides audit it."""
    at_a = network.a.create(person(6, given="Henrietta", family="Blackwood", mrn="A-6"))
    at_b = network.b.create(person(6, given="Henrietta", family="Blackwood", mrn="B-82"))
    network.b.create(lab(at_b))
    network.drain()
    _forge_certificate(network, network.a.node_id)
    try:
        result = locate(network.a.context, at_a)
    finally:
        _restore_certificate(network, network.a.node_id)

    found = _by_origin(result)[network.b.node_id]
    assert [(r["status"], r.get("reason")) for r in found] == [("refused", "key_not_certified")]
    assert "bundle" not in found[0]
    inbound = read_locator_audit(network.b.service.engine)
    assert any(e.peer_node == network.a.node_id and e.reason == "key_not_certified" for e in inbound)
    outbound = read_locator_audit(network.a.service.engine)
    assert any(e.peer_node == network.b.node_id and e.reason == "key_not_certified" for e in outbound)


def test_a_node_never_seals_a_request_to_a_holder_whose_key_is_not_certified(network: Network) -> None:
    """B's certificate is forged: A sends B nothing, and audits the refusal."""
    at_a = network.a.create(person(7, given="Araminta", family="Whitlock", mrn="A-7"))
    network.b.create(person(7, given="Araminta", family="Whitlock", mrn="B-83"))
    network.drain()
    before = len(read_locator_audit(network.b.service.engine))
    _forge_certificate(network, network.b.node_id)
    try:
        result = locate(network.a.context, at_a)
    finally:
        _restore_certificate(network, network.b.node_id)

    assert [(r.origin, r.status, r.reason) for r in result.records] == [
        (network.b.node_id, "refused", "key_not_certified")
    ]
    assert len(read_locator_audit(network.b.service.engine)) == before, "B never saw a request"
    outbound = read_locator_audit(network.a.service.engine)
    assert any(e.peer_node == network.b.node_id and e.outcome == "refused" for e in outbound)
